package e2e

import (
	"os"
	"strings"
	"testing"
)

// Security defaults (issue 8, test 14): Docker's capability set, masked
// /proc/kcore, a seccomp filter; --privileged lifts them.
func TestEngineSecurityDefaults(t *testing.T) {
	e := newEngine(t)
	script := "grep -E '^(CapEff|Seccomp):' /proc/self/status; echo kcore=$(head -c 16 /proc/kcore | wc -c)"
	out := e.ok("run", "--rm", e.image, "sh", "-c", script)
	if statusField(out, "CapEff") != "00000000a80425fb" {
		t.Errorf("default CapEff: %q, want Docker's 00000000a80425fb", statusField(out, "CapEff"))
	}
	if statusField(out, "Seccomp") != "2" {
		t.Errorf("default Seccomp: %q, want 2 (a filter)", statusField(out, "Seccomp"))
	}
	if !strings.Contains(out, "kcore=0") {
		t.Errorf("/proc/kcore is readable in a default container: %q", out)
	}

	out = e.ok("run", "--rm", "--privileged", e.image, "sh", "-c", script)
	self, _ := os.ReadFile("/proc/self/status")
	if c, want := statusField(out, "CapEff"), statusField(string(self), "CapBnd"); c != want {
		t.Errorf("--privileged CapEff: %q, want every capability the host has (%s)", c, want)
	}
	if statusField(out, "Seccomp") != "0" {
		t.Errorf("--privileged Seccomp: %q, want 0", statusField(out, "Seccomp"))
	}
	if !strings.Contains(out, "kcore=16") {
		t.Errorf("--privileged: /proc/kcore still masked: %q", out)
	}
}
