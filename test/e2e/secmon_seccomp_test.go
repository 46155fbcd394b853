package e2e

// Deny rules on system call arguments, carried out by the container's
// seccomp filter (internal/secmon seccompargs.go) beside the profile the
// container already has.

import (
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/secmon"
)

const noSetuidRoot = `rules:
- name: no-setuid-root
  event: setuid
  condition: syscall.name in ["setuid", "setreuid", "setresuid"] && (syscall.args[0] == 0 || syscall.args[1] == 0 || syscall.args[2] == 0)
  action: deny
`

// setidsSrc makes the raw system calls its arguments name, one per
// argument, e.g. `setresuid:-1:0:-1`, and prints each result. The values
// go to the kernel as given (1<<32 too), on this thread only.
const setidsSrc = `package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	nrs := map[string]uintptr{"setuid": syscall.SYS_SETUID, "setreuid": syscall.SYS_SETREUID, "setresuid": syscall.SYS_SETRESUID}
	for _, a := range os.Args[1:] {
		f := strings.Split(a, ":")
		var v [3]uintptr
		for i, s := range f[1:] {
			n, err := strconv.ParseInt(s, 0, 64)
			if err != nil {
				panic(err)
			}
			v[i] = uintptr(n)
		}
		_, _, errno := syscall.RawSyscall(nrs[f[0]], v[0], v[1], v[2])
		if errno != 0 {
			fmt.Printf("%s=%s\n", a, errno.Error())
		} else {
			fmt.Printf("%s=ok\n", a)
		}
	}
}
`

// TestSecmonSeccompSetuidRoot: "no setuid to root" denies the calls that
// would give uid 0 (also with garbage in the upper half of the register,
// which the kernel drops) and lets the others through, under Docker's
// default profile (where setuid is allowed, and the default action is
// already EPERM, so the deny answers EACCES) and without a profile (EPERM).
// The containers run with no-new-privileges: the runtime then loads the
// filter after it switches to the container's user (root here).
func TestSecmonSeccompSetuidRoot(t *testing.T) {
	e := newSecmon(t)
	setids := buildStatic(t, "setids", setidsSrc)
	rules := e.rulesFile(noSetuidRoot)
	// Each call runs as root in a fresh process: the ones that succeed
	// change nothing the next one depends on.
	calls := []string{"setuid:0", "setuid:4294967296", "setresuid:-1:0:-1", "setreuid:1000:0", "setresuid:-1:-1:-1", "setreuid:-1:1000", "setuid:1000"}
	denied := map[string]bool{"setuid:0": true, "setuid:4294967296": true, "setresuid:-1:0:-1": true, "setreuid:1000:0": true}
	run := func(opts ...string) map[string]string {
		t.Helper()
		var out []string
		for _, c := range calls {
			args := append([]string{"run", "--rm", "--network", "none", "-v", setids + ":/setids:ro"}, opts...)
			args = append(args, e.image, "/setids", c)
			out = append(out, strings.TrimSpace(e.ok(args...)))
		}
		got := map[string]string{}
		for _, l := range out {
			k, v, _ := strings.Cut(l, "=")
			got[k] = v
		}
		return got
	}
	for _, tc := range []struct {
		name  string
		opts  []string
		errno string
	}{
		{"default profile", []string{"--security-opt", "no-new-privileges", "--security-opt", "monitor=" + rules}, "permission denied"},
		{"no profile", []string{"--security-opt", "no-new-privileges", "--security-opt", "seccomp=unconfined", "--security-opt", "monitor=" + rules}, "operation not permitted"},
	} {
		got := run(tc.opts...)
		for _, c := range calls {
			want := "ok"
			if denied[c] {
				want = tc.errno
			}
			if got[c] != want {
				t.Errorf("%s: %s: got %q, want %q (all: %v)", tc.name, c, got[c], want, got)
			}
		}
	}
	// Without no-new-privileges the runtime loads the filter before it
	// switches to the container's user, root here: the rule would deny
	// that switch, and is refused with what to do.
	r := e.berth("run", "--rm", "--network", "none", "--security-opt", "monitor="+rules, e.image, "true")
	if r.code == 0 || !strings.Contains(r.stderr, `"no-setuid-root" denies setresuid(0, 0, 0)`) || !strings.Contains(r.stderr, "no-new-privileges") {
		t.Errorf("root without no-new-privileges: %s", r)
	}
	// As another user it starts (the switch to 1000 is allowed).
	if out := e.ok("run", "--rm", "--network", "none", "--user", "1000", "-v", setids+":/setids:ro", "--security-opt", "monitor="+rules, e.image, "/setids", "setuid:1000"); strings.TrimSpace(out) != "setuid:1000=ok" {
		t.Errorf("as user 1000: %q", out)
	}
	// Without the rule every call goes through (the container is root).
	for c, v := range run() {
		if v != "ok" {
			t.Errorf("without rules: %s: %s", c, v)
		}
	}
	// The refusals are alerts (reported at sys_exit, judged by the
	// rule's condition in the agent); the calls let through are not.
	id := e.runD("--network", "none", "--security-opt", "no-new-privileges", "-v", setids+":/setids:ro", "--security-opt", "monitor="+rules, e.image, "sleep", "1000")
	for _, c := range []string{"setuid:0", "setuid:1000", "setuid:4294967296"} {
		e.ok("exec", id, "/setids", c)
	}
	// Two refusals, setuid(0) and setuid(1<<32), which the kernel reads
	// as uid 0: the alert shows the argument as the kernel reads it.
	for seen := map[int]bool{}; len(seen) < 2; {
		a := e.waitAlert("no-setuid-root", func(a secmon.Alert) bool {
			return a.Container == id && a.Syscall != nil && a.Syscall.Name == "setuid" && !seen[a.Process.Pid]
		})
		seen[a.Process.Pid] = true
		if a.Action != "deny" || a.Event != "setuid" || len(a.Syscall.Args) == 0 || a.Syscall.Args[0] != 0 || a.Process.Pid == 0 {
			t.Errorf("deny alert %+v", a)
		}
	}
	for _, a := range e.alerts() {
		if a.Rule == "no-setuid-root" && a.Syscall != nil && a.Syscall.Name == "setuid" && len(a.Syscall.Args) > 0 && a.Syscall.Args[0] == 1000 {
			t.Errorf("an alert for an allowed call: %+v", a)
		}
	}
}

// TestSecmonSeccompRefused: a condition seccomp cannot check is refused
// before the container runs, naming the rule and the reason.
func TestSecmonSeccompRefused(t *testing.T) {
	e := newSecmon(t)
	rules := e.rulesFile(`rules:
- name: odd
  event: setuid
  condition: syscall.args[0] == syscall.args[1]
  action: deny
`)
	r := e.berth("run", "--rm", "--network", "none", "--security-opt", "monitor="+rules, e.image, "true")
	if r.code == 0 || !strings.Contains(r.stderr, `rule "odd"`) || !strings.Contains(r.stderr, "compares two values of the call") {
		t.Fatalf("refused rule: %s", r)
	}
}
