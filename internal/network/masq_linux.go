package network

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Berth's own bridge networks masquerade their traffic out with one rule
// per network, as Docker does for docker0, instead of the bridge plugin's
// ipMasq, which makes a chain and three rules per container: about five
// iptables calls on every attach and four on every detach, most of the
// time a container on a bridge network takes to start and to go.
//
// The rule lives as long as the network (Remove deletes it); a marker in
// the volatile state directory says it was made, and vanishes with it at a
// reboot.

func (m *Manager) masqMarker(network string) string {
	return filepath.Join(m.cfg.StateDir, "masq", network)
}

// masqRule is the rule's specification after the chain.
func masqRule(network, subnet, bridge string) []string {
	return []string{"-s", subnet, "!", "-o", bridge, "-m", "comment", "--comment", "berth network " + network, "-j", "MASQUERADE"}
}

// ensureMasquerade makes network's masquerade rule unless the marker says
// it exists; it runs under the network's lock.
func (m *Manager) ensureMasquerade(ctx context.Context, l loaded) error {
	marker := m.masqMarker(l.Name)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	lk, err := m.lockDNS(ctx, l.Name)
	if err != nil {
		return err
	}
	defer lk.Release()
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	rule := masqRule(l.Name, l.Subnet, l.Bridge)
	if iptables(ctx, append([]string{"-t", "nat", "-C", "POSTROUTING"}, rule...)...) != nil {
		if err := iptables(ctx, append([]string{"-t", "nat", "-A", "POSTROUTING"}, rule...)...); err != nil {
			return fmt.Errorf("network %s: masquerade rule: %w", l.Name, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(marker, []byte(l.Subnet+" "+l.Bridge+"\n"))
}

// removeMasquerade deletes network's masquerade rule (every copy of it).
func (m *Manager) removeMasquerade(ctx context.Context, l loaded) {
	rule := masqRule(l.Name, l.Subnet, l.Bridge)
	for i := 0; i < 8 && iptables(ctx, append([]string{"-t", "nat", "-D", "POSTROUTING"}, rule...)...) == nil; i++ {
	}
	os.Remove(m.masqMarker(l.Name))
}

// ownMasquerade reports whether Berth masquerades network l itself: one of
// its own bridge networks with a subnet, not internal.
func ownMasquerade(l loaded) bool {
	return l.BerthManaged && l.Driver == "bridge" && !l.Internal && l.Subnet != "" && l.Bridge != ""
}

func iptables(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "10"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %v: %v: %s", args, err, out)
	}
	return nil
}
