package e2e

// Runtime security monitor (internal/secmon) end to end: real containers
// through bin/berth with --security-opt monitor=FILE, the real agent
// (bin/berth-secmon) and its BPF programs in this host's kernel. The
// agent is one per host (/run/berth-secmon, pins under /sys/fs/bpf/berth);
// each test checks that with its last container gone the pins are too.

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/secmon"
	"github.com/berth-project/berth/internal/secmon/kern"
)

const secmonPins = "/sys/fs/bpf/berth"

// newSecmon is newEngine plus the check, at the end, that the agent has
// removed every pin and exited once the test's containers are gone.
func newSecmon(t *testing.T) *engineT {
	t.Helper()
	// Registered before newEngine's cleanup, so run after it (after the
	// containers are removed).
	t.Cleanup(func() {
		gone := func() bool {
			_, err := os.Stat(secmonPins)
			return errors.Is(err, os.ErrNotExist)
		}
		deadline := time.Now().Add(20 * time.Second)
		for !gone() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !gone() {
			ents, _ := os.ReadDir(filepath.Join(secmonPins, "links"))
			t.Errorf("%s left after the last container went (links: %v)", secmonPins, ents)
			killAgent(t)
			os.RemoveAll(secmonPins)
		}
	})
	e := newEngine(t)
	if _, err := os.Stat(filepath.Join(e.binDir, "berth-secmon")); err != nil {
		t.Fatalf("bin/berth-secmon: %v (run `make build`)", err)
	}
	return e
}

func (e *engineT) rulesFile(body string) string {
	p := filepath.Join(e.t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *engineT) alerts() []secmon.Alert {
	e.t.Helper()
	out := e.ok("monitor", "events", "--format", "json")
	var as []secmon.Alert
	for _, l := range strings.Split(out, "\n") {
		if l == "" {
			continue
		}
		var a secmon.Alert
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			e.t.Fatalf("alert line %q: %v", l, err)
		}
		as = append(as, a)
	}
	return as
}

// waitAlert waits for an alert of rule (the agent writes it after the
// kernel's event) and returns it.
func (e *engineT) waitAlert(rule string, match func(secmon.Alert) bool) secmon.Alert {
	e.t.Helper()
	var found secmon.Alert
	waitForOut(e.t, "an alert of rule "+rule, 20*time.Second, func() (bool, string) {
		as := e.alerts()
		for _, a := range as {
			if a.Rule == rule && (match == nil || match(a)) {
				found = a
				return true, ""
			}
		}
		b, _ := json.Marshal(as)
		return false, string(b)
	})
	return found
}

func agentPid(t *testing.T) int {
	b, err := os.ReadFile(filepath.Join(secmon.DefaultAgentDir, "agent.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(b))
	return pid
}

// killAgent kills the agent a berth command of the test started.
func killAgent(t *testing.T) {
	if pid := agentPid(t); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 200 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestSecmonDriftAndShell: a binary copied into the container and run is
// killed before it prints; a shell exec'd into a container whose rules
// kill shells dies; both are in `berth monitor events`, with an
// alert-only rule's record beside them.
func TestSecmonDriftAndShell(t *testing.T) {
	e := newSecmon(t)
	posted := make(chan secmon.Alert, 100)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a secmon.Alert
		if json.NewDecoder(r.Body).Decode(&a) == nil {
			select {
			case posted <- a:
			default:
			}
		}
	}))
	defer hook.Close()
	rules := e.rulesFile(`webhook: ` + hook.URL + `
rules:
- name: no-drift
  event: exec
  condition: exec.drift
  action: kill
- name: no-shell
  event: exec
  condition: exec.path in ["/bin/sh", "/bin/bash"] && !("shell-ok" in container.labels)
  action: kill
- name: seen-cat
  event: exec
  condition: exec.argv.size() > 0 && exec.argv[0] == "cat"
  action: alert
`)
	id := e.runD("--network", "none", "--security-opt", "monitor="+rules, e.image, "sleep", "1000")
	r := e.berth("exec", id, "/bin/busybox", "sh", "-c", "cp /bin/busybox /tmp/busybox && /tmp/busybox echo DRIFTED; echo rc=$?; cat /etc/group >/dev/null; echo done")
	if r.code != 0 || strings.Contains(r.stdout, "DRIFTED") || !strings.Contains(r.stdout, "rc=137") || !strings.Contains(r.stdout, "done") {
		t.Fatalf("drifted binary not killed before it printed: %s", r)
	}
	a := e.waitAlert("no-drift", nil)
	if a.Action != "kill" || a.Container != id || a.Exec == nil || !a.Exec.Drift || a.Exec.Path != "/tmp/busybox" ||
		len(a.Process.Argv) < 2 || a.Process.Argv[1] != "echo" || a.Image != e.image || a.Time.IsZero() || a.Process.Pid == 0 {
		t.Errorf("drift alert %+v", a)
	}
	e.waitAlert("seen-cat", func(a secmon.Alert) bool { return a.Action == "alert" })
	deadline := time.After(20 * time.Second)
	for got := false; !got; {
		select {
		case a := <-posted:
			got = a.Rule == "no-drift" && a.Container == id
		case <-deadline:
			t.Fatal("no webhook post of the drift alert")
		}
	}

	r = e.berth("exec", id, "sh", "-c", "echo SHELL")
	if r.code == 0 || strings.Contains(r.stdout, "SHELL") {
		t.Fatalf("a shell ran against the kill rule: %s", r)
	}
	a = e.waitAlert("no-shell", nil)
	if a.Action != "kill" || a.Exec.Path != "/bin/sh" || a.Exec.Drift {
		t.Errorf("shell alert %+v", a)
	}
	// The same rules with the label that lifts no-shell.
	id2 := e.runD("--network", "none", "--label", "shell-ok=1", "--security-opt", "monitor="+rules, e.image, "sleep", "1000")
	if out := e.ok("exec", id2, "sh", "-c", "echo SHELL"); out != "SHELL" {
		t.Errorf("labelled container: %q", out)
	}
	// The engine's events stream has them too.
	if out := e.ok("events", "--since", "30m", "--until", strconv.FormatInt(time.Now().Unix()+5, 10), "--filter", "event=secmon_kill"); !strings.Contains(out, "secmon_kill") {
		t.Errorf("berth events: no secmon_kill event: %q", out)
	}
}

// driftAndPortRules kill drift and deny connects to port 8888.
const driftAndPortRules = `rules:
- name: no-drift
  event: exec
  condition: exec.drift
  action: kill
- name: egress
  event: connect
  condition: connect.port == 8888
  action: deny
`

// TestSecmonSubCgroup: a privileged container that moves itself into a
// child of its cgroup stays under its rules (the programs look up the
// nearest ancestor with a policy).
func TestSecmonSubCgroup(t *testing.T) {
	e := newSecmon(t)
	rules := e.rulesFile(driftAndPortRules)
	script := `set -e; mkdir /tmp/cg; mount -t cgroup2 none /tmp/cg; P=$(sed -n 's/^0:://p' /proc/self/cgroup)
mkdir /tmp/cg$P/sub; echo $$ > /tmp/cg$P/sub/cgroup.procs; sed -n 's/^0:://p' /proc/self/cgroup
cp /bin/busybox /tmp/busybox; set +e; /tmp/busybox echo DRIFTED; echo rc=$?; nc -w1 127.0.0.1 8888 </dev/null; echo nc=$?
echo $$ > /tmp/cg$P/cgroup.procs; rmdir /tmp/cg$P/sub; umount /tmp/cg`
	r := e.berth("run", "--rm", "--network", "none", "--privileged", "--security-opt", "monitor="+rules, e.image, "sh", "-c", script)
	if !strings.Contains(r.stdout, "/sub\n") || strings.Contains(r.stdout, "DRIFTED") || !strings.Contains(r.stdout, "rc=137") ||
		!strings.Contains(r.stdout, "nc=1") || !strings.Contains(r.stderr+r.stdout, "Operation not permitted") {
		t.Fatalf("from a child cgroup: %s", r)
	}
}

// TestSecmonConnect: a container whose rules allow 127.0.0.1:9999 only
// connects there and gets EPERM elsewhere; alert-only rules record and let
// the connection be; a container without rules is untouched.
func TestSecmonConnect(t *testing.T) {
	e := newSecmon(t)
	deny := e.rulesFile(`rules:
- name: egress
  event: connect
  condition: '!(connect.address == "127.0.0.1" && connect.port == 9999)'
  action: deny
`)
	// EPERM comes before TCP: whether the 8888 server listens yet does
	// not matter.
	script := connectLoop(9999, "allowed") + `; nc -ll -p 8888 -e true & nc -w1 127.0.0.1 8888 </dev/null; echo denied=$?`
	r := e.berth("run", "--rm", "--network", "none", "--security-opt", "monitor="+deny, e.image, "sh", "-c", script)
	if !strings.Contains(r.stdout, "allowed=yes") || !strings.Contains(r.stdout, "denied=1") || !strings.Contains(r.stderr+r.stdout, "Operation not permitted") {
		t.Fatalf("connect rules: %s", r)
	}
	a := e.waitAlert("egress", nil)
	// The process's path and argv come from /proc and are empty when nc
	// has already exited (documented); its comm comes from the kernel.
	if a.Action != "deny" || a.Connect == nil || a.Connect.Address != "127.0.0.1" || a.Connect.Port != 8888 || a.Connect.Protocol != "tcp" || (a.Process.Path == "" && a.Process.Comm != "nc") {
		t.Errorf("egress alert %+v", a)
	}

	alert := e.rulesFile(`rules:
- name: egress-watch
  event: connect
  condition: connect.port == 8888
  action: alert
`)
	r = e.berth("run", "--rm", "--network", "none", "--security-opt", "monitor="+alert, e.image, "sh", "-c", connectLoop(8888, "rc"))
	if !strings.Contains(r.stdout, "rc=yes") {
		t.Fatalf("alert-only connect: %s", r)
	}
	e.waitAlert("egress-watch", func(a secmon.Alert) bool { return a.Action == "alert" && a.Connect.Port == 8888 })

	// No rules: the drifted binary and the connect both work.
	n := len(e.alerts())
	r = e.berth("run", "--rm", "--network", "none", e.image, "sh", "-c",
		`cp /bin/busybox /tmp/busybox && /tmp/busybox echo DRIFTED; `+connectLoop(8888, "rc"))
	if !strings.Contains(r.stdout, "DRIFTED") || !strings.Contains(r.stdout, "rc=yes") {
		t.Fatalf("container without rules: %s", r)
	}
	if m := len(e.alerts()); m != n {
		t.Errorf("a container without rules made %d alerts", m-n)
	}
}

// connectLoop is a shell snippet: a loopback server on port, and connects
// to it until one succeeds (the server may not listen yet); it prints
// NAME=yes on success, NAME=no after 100 tries.
func connectLoop(port int, name string) string {
	p := strconv.Itoa(port)
	return `nc -ll -p ` + p + ` -e true & ok=no; for i in $(seq 100); do if nc -w1 127.0.0.1 ` + p + ` </dev/null; then ok=yes; break; fi; sleep 0.1; done; echo ` + name + `=$ok`
}

// TestSecmonPtraceDeny: ptrace of a sibling fails under a deny rule (the
// container's seccomp filter) and works without it.
func TestSecmonPtraceDeny(t *testing.T) {
	e := newSecmon(t)
	tracer := buildTracer(t)
	rules := e.rulesFile(`rules:
- name: no-ptrace
  event: ptrace
  condition: "true"
  action: deny
`)
	script := `sleep 100 & /tracer $!; echo rc=$?; kill $!`
	r := e.berth("run", "--rm", "--network", "none", "--cap-add", "SYS_PTRACE", "-v", tracer+":/tracer:ro", "--security-opt", "monitor="+rules, e.image, "sh", "-c", script)
	if !strings.Contains(r.stdout, "operation not permitted") || !strings.Contains(r.stdout, "rc=1") {
		t.Fatalf("ptrace under the deny rule: %s", r)
	}
	r = e.berth("run", "--rm", "--network", "none", "--cap-add", "SYS_PTRACE", "-v", tracer+":/tracer:ro", e.image, "sh", "-c", script)
	if !strings.Contains(r.stdout, "attached") || !strings.Contains(r.stdout, "rc=0") {
		t.Fatalf("ptrace without rules: %s", r)
	}
}

// TestSecmonSyscallAlerts: alert-only rules on ptrace and on opens for
// writing record them and let them happen.
func TestSecmonSyscallAlerts(t *testing.T) {
	e := newSecmon(t)
	tracer := buildTracer(t)
	rules := e.rulesFile(`rules:
- name: tracing
  event: ptrace
  condition: syscall.name == "ptrace" && syscall.args[0] == 16
  action: alert
- name: etc-writes
  event: open
  condition: file.write && file.path.startsWith("/etc/")
  action: alert
`)
	r := e.berth("run", "--rm", "--network", "none", "--cap-add", "SYS_PTRACE", "-v", tracer+":/tracer:ro", "--security-opt", "monitor="+rules, e.image, "sh", "-c",
		`sleep 100 & /tracer $!; echo rc=$?; kill $!; echo x > /etc/berth-test && echo wrote; cat /etc/group >/dev/null`)
	if !strings.Contains(r.stdout, "attached") || !strings.Contains(r.stdout, "wrote") {
		t.Fatalf("alert-only: %s", r)
	}
	a := e.waitAlert("tracing", nil)
	// The path is read from /proc when the agent takes the event: the
	// tracer may be gone by then; its comm is from the kernel.
	if a.Action != "alert" || a.Syscall == nil || a.Syscall.Name != "ptrace" || a.Syscall.Args[0] != 16 || (a.Process.Path != "/tracer" && a.Process.Comm != "tracer") {
		t.Errorf("ptrace alert %+v", a)
	}
	a = e.waitAlert("etc-writes", nil)
	if a.File == nil || a.File.Path != "/etc/berth-test" || !a.File.Write {
		t.Errorf("open alert %+v", a)
	}
	for _, a := range e.alerts() {
		if a.File != nil && a.File.Path == "/etc/group" {
			t.Errorf("a read-only open reported: %+v", a)
		}
	}
}

// buildTracer builds a static program that PTRACE_ATTACHes to a pid.
func buildTracer(t *testing.T) string {
	t.Helper()
	return buildStatic(t, "tracer", `package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

func main() {
	pid, _ := strconv.Atoi(os.Args[1])
	if err := syscall.PtraceAttach(pid); err != nil {
		fmt.Println("ptrace:", err)
		os.Exit(1)
	}
	fmt.Println("attached")
	syscall.PtraceDetach(pid)
}
`)
}

// buildStatic builds a static Go program named name from src.
func buildStatic(t *testing.T, name, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\n\ngo 1.22\n"), 0o644)
	cmd := exec.Command("go", "build", "-o", name, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v: %s", name, err, out)
	}
	return filepath.Join(dir, name)
}

// TestSecmonAgentRestart: with the agent killed, the kernel goes on
// enforcing (pinned programs and maps); the alert of what happened
// meanwhile is written by the next agent, which a new container starts.
func TestSecmonAgentRestart(t *testing.T) {
	e := newSecmon(t)
	rules := e.rulesFile(driftAndPortRules)
	id := e.runD("--network", "none", "--security-opt", "monitor="+rules, e.image, "sleep", "1000")
	old := agentPid(t)
	if old == 0 {
		t.Fatal("no agent running")
	}
	killAgent(t)
	r := e.berth("exec", id, "sh", "-c", "cp /bin/busybox /tmp/busybox && /tmp/busybox echo DRIFTED; echo rc=$?; nc -w1 127.0.0.1 8888 </dev/null; echo nc=$?")
	if strings.Contains(r.stdout, "DRIFTED") || !strings.Contains(r.stdout, "rc=137") || !strings.Contains(r.stdout, "nc=1") || !strings.Contains(r.stderr+r.stdout, "Operation not permitted") {
		t.Fatalf("with the agent down: %s", r)
	}
	// `monitor events` brings a new agent, which reads what the kernel
	// queued meanwhile.
	e.waitAlert("no-drift", func(a secmon.Alert) bool { return a.Container == id })
	e.waitAlert("egress", func(a secmon.Alert) bool { return a.Container == id })
	if now := agentPid(t); now == 0 || now == old {
		t.Fatalf("agent pid %d after a restart (was %d)", now, old)
	}
	// A second container is taken by the new agent.
	id2 := e.runD("--network", "none", "--security-opt", "monitor="+rules, e.image, "sleep", "1000")
	r = e.berth("exec", id2, "sh", "-c", "cp /bin/busybox /tmp/busybox && /tmp/busybox echo DRIFTED; echo rc=$?")
	if strings.Contains(r.stdout, "DRIFTED") || !strings.Contains(r.stdout, "rc=137") {
		t.Fatalf("second container: %s", r)
	}
}

// TestSecmonRefused: rules the host cannot enforce, or that do not
// compile, fail `run` with the rule's name and the reason; nothing is
// left behind.
func TestSecmonRefused(t *testing.T) {
	e := newSecmon(t)
	cases := []struct{ rules, want string }{
		{"rules:\n- name: etc\n  event: open\n  condition: file.path.startsWith('/etc/')\n  action: deny\n", `rule "etc" (line 2): an open deny must be for writes`},
		{"rules:\n- name: pt\n  event: ptrace\n  condition: 'true'\n  action: kill\n", `rule "pt" (line 2): action kill on ptrace refused`},
		{"rules:\n- name: typo\n  event: exec\n  condition: exec.paht == 'x'\n  action: alert\n", `rule "typo" (line 2): condition: ERROR: <input>:1:5: undefined field 'paht'`},
		{"rules:\n- name: argv\n  event: exec\n  condition: exec.argv.size() > 2\n  action: kill\n", `rule "argv" (line 2): condition cannot be checked in the kernel`},
	}
	if kern.ProbeLSM() != "" {
		// Without BPF LSM, Landlock denies exec: static paths only.
		cases = append(cases, struct{ rules, want string }{"rules:\n- name: no-drift\n  event: exec\n  condition: exec.drift\n  action: deny\n", `rule "no-drift" (line 2): exec.drift cannot be denied: on this host exec and open deny are carried out by Landlock, which denies static paths`})
	}
	if kern.ProbeConnectKill() != "" {
		cases = append(cases, struct{ rules, want string }{"rules:\n- name: ck\n  event: connect\n  condition: connect.port == 1\n  action: kill\n", `rule "ck" (line 2): action kill on connect refused: connect kill: `})
	}
	for _, c := range cases {
		r := e.berth("run", "--rm", "--network", "none", "--security-opt", "monitor="+e.rulesFile(c.rules), e.image, "true")
		if r.code != 125 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("want exit 125 and %q: %s", c.want, r)
		}
	}
	if out := e.ok("ps", "-a", "-q"); out != "" {
		t.Errorf("containers left: %q", out)
	}
}

// TestSecmonKillContainer: a kill rule with scope container kills the
// offending process in the kernel and then every process of the
// container (cgroup.kill): the container exits with 137, its other
// processes gone with it; the alert says so.
func TestSecmonKillContainer(t *testing.T) {
	e := newSecmon(t)
	rules := e.rulesFile(`rules:
- name: no-drift
  event: exec
  condition: exec.drift
  action: kill
  scope: container
`)
	id := e.runD("--network", "none", "--security-opt", "monitor="+rules, e.image, "sh", "-c", "sleep 1000 & sleep 1000 & wait")
	r := e.berth("exec", id, "sh", "-c", "cp /bin/busybox /tmp/busybox && /tmp/busybox echo DRIFTED; echo rc=$?")
	if strings.Contains(r.stdout, "DRIFTED") {
		t.Fatalf("the drifted binary ran: %s", r)
	}
	a := e.waitAlert("no-drift", func(a secmon.Alert) bool { return a.Container == id })
	if a.Action != "kill" || a.Scope != "container" {
		t.Errorf("alert %+v", a)
	}
	waitForOut(t, "the container to exit", 20*time.Second, func() (bool, string) {
		out := e.ok("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", id)
		return out == "exited 137", out
	})
}

// TestSecmonAccept: an inbound TCP connection to a container with an
// accept alert rule is recorded (peer address, local port) and goes
// through; a port the rule does not name is not recorded.
func TestSecmonAccept(t *testing.T) {
	e := newSecmon(t)
	rules := e.rulesFile(`rules:
- name: inbound
  event: accept
  condition: connect.port == 7777 && connect.address == "127.0.0.1"
  action: alert
`)
	script := connectLoop(7777, "in") + "; " + connectLoop(7778, "other")
	r := e.berth("run", "--rm", "--network", "none", "--security-opt", "monitor="+rules, e.image, "sh", "-c", script)
	if !strings.Contains(r.stdout, "in=yes") || !strings.Contains(r.stdout, "other=yes") {
		t.Fatalf("inbound connections: %s", r)
	}
	a := e.waitAlert("inbound", nil)
	if a.Action != "alert" || a.Event != "accept" || a.Connect == nil || a.Connect.Port != 7777 || a.Connect.Address != "127.0.0.1" || a.Connect.PeerPort == 0 {
		t.Errorf("accept alert %+v", a)
	}
	for _, a := range e.alerts() {
		if a.Rule == "inbound" && a.Connect != nil && a.Connect.Port != 7777 {
			t.Errorf("a connection to another port alerted: %+v", a)
		}
	}
}

// TestSecmonUDPSendto: a UDP datagram sent without a connect (sendto, as
// traceroute's probes) is judged by the connect rules too: denied, it
// fails with EPERM and is alerted as a udp connect; without rules it goes.
func TestSecmonUDPSendto(t *testing.T) {
	e := newSecmon(t)
	deny := e.rulesFile(`rules:
- name: no-udp
  event: connect
  condition: connect.protocol == "udp" && connect.port >= 33434
  action: deny
`)
	probe := "traceroute -n -m 1 -q 1 -w 1 127.0.0.1 2>&1; echo rc=$?"
	r := e.berth("run", "--rm", "--network", "none", "--security-opt", "monitor="+deny, e.image, "sh", "-c", probe)
	if !strings.Contains(r.stdout, "Operation not permitted") {
		t.Fatalf("traceroute's unconnected UDP probe under a deny rule: %s", r)
	}
	a := e.waitAlert("no-udp", nil)
	if a.Action != "deny" || a.Connect == nil || a.Connect.Protocol != "udp" || a.Connect.Address != "127.0.0.1" || a.Connect.Port < 33434 {
		t.Errorf("no-udp alert %+v", a)
	}
	r = e.berth("run", "--rm", "--network", "none", e.image, "sh", "-c", probe)
	if strings.Contains(r.stdout, "Operation not permitted") || !strings.Contains(r.stdout, "127.0.0.1") {
		t.Errorf("traceroute without rules: %s", r)
	}
}

// TestSecmonExit: exit alert rules record a process's end with its exit
// status or killing signal; an exit the condition does not match is not
// recorded.
func TestSecmonExit(t *testing.T) {
	e := newSecmon(t)
	rules := e.rulesFile(`rules:
- name: died
  event: exit
  condition: exit.code == 3 || exit.signal == 9
  action: alert
`)
	r := e.berth("run", "--rm", "--network", "none", "--security-opt", "monitor="+rules, e.image, "sh", "-c",
		`sh -c 'exit 3'; echo code=$?; sleep 100 & p=$!; until [ "$(cat /proc/$p/comm)" = sleep ]; do sleep 0.05; done; kill -9 $p; wait $p; echo killed=$?; sh -c 'exit 4'; true`)
	if !strings.Contains(r.stdout, "code=3") || !strings.Contains(r.stdout, "killed=137") {
		t.Fatalf("exits: %s", r)
	}
	a := e.waitAlert("died", func(a secmon.Alert) bool { return a.Exit != nil && a.Exit.Code == 3 })
	if a.Event != "exit" || a.Action != "alert" || a.Exit.Signal != 0 || a.Process.Comm != "sh" || a.Process.Pid == 0 || a.Process.PPid == 0 {
		t.Errorf("exit 3 alert %+v", a)
	}
	a = e.waitAlert("died", func(a secmon.Alert) bool { return a.Exit != nil && a.Exit.Signal == 9 })
	if a.Exit.Code != 0 || a.Process.Comm != "sleep" {
		t.Errorf("SIGKILL alert %+v (exit %+v)", a, a.Exit)
	}
	for _, a := range e.alerts() {
		if a.Exit != nil && a.Exit.Code != 3 && a.Exit.Signal != 9 {
			t.Errorf("an exit the rule does not match alerted: %+v", a.Exit)
		}
	}
}

// TestSecmonExecParent: the exec event's parent: a shell started by a
// process named httpd is killed in the kernel (the parent's comm is a
// kernel check) and alerted with the parent's name and path; a shell
// started by a shell runs.
func TestSecmonExecParent(t *testing.T) {
	e := newSecmon(t)
	httpd := buildStatic(t, "httpd", `package main

import (
	"fmt"
	"os"
	"os/exec"
	"time"
)

func main() {
	out, err := exec.Command("/bin/sh", "-c", "echo WEBSHELL").CombinedOutput()
	fmt.Printf("out=%q err=%v\n", out, err)
	time.Sleep(500 * time.Millisecond) // for the agent's read of our exe
	os.Exit(0)
}
`)
	rules := e.rulesFile(`rules:
- name: web-shell
  event: exec
  condition: exec.path == "/bin/sh" && exec.parent.name == "httpd"
  action: kill
- name: from-httpd
  event: exec
  condition: exec.parent.path == "/usr/sbin/httpd"
  action: alert
`)
	r := e.berth("run", "--rm", "--network", "none", "-v", httpd+":/usr/sbin/httpd:ro", "--security-opt", "monitor="+rules, e.image, "sh", "-c",
		`/usr/sbin/httpd; sh -c 'echo INNER'`)
	if strings.Contains(r.stdout, "out=\"WEBSHELL") || !strings.Contains(r.stdout, "signal: killed") || !strings.Contains(r.stdout, "INNER") {
		t.Fatalf("a shell of httpd under a kill rule: %s", r)
	}
	a := e.waitAlert("web-shell", nil)
	if a.Action != "kill" || a.Exec == nil || a.Exec.Path != "/bin/sh" || a.Process.Parent == nil || a.Process.Parent.Name != "httpd" ||
		a.Process.Parent.Pid == 0 || a.Process.Parent.Pid != a.Process.PPid {
		t.Errorf("web-shell alert %+v (parent %+v)", a, a.Process.Parent)
	}
	a = e.waitAlert("from-httpd", nil)
	if a.Process.Parent == nil || a.Process.Parent.Path != "/usr/sbin/httpd" {
		t.Errorf("from-httpd alert %+v (parent %+v)", a, a.Process.Parent)
	}
	for _, a := range e.alerts() {
		if a.Rule == "web-shell" && a.Process.Parent != nil && a.Process.Parent.Name != "httpd" {
			t.Errorf("a shell of %q was killed: %+v", a.Process.Parent.Name, a)
		}
	}
}

// TestSecmonAcceptDeny: inbound TCP connections an accept deny rule
// matches never complete (the container's ingress program drops the SYN:
// the peer times out), from the container's loopback and from the host
// through the container's address; another port connects; one alert per
// attempt (the SYN's retransmits are folded).
func TestSecmonAcceptDeny(t *testing.T) {
	e := newSecmon(t)
	netName := e.networkCreate()
	rules := e.rulesFile(`rules:
- name: no-in
  event: accept
  condition: connect.port == 7777 && (inCIDR(connect.address, "127.0.0.0/8") || inCIDR(connect.address, "10.231.0.0/16") || connect.address == "::1")
  action: deny
`)
	id := e.runD("--network", netName, "--security-opt", "monitor="+rules, e.image, "sh", "-c",
		"nc -ll -p 7777 -e echo HELLO & nc -ll -p 7778 -e echo HELLO & wait")
	e.recordIPs(id)
	ip := e.inspectF(id, "{{(index .NetworkSettings.Networks \""+netName+"\").IPAddress}}")
	if ip == "" {
		t.Fatal("no container address")
	}
	// From the host: 7778 answers; 7777 times out (a refusal means the
	// server does not listen yet: try again).
	waitForOut(t, "port 7778 to answer", 20*time.Second, func() (bool, string) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "7778"), 2*time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	var last error
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "7777"), 2*time.Second)
		if err == nil {
			c.Close()
			t.Fatal("a connection from the host to port 7777 went through the deny rule")
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break
		}
		last = err
		if i == 50 {
			t.Fatalf("port 7777: %v", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a := e.waitAlert("no-in", nil)
	if a.Action != "deny" || a.Event != "accept" || a.Connect == nil || a.Connect.Port != 7777 || !strings.HasPrefix(a.Connect.Address, "10.231.") || a.Connect.PeerPort == 0 {
		t.Errorf("deny alert %+v", a)
	}
	// From the container's own loopback.
	r := e.berth("exec", id, "sh", "-c", "nc -w 2 127.0.0.1 7777 </dev/null; echo denied=$?; nc -w 2 127.0.0.1 7778 </dev/null; echo other=$?")
	if !strings.Contains(r.stdout, "denied=1") || strings.Contains(r.stderr, "refused") || !strings.Contains(r.stdout, "HELLO") || !strings.Contains(r.stdout, "other=0") {
		t.Fatalf("loopback: %s", r)
	}
	e.waitAlert("no-in", func(a secmon.Alert) bool { return a.Connect != nil && a.Connect.Address == "127.0.0.1" })
	// IPv6: the same from ::1.
	r = e.berth("exec", id, "sh", "-c", "nc -w 2 ::1 7777 </dev/null; echo denied=$?; nc -w 2 ::1 7778 </dev/null; echo other=$?")
	if !strings.Contains(r.stdout, "denied=1") || strings.Contains(r.stderr, "refused") || !strings.Contains(r.stdout, "HELLO") || !strings.Contains(r.stdout, "other=0") {
		t.Fatalf("IPv6 loopback: %s", r)
	}
	e.waitAlert("no-in", func(a secmon.Alert) bool { return a.Connect != nil && a.Connect.Address == "::1" })
	// The 2 s dial sent its SYN twice (at 0 and 1 s): one alert each.
	n := 0
	for _, a := range e.alerts() {
		if a.Rule == "no-in" && a.Connect != nil && a.Connect.Address == "127.0.0.1" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d alerts for one denied attempt from the loopback", n)
	}
}

// TestSecmonKillByFilePath: a kill rule on a path judges the file an exec
// runs, not only the name it is run by: the image's own /bin/sh run
// through a symbolic link made after the start, or through
// /proc/self/fd, dies, and the alert names /bin/sh; busybox itself, by
// its own name, runs.
func TestSecmonKillByFilePath(t *testing.T) {
	e := newSecmon(t)
	img := ownShellImage(e)
	rules := e.rulesFile("rules:\n- name: no-sh\n  event: exec\n  condition: exec.path == '/bin/sh'\n  action: kill\n")
	id := e.runD("--network", "none", "--security-opt", "monitor="+rules, img, "sleep", "1000")
	script := `ln -s /bin/sh /tmp/other; /tmp/other -c 'echo LINKED'; echo link=$?
exec 7</bin/sh; /proc/self/fd/7 -c 'echo BYFD'; echo fd=$?; echo done`
	r := e.berth("exec", id, "/bin/busybox", "ash", "-c", script)
	for _, want := range []string{"link=137", "fd=137", "done"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("want %q: %s", want, r)
		}
	}
	if strings.Contains(r.stdout, "LINKED") || strings.Contains(r.stdout, "BYFD") {
		t.Fatalf("/bin/sh ran by another name: %s", r)
	}
	a := e.waitAlert("no-sh", func(a secmon.Alert) bool { return a.Container == id })
	if a.Action != "kill" || a.Exec == nil || a.Exec.Path != "/bin/sh" {
		t.Errorf("alert %+v", a)
	}
}
