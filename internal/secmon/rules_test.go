package secmon

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/secmon/kern"
)

const sampleRules = `rules:
- name: no-shell
  event: exec
  condition: exec.path in ["/bin/sh", "/bin/bash"] && !("shell-ok" in container.labels)
  action: kill
- name: no-drift
  event: exec
  condition: exec.drift
  action: kill
  scope: container
- name: egress
  event: connect
  condition: '!(inCIDR(connect.address, "127.0.0.0/8") && connect.port == 8080)'
  action: deny
- name: watch-exec
  event: exec
  condition: exec.argv.exists(a, a.contains("secret"))
  action: alert
- name: no-ptrace
  event: ptrace
  condition: "true"
  action: deny
`

func TestParseAndPlan(t *testing.T) {
	rs, err := ParseRules([]byte(sampleRules), "rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := rs.Plan(Container{ID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Rules[1].Scope != ScopeContainer || rs.Rules[0].Scope != "" {
		t.Errorf("scopes %q %q", rs.Rules[0].Scope, rs.Rules[1].Scope)
	}
	if len(p.Exec.Rules) != 2 || !p.Exec.Report || len(p.Connect.Rules) != 1 || p.Connect.Report {
		t.Fatalf("plan %+v", p)
	}
	if len(p.Syscalls) != 0 || len(p.Seccomp) != 1 || p.Seccomp[0].Syscalls[0] != "ptrace" {
		t.Fatalf("seccomp %+v", p.Seccomp)
	}
	shell := p.Exec.Rules[0]
	if shell.Action != kern.ActKill || len(shell.Atoms) != 2 {
		t.Fatalf("no-shell %+v", shell)
	}
	// Bits: atom 0 /bin/sh, atom 1 /bin/bash: true unless neither.
	if shell.Table[0] != 0b1110 {
		t.Errorf("no-shell table %b", shell.Table[0])
	}
	eg := p.Connect.Rules[0]
	if len(eg.Atoms) != 2 || eg.Atoms[0].Len != 96+8 || eg.Atoms[1].Lo != 8080 {
		t.Fatalf("egress %+v", eg)
	}
	// Denied unless both atoms hold.
	if eg.Table[0] != 0b0111 {
		t.Errorf("egress table %b", eg.Table[0])
	}

	// The label lifts the shell rule for that container only.
	p, err = rs.Plan(Container{ID: "c2", Labels: map[string]string{"shell-ok": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Exec.Rules) != 1 {
		t.Errorf("with the label: %d exec rules, want 1 (drift)", len(p.Exec.Rules))
	}

	ok, err := rs.Eval(3, Input{Exec: &ExecVars{Path: "/bin/cat", Argv: []string{"cat", "/secret"}}})
	if err != nil || !ok {
		t.Errorf("watch-exec: %v %v", ok, err)
	}
	ok, err = rs.Eval(3, Input{Exec: &ExecVars{Path: "/bin/cat", Argv: []string{"cat"}}})
	if err != nil || ok {
		t.Errorf("watch-exec on a clean argv: %v %v", ok, err)
	}
}

func TestSyscallAlertPlan(t *testing.T) {
	rs, err := ParseRules([]byte(`rules:
- name: tracing
  event: ptrace
  condition: syscall.name == "ptrace" && syscall.args[0] == 16
  action: alert
- name: etc-writes
  event: open
  condition: file.write && file.path.startsWith("/etc/")
  action: alert
`), "r")
	if err != nil {
		t.Fatal(err)
	}
	p, err := rs.Plan(Container{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Empty() || !slices.Contains(p.Syscalls, "ptrace") || !slices.Contains(p.Syscalls, "openat") {
		t.Errorf("syscalls %v", p.Syscalls)
	}
	ok, err := rs.Eval(0, Input{Syscall: &SyscallVars{Name: "ptrace", Args: []int64{16, 1, 0, 0}}})
	if !ok || err != nil {
		t.Errorf("tracing: %v %v", ok, err)
	}
	ok, err = rs.Eval(1, Input{File: &FileVars{Path: "/etc/passwd", Write: true}})
	if !ok || err != nil {
		t.Errorf("etc-writes: %v %v", ok, err)
	}
}

func TestAcceptPlan(t *testing.T) {
	rs, err := ParseRules([]byte("rules:\n- name: in\n  event: accept\n  condition: connect.port == 22\n  action: alert\n"), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := rs.Plan(Container{ID: "c"})
	if err != nil || !p.Accept || p.Empty() {
		t.Fatalf("plan %+v, %v", p, err)
	}
	// Deny: a kernel rule on the SYN (peer CIDR, local port), and the
	// alert rules' report stays off.
	rs, err = ParseRules([]byte("rules:\n- name: in\n  event: accept\n  condition: inCIDR(connect.address, '10.0.0.0/8') && connect.port == 22\n  action: deny\n"), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err = rs.Plan(Container{ID: "c"})
	if err != nil || p.Accept || p.Empty() || len(p.AcceptDeny.Rules) != 1 || p.AcceptDeny.Report || p.AcceptDeny.Rules[0].Action != kern.ActDeny ||
		len(p.AcceptDeny.Rules[0].Atoms) != 2 || !p.Connect.Empty() {
		t.Fatalf("accept deny plan %+v, %v", p, err)
	}
	// A condition the kernel cannot check on a SYN is refused.
	if _, err := ParseRules([]byte("rules:\n- name: in\n  event: accept\n  condition: process.uid == 0\n  action: deny\n"), "r.yaml"); err == nil || !strings.Contains(err.Error(), "cannot be checked in the kernel") {
		t.Errorf("accept deny on process.uid: %v", err)
	}
	if _, err := ParseRules([]byte("rules:\n- name: in\n  event: accept\n  condition: connect.port == 22\n  action: kill\n"), "r.yaml"); err == nil || !strings.Contains(err.Error(), "no process to kill") {
		t.Errorf("accept kill: %v", err)
	}
}

func TestExitPlan(t *testing.T) {
	rs, err := ParseRules([]byte("rules:\n- name: died\n  event: exit\n  condition: exit.signal == 9 || (exit.code != 0 && !exit.core)\n  action: alert\n"), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := rs.Plan(Container{ID: "c"})
	// exit.core is not in the kernel: every exit goes up.
	if err != nil || !p.Exit.Report || p.Empty() || !p.Exec.Empty() {
		t.Fatalf("plan %+v, %v", p, err)
	}
	// Code and signal are kernel atoms: only matching exits go up.
	kr, err := ParseRules([]byte("rules:\n- name: died\n  event: exit\n  condition: exit.signal == 9 || exit.code >= 3\n  action: alert\n"), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err = kr.Plan(Container{ID: "c"})
	if err != nil || p.Exit.Report || len(p.Exit.Rules) != 1 || len(p.Exit.Rules[0].Atoms) != 2 {
		t.Fatalf("kernel exit plan %+v, %v", p, err)
	}
	a0, a1 := p.Exit.Rules[0].Atoms[0], p.Exit.Rules[0].Atoms[1]
	if a0.Kind != kern.AtomProto || a0.Lo != 9 || a1.Kind != kern.AtomPort || a1.Lo != 3 || a1.Hi != 255 || p.Exit.Rules[0].Action != kern.ActAlert {
		t.Errorf("kernel exit rule %+v", p.Exit.Rules[0])
	}
	for in, want := range map[ExitVars]bool{{Signal: 9}: true, {Code: 1}: true, {Code: 0}: false, {Code: 2, Core: true}: false} {
		if got, err := rs.Eval(0, Input{Exit: &in}); err != nil || got != want {
			t.Errorf("exit %+v: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, act := range []string{"deny", "kill"} {
		_, err := ParseRules([]byte("rules:\n- name: died\n  event: exit\n  condition: 'true'\n  action: "+act+"\n"), "r.yaml")
		if err == nil || !strings.Contains(err.Error(), "already gone") || !errors.Is(err, errdefs.ErrNotImplemented) {
			t.Errorf("exit %s: %v", act, err)
		}
	}
	if _, err := ParseRules([]byte("rules:\n- name: x\n  event: exec\n  condition: exit.code == 1\n  action: alert\n"), "r.yaml"); err == nil || !strings.Contains(err.Error(), "cannot use exit") {
		t.Errorf("exec rule reading exit: %v", err)
	}
}

// The parent's comm is a kernel atom: a kill rule on a shell started by
// a web server is decided in the kernel; its path is the agent's.
func TestExecParentPlan(t *testing.T) {
	rs, err := ParseRules([]byte(`rules:
- name: web-shell
  event: exec
  condition: exec.path == "/bin/sh" && exec.parent.name in ["httpd", "nginx"]
  action: kill
- name: long-name
  event: exec
  condition: exec.parent.name == "a-name-longer-than-15"
  action: kill
- name: parent-path
  event: exec
  condition: exec.parent.path == "/usr/sbin/httpd" && exec.parent.pid > 1
  action: alert
`), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := rs.Plan(Container{ID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Exec.Rules) != 1 || !p.Exec.Report {
		t.Fatalf("exec policy %+v: want web-shell in the kernel (long-name is never true), parent-path reported", p.Exec)
	}
	r := p.Exec.Rules[0]
	if len(r.Atoms) != 3 || r.Atoms[1].Kind != kern.AtomPcommEq || string(r.Atoms[1].Data) != "httpd" || r.Atoms[2].Kind != kern.AtomPcommEq {
		t.Fatalf("web-shell %+v", r)
	}
	// Bits: 0 /bin/sh, 1 httpd, 2 nginx: sh and either parent.
	if r.Table[0] != 1<<0b011|1<<0b101|1<<0b111 {
		t.Errorf("table %b", r.Table[0])
	}
	in := Input{Exec: &ExecVars{Path: "/bin/sh", Parent: ParentVars{Pid: 7, Name: "httpd", Path: "/usr/sbin/httpd"}}}
	for i, want := range []bool{true, false, true} {
		if got, err := rs.Eval(i, in); err != nil || got != want {
			t.Errorf("rule %d: %v, %v", i, got, err)
		}
	}
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct{ rules, want string }{
		{"rules: []", "no rules"},
		{"webhook: ftp://x/\nrules:\n- name: a\n  event: exec\n  condition: 'true'\n  action: alert\n", `webhook "ftp://x/": not an http or https URL`},
		{"rules:\n- name: a\n  event: exec\n  condition: exec.pth == 'x'\n  action: alert\n", `rule "a" (line 2): condition: ERROR: <input>:1:5: undefined field 'pth'`},
		{"rules:\n- name: a\n  event: exec\n  condition: exec.path == 'x'\n  action: deny\n", `path "x" is not absolute`},
		{"rules:\n- name: a\n  event: exec\n  condition: exec.drift\n  action: deny\n", "exec.drift cannot be denied: on this host exec and open deny are carried out by Landlock"},
		{"rules:\n- name: a\n  event: exec\n  condition: exec.path != '/bin/sh'\n  action: deny\n", "cannot be denied"},
		{"rules:\n- name: a\n  event: exec\n  condition: exec.path.startsWith('/bin/') && exec.path == '/bin/sh'\n  action: deny\n", "both sides name paths"},
		{"rules:\n- name: a\n  event: exec\n  condition: \"!('x' in container.labels)\"\n  action: deny\n", "would deny every exec"},
		{"rules:\n- name: a\n  event: open\n  condition: file.path == '/etc/passwd'\n  action: deny\n", "AND the paths with file.write"},
		{"rules:\n- name: a\n  event: open\n  condition: file.write || file.path == '/etc/passwd'\n  action: deny\n", "would deny every open"},
		{"rules:\n- name: a\n  event: open\n  condition: file.write && file.path.startsWith('/etc/../')\n  action: deny\n", "not clean"},
		{"rules:\n- name: a\n  event: open\n  condition: file.write && file.path.startsWith('/')\n  action: deny\n", "whole container"},
		{"rules:\n- name: a\n  event: open\n  condition: file.path.startsWith('/etc/')\n  action: kill\n", "does not stop the open"},
		{"rules:\n- name: a\n  event: exec\n  condition: exec.path\n  action: alert\n", "not a bool"},
		{"rules:\n- name: a\n  event: exec\n  condition: connect.port == 1\n  action: alert\n", "a exec rule cannot use connect"},
		{"rules:\n- name: a\n  event: exec\n  condition: exec.argv.size() > 1\n  action: kill\n", "cannot be checked in the kernel"},
		{"rules:\n- name: a\n  event: connect\n  condition: process.uid == 0\n  action: deny\n", "cannot be checked in the kernel"},
		{"rules:\n- name: a\n  event: ptrace\n  condition: process.uid == 0\n  action: deny\n", "only container fields"},
		{"rules:\n- name: a\n  event: ptrace\n  condition: 'true'\n  action: kill\n", "does not stop the call"},
		{"rules:\n- name: a\n  event: ptrace\n  condition: exec.path == ''\n  action: alert\n", "a ptrace rule cannot use exec"},
		{"rules:\n- name: a\n  event: exex\n  condition: 'true'\n  action: alert\n", `event "exex": not one of`},
		{"rules:\n- name: a\n  event: exec\n  condition: 'true'\n  action: block\n", `action "block"`},
		{"rules:\n- name: a\n  event: exec\n  condition: 'true'\n  action: alert\n- name: a\n  event: exec\n  condition: 'true'\n  action: alert\n", "a second rule"},
		{"rules:\n- name: a\n  evnt: exec\n", `unknown field "evnt"`},
		{"rules:\n- name: a\n  event: exec\n  condition: 'true'\n  action: alert\n  scope: container\n", "scope container is for kill rules, not alert"},
		{"rules:\n- name: a\n  event: exec\n  condition: exec.drift\n  action: kill\n  scope: pod\n", `scope "pod": not process or container`},
		{"rules:\n- name: a\n  event: connect\n  condition: inCIDR(connect.address, '10.0.0.0/99')\n  action: deny\n", "inCIDR"},
	} {
		_, err := ParseRules([]byte(c.rules), "r.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "r.yaml: ") {
			t.Errorf("%q: got %v, want %q", c.rules, err, c.want)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrNotImplemented) {
			t.Errorf("%q: %v is not an invalid-argument or not-implemented error", c.rules, err)
		}
	}
}

func FuzzParseRules(f *testing.F) {
	f.Add([]byte(sampleRules))
	f.Add([]byte("rules:\n- name: a\n  event: connect\n  condition: connect.port > 1 ? connect.protocol == 'tcp' : inCIDR(connect.address, '::/0')\n  action: deny\n"))
	f.Add([]byte("rules:\n- {name: x, event: exec, condition: exec.path.startsWith('/tmp/'), action: kill}\n"))
	f.Add([]byte("rules: [[[["))
	f.Add([]byte("rules:\n- {name: x, event: exec, condition: 'exec.path in [\"/bin/sh\"] || exec.path.startsWith(\"/usr/\") && !(\"a\" in container.labels)', action: deny}\n"))
	f.Add([]byte("rules:\n- {name: x, event: open, condition: 'file.write && (file.path == \"/etc/passwd\" || file.path.startsWith(\"/etc/\"))', action: deny}\n"))
	f.Add([]byte("rules:\n- {name: x, event: exec, condition: exec.drift, action: kill, scope: container}\n"))
	f.Add([]byte("rules:\n- {name: x, event: exit, condition: 'exit.code != 0 || exit.signal in [9, 11] || exit.core', action: alert}\n"))
	f.Add([]byte("rules:\n- {name: x, event: exec, condition: 'exec.path == \"/bin/sh\" && exec.parent.name == \"httpd\" && exec.parent.path != \"\"', action: alert}\n"))
	f.Add([]byte("rules:\n- {name: x, event: exec, condition: 'exec.parent.name in [\"httpd\", \"nginx\"]', action: kill}\n"))
	f.Add([]byte("rules:\n- {name: x, event: accept, condition: 'inCIDR(connect.address, \"127.0.0.0/8\") && connect.port != 80', action: deny}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseRules(data, "fuzz")
		if err != nil {
			return
		}
		p, err := rs.Plan(Container{ID: "x", Labels: map[string]string{"a": "b"}})
		if err != nil {
			return
		}
		if err := p.Landlock.Validate(); err != nil {
			t.Fatalf("a compiled Landlock plan is invalid: %v", err)
		}
		for _, pol := range []KernelPolicy{p.Exec, p.Connect, p.AcceptDeny} {
			if len(pol.Rules) > kern.MaxRules {
				t.Fatalf("%d rules", len(pol.Rules))
			}
			for _, r := range pol.Rules {
				if len(r.Atoms) > kern.MaxAtoms {
					t.Fatalf("%d atoms", len(r.Atoms))
				}
				for _, a := range r.Atoms {
					if len(a.Data) > kern.AtomData || (a.Kind == kern.AtomPathEq && a.Len >= kern.AtomData) || (a.Kind == kern.AtomPcommEq && a.Len >= kern.CommLen) {
						t.Fatalf("atom %+v", a)
					}
				}
			}
		}
	})
}

// An alert condition the kernel can check becomes a kernel rule that only
// reports (after the deny and kill rules, which act on the first match),
// so that events it does not match never reach the agent; one it cannot
// check makes the kernel report every event of the kind.
func TestAlertPlanFiltersInKernel(t *testing.T) {
	rs, err := ParseRules([]byte(`rules:
- name: watch-port
  event: connect
  condition: connect.port == 1
  action: alert
- name: egress
  event: connect
  condition: connect.port == 8888
  action: deny
- name: watch-shell
  event: exec
  condition: exec.path == "/bin/sh"
  action: alert
- name: watch-argv
  event: exec
  condition: exec.argv.exists(a, a == "x")
  action: alert
`), "rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := rs.Plan(Container{ID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Connect
	if c.Report || len(c.Rules) != 2 || c.Rules[0].Action != kern.ActDeny || c.Rules[1].Action != kern.ActAlert || c.Rules[1].ID != 0 {
		t.Errorf("connect policy %+v: want the deny rule, then the alert rule as a kernel filter, and no report-all", c)
	}
	if !p.Exec.Report {
		t.Errorf("exec policy %+v: an argv condition cannot be checked in the kernel: every exec must be reported", p.Exec)
	}
}
