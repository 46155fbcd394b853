package network

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// inflightWait bounds how long Detach waits for plugins of an ADD that is
// still running.
const inflightWait = 30 * time.Second

// waitForPlugins waits until no CNI plugin runs for containerID. A berth
// command killed during an ADD leaves its plugin processes running (they
// are not its process group's business once it is gone); a DEL that ran
// before they finished would be undone by them, leaving rules and leases
// behind. Plugins are found by the CNI_CONTAINERID the runtime passes in
// their environment.
func waitForPlugins(ctx context.Context, containerID string) {
	want := []byte("CNI_CONTAINERID=" + containerID + "\x00")
	deadline := time.Now().Add(inflightWait)
	for pluginRunning(want) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func pluginRunning(want []byte) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		if bytes.Contains(append(env, 0), want) {
			return true
		}
	}
	return false
}

// leasedIPs are the addresses host-local leased to containerID on network
// (its lease files are named by address and begin with the container ID).
func (m *Manager) leasedIPs(network, containerID string) []string {
	dir := filepath.Join(m.ipamDir(), network)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var ips []string
	for _, e := range ents {
		ip := net.ParseIP(e.Name())
		if ip == nil || ip.To4() == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || len(b) > 4096 {
			continue
		}
		id, _, _ := strings.Cut(string(b), "\n")
		if strings.TrimSpace(id) == containerID {
			ips = append(ips, ip.String())
		}
	}
	return ips
}

// removeFirewallRules deletes the firewall plugin's two rules for ip from
// CNI-FORWARD (what its DEL does when it is given the address).
func removeFirewallRules(ctx context.Context, ip string) {
	for _, rule := range [][]string{
		{"-s", ip + "/32", "-j", "ACCEPT"},
		{"-d", ip + "/32", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
	} {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		args := append([]string{"-w", "5", "-t", "filter", "-D", "CNI-FORWARD"}, rule...)
		for exec.CommandContext(cctx, "iptables", args...).Run() == nil {
			// A rule added twice is deleted twice.
		}
		cancel()
	}
}
