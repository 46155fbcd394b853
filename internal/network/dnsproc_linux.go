package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/lockfile"
	"github.com/berth-project/berth/internal/proc"
)

// dnsStartTimeout bounds how long a new DNS server may take to bind its
// sockets; dnsStopTimeout how long one may take to exit on SIGTERM before
// it gets SIGKILL.
const (
	dnsStartTimeout = 10 * time.Second
	dnsStopTimeout  = 5 * time.Second
)

func (m *Manager) dnsDir(network string) string {
	return filepath.Join(m.cfg.StateDir, "dns", network)
}

func (m *Manager) lockDNS(ctx context.Context, network string) (*lockfile.Lock, error) {
	dir := m.dnsDir(network)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create DNS state of network %s: %w", network, err)
	}
	lk, err := lockfile.Acquire(ctx, filepath.Join(dir, lockFile), true, nil)
	if err != nil {
		return nil, fmt.Errorf("lock DNS state of network %s: %w", network, err)
	}
	return lk, nil
}

// updateRecords rewrites the network's records file with edit's result,
// atomically, under the network's DNS lock.
func (m *Manager) updateRecords(ctx context.Context, network string, edit func([]record) []record) error {
	lk, err := m.lockDNS(ctx, network)
	if err != nil {
		return err
	}
	defer lk.Release()
	p := filepath.Join(m.dnsDir(network), recordsFile)
	var rs []record
	if f, err := os.Open(p); err == nil {
		data, err := readLimited(f, maxRecordsSize)
		f.Close()
		if err != nil {
			return fmt.Errorf("read DNS records of network %s: %w", network, err)
		}
		if rs, err = parseRecords(data); err != nil {
			return fmt.Errorf("DNS records of network %s: %w", network, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read DNS records of network %s: %w", network, err)
	}
	if err := writeFileAtomic(p, formatRecords(edit(rs))); err != nil {
		return fmt.Errorf("write DNS records of network %s: %w", network, err)
	}
	return nil
}

// dnsServerPid returns the pid of the network's running DNS server, or 0.
// A pid is believed only if that process's command line is the one the
// manager started, so a recycled pid is never signalled.
func (m *Manager) dnsServerPid(network string) int {
	b, err := os.ReadFile(filepath.Join(m.dnsDir(network), pidFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	// proc.Args waits out the moment after the server's start when its
	// command line still reads empty, which would leave it running.
	args := proc.Args(pid)
	if len(args) < 2 || args[len(args)-2] != m.cfg.StateDir || args[len(args)-1] != network {
		return 0
	}
	return pid
}

// ensureDNS starts the network's DNS server unless one runs.
func (m *Manager) ensureDNS(ctx context.Context, network string, listen netip.Addr, subnet netip.Prefix) error {
	lk, err := m.lockDNS(ctx, network)
	if err != nil {
		return err
	}
	defer lk.Release()
	if m.dnsServerPid(network) != 0 {
		return nil
	}
	dir := m.dnsDir(network)
	sc, _ := json.Marshal(serverConfig{Listen: listen.String(), Subnet: subnet.String(), ResolvConf: m.upstreamResolvConf})
	if err := writeFileAtomic(filepath.Join(dir, serverFile), sc); err != nil {
		return fmt.Errorf("write DNS server config of network %s: %w", network, err)
	}
	os.Remove(filepath.Join(dir, pidFile))
	logPath := filepath.Join(dir, logFile)
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("open DNS server log of network %s: %w", network, err)
	}
	defer log.Close()
	args := append(append([]string{}, m.cfg.DNSBin[1:]...), m.cfg.StateDir, network)
	cmd := exec.Command(m.cfg.DNSBin[0], args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own session: the server outlives the berth command that starts it
	// and its terminal.
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start DNS server of network %s: %w", network, err)
	}
	pid := cmd.Process.Pid
	deadline := time.NewTimer(dnsStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(filepath.Join(dir, pidFile)); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid) {
			cmd.Process.Release()
			return nil
		}
		var ws unix.WaitStatus
		if p, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); p == pid {
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("DNS server of network %s exited at start (%v): %s", network, exitString(ws), strings.TrimSpace(string(out)))
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			killAndReap(pid)
			return fmt.Errorf("DNS server of network %s did not start within %s", network, dnsStartTimeout)
		case <-ctx.Done():
			killAndReap(pid)
			return fmt.Errorf("start DNS server of network %s: %w", network, ctx.Err())
		}
	}
}

func exitString(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

func killAndReap(pid int) {
	unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
}

// stopDNS stops the network's DNS server if one runs.
func (m *Manager) stopDNS(ctx context.Context, network string) error {
	if _, err := os.Stat(m.dnsDir(network)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	lk, err := m.lockDNS(ctx, network)
	if err != nil {
		return err
	}
	defer lk.Release()
	pid := m.dnsServerPid(network)
	if pid == 0 {
		return nil
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("stop DNS server of network %s (pid %d): %w", network, pid, err)
	}
	deadline, killed := time.Now().Add(dnsStopTimeout), false
	for proc.Running(pid) {
		if time.Now().After(deadline) {
			if killed {
				return fmt.Errorf("stop DNS server of network %s: pid %d survives SIGKILL", network, pid)
			}
			unix.Kill(pid, unix.SIGKILL)
			deadline, killed = time.Now().Add(dnsStopTimeout), true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop DNS server of network %s: %w", network, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Reap it if it is our child (the tests', or a long-lived caller's);
	// otherwise init does.
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	os.Remove(filepath.Join(m.dnsDir(network), pidFile))
	return nil
}
