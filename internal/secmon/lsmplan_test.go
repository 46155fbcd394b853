package secmon

import (
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/secmon/kern"
)

// Hosts for the plan tests, whatever kernel runs them.
var (
	noLSM   = host{lsm: func() string { return "test: no BPF LSM" }, connectKill: func() string { return "" }, landlock: func() string { return "" }}
	withLSM = host{lsm: func() string { return "" }, connectKill: func() string { return "" }, landlock: func() string { return "" }}
	bare    = host{lsm: func() string { return "test: no BPF LSM" }, connectKill: func() string { return "test: no signal" }, landlock: func() string { return "test: no Landlock" }}
)

// On a kernel with BPF LSM, exec and open denies are kernel rules for the
// LSM programs, with what the kernel can check (drift, prefixes, the
// parent), and need no Landlock (so no berth-runtime).
func TestLSMPlan(t *testing.T) {
	rs, err := parseRules([]byte(`rules:
- name: no-drift
  event: exec
  condition: exec.drift || (exec.path in ["/bin/sh", "/bin/bash"] && exec.parent.name != "init")
  action: deny
- name: no-etc
  event: open
  condition: file.write && (file.path.startsWith("/etc/") || file.path == "/usr/lib/x") && !("etc-ok" in container.labels)
  action: deny
- name: shells
  event: exec
  condition: exec.path.startsWith("/bin/")
  action: alert
`), "r.yaml", withLSM)
	if err != nil {
		t.Fatal(err)
	}
	p, err := rs.Plan(Container{ID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if p.NeedsLandlock() || !p.NeedsLSM() || len(p.Syscalls) != 0 {
		t.Errorf("plan: landlock %v, LSM %v, syscalls %v", p.NeedsLandlock(), p.NeedsLSM(), p.Syscalls)
	}
	if len(p.Exec.Rules) != 2 || p.Exec.Rules[0].Action != kern.ActDeny || p.Exec.Rules[1].Action != kern.ActAlert {
		t.Fatalf("exec rules %+v", p.Exec.Rules)
	}
	if len(p.Open.Rules) != 1 || p.Open.Rules[0].Action != kern.ActDeny || len(p.Open.Rules[0].Atoms) != 2 {
		t.Fatalf("open rules %+v", p.Open.Rules)
	}
	// The table: true when either path atom is.
	tb := p.Open.Rules[0].Table[0]
	if tb&1 != 0 || tb&(1<<1) == 0 || tb&(1<<2) == 0 || tb&(1<<3) == 0 {
		t.Errorf("open table %b", tb)
	}
	// The label lifts the open rule: nothing for the kernel.
	p, err = rs.Plan(Container{ID: "c2", Labels: map[string]string{"etc-ok": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Open.Empty() {
		t.Errorf("labelled container: open rules %+v", p.Open.Rules)
	}

	// Refused at load: an open rule that is not only about writes (the
	// kernel sees opens for writing only), and what the kernel cannot
	// check.
	for cond, want := range map[string]string{
		`file.path.startsWith("/etc/")`:             "must be for writes",
		`file.write && file.path.endsWith(".conf")`: "the kernel checks only",
		`!file.write || file.path == "/etc/passwd"`: "must be for writes",
	} {
		_, err := parseRules([]byte("rules:\n- name: r\n  event: open\n  condition: '"+cond+"'\n  action: deny\n"), "r.yaml", withLSM)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `rule "r"`) {
			t.Errorf("%s: %v, want %q", cond, err, want)
		}
	}
	if _, err := parseRules([]byte("rules:\n- name: r\n  event: exec\n  condition: exec.argv.size() > 2\n  action: deny\n"), "r.yaml", withLSM); err == nil || !strings.Contains(err.Error(), "cannot be checked in the kernel") {
		t.Errorf("argv deny: %v", err)
	}
	// Without BPF LSM, drift cannot be denied (Landlock knows paths).
	if _, err := parseRules([]byte("rules:\n- name: r\n  event: exec\n  condition: exec.drift\n  action: deny\n"), "r.yaml", noLSM); err == nil {
		t.Error("drift deny without BPF LSM was taken")
	}
}

// What a host lacks refuses the rules that need it, with the reason.
func TestHostRefusals(t *testing.T) {
	for _, c := range []struct{ event, cond, action, want string }{
		{"exec", `exec.path == "/bin/sh"`, "deny", "test: no BPF LSM"},
		{"open", `file.write && file.path == "/etc/x"`, "deny", "test: no Landlock"},
		{"connect", `connect.port == 1`, "kill", "test: no signal"},
	} {
		_, err := parseRules([]byte("rules:\n- name: r\n  event: "+c.event+"\n  condition: '"+c.cond+"'\n  action: "+c.action+"\n"), "r.yaml", bare)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want %q", c.event, c.action, err, c.want)
		}
	}
	if m, reason := withLSM.mechanism(EventExec, ActionDeny); reason != "" || !strings.Contains(m, "LSM") {
		t.Errorf("exec deny with BPF LSM: %q %q", m, reason)
	}
	if m, reason := noLSM.mechanism(EventOpen, ActionDeny); reason != "" || !strings.Contains(m, "Landlock") || !strings.Contains(m, "test: no BPF LSM") {
		t.Errorf("open deny without BPF LSM: %q %q", m, reason)
	}
}
