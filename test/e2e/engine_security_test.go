package e2e

import (
	"os"
	"strings"
	"testing"
)

// Security defaults (issue 8, test 14): Docker's capability set, masked
// /proc/timer_list (Docker masks it, as /proc/kcore, which this kernel
// lacks), a seccomp filter; --privileged lifts them.
func TestEngineSecurityDefaults(t *testing.T) {
	e := newEngine(t)
	if b, err := os.ReadFile("/proc/timer_list"); err != nil || len(b) < 16 {
		t.Fatalf("the host's /proc/timer_list is not readable (%v): the test needs it", err)
	}
	script := "grep -E '^(CapEff|Seccomp):' /proc/self/status; echo masked=$(head -c 16 /proc/timer_list | wc -c)"
	out := e.ok("run", "--rm", e.image, "sh", "-c", script)
	if statusField(out, "CapEff") != "00000000a80425fb" {
		t.Errorf("default CapEff: %q, want Docker's 00000000a80425fb", statusField(out, "CapEff"))
	}
	if statusField(out, "Seccomp") != "2" {
		t.Errorf("default Seccomp: %q, want 2 (a filter)", statusField(out, "Seccomp"))
	}
	if !strings.Contains(out, "masked=0") {
		t.Errorf("/proc/timer_list is readable in a default container: %q", out)
	}

	out = e.ok("run", "--rm", "--privileged", e.image, "sh", "-c", script)
	self, _ := os.ReadFile("/proc/self/status")
	if c, want := statusField(out, "CapEff"), statusField(string(self), "CapBnd"); c != want {
		t.Errorf("--privileged CapEff: %q, want every capability the host has (%s)", c, want)
	}
	if statusField(out, "Seccomp") != "0" {
		t.Errorf("--privileged Seccomp: %q, want 0", statusField(out, "Seccomp"))
	}
	if !strings.Contains(out, "masked=16") {
		t.Errorf("--privileged: /proc/timer_list still masked: %q", out)
	}
}
