package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// berth-runtime does plain starts and deletes before its Go runtime starts
// (internal/runtime/fastpath/fastpath.c) and leaves the rest to the Go code.
// These cases must reach the Go code and behave as it does.

// A process that outlives the init of a container without its own pid
// namespace is in the container's cgroup: delete kills it and still
// removes everything.
func TestDeleteKillsProcessesLeftInTheCgroup(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithWritableRoot(),
		testutil.WithShell("sleep 600 & echo $! > /tmp/bg; exit 0"),
		testutil.WithNamespaces(
			specs.LinuxNamespace{Type: specs.NetworkNamespace},
			specs.LinuxNamespace{Type: specs.IPCNamespace},
			specs.LinuxNamespace{Type: specs.UTSNamespace},
			specs.LinuxNamespace{Type: specs.MountNamespace},
		))
	id := rt.NewID("leftover")
	rt.Create(id, b.Dir).OK(t)
	rt.Start(id).OK(t)
	if code := rt.Wait(id); code != 0 {
		t.Fatalf("container exit status = %d, want 0", code)
	}
	data, err := os.ReadFile(b.Path("tmp/bg"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid of the background process: %q", data)
	}
	if !processRuns(pid) {
		t.Fatalf("the background process %d is not running before delete", pid)
	}
	rt.Delete(id).OK(t)
	waitFor(t, "the leftover process to be killed", func() bool { return !processRuns(pid) })
	if fileExists(filepath.Join(rt.Root, id)) {
		t.Errorf("state directory %s remains after delete", filepath.Join(rt.Root, id))
	}
}

// An init killed before start: start fails, and the container can still be
// deleted.
func TestStartAfterInitDied(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithShell("exit 0"))
	id := rt.NewID("deadinit")
	rt.Create(id, b.Dir).OK(t)
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
	if res := rt.Start(id); res.ExitCode == 0 {
		t.Fatalf("start after the init died succeeded: %s", res)
	}
	rt.Delete(id).OK(t)
	if fileExists(filepath.Join(rt.Root, id)) {
		t.Errorf("state directory %s remains after delete", filepath.Join(rt.Root, id))
	}
}

// processRuns says whether pid exists and is not a zombie.
func processRuns(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z' && s[i+2] != 'X'
}

// Callers pass global flags to start and delete: containerd's shim
// `--root R --log L --log-format json`, CRI-O `--root=R`, berth's monitor
// as containerd does. Plain starts and deletes with those flags are still
// done before the Go runtime starts (GODEBUG=inittrace=1 makes the Go
// runtime print a line for each package it initialises, so stderr shows
// which path ran), the log file is made as the Go path makes it, and an
// error met on the fast path is written there in the caller's format.
func TestFastPathTakesCallersLogFlags(t *testing.T) {
	if isRunc(t) {
		t.Skip("berth-runtime's C fast path: runc has none")
	}
	rt := newRuntime(t)
	dir := t.TempDir()
	run := func(args ...string) (stderr string, goRan bool, err error) {
		_, stderr, goRan, err = fastRun(t, rt.Bin, args...)
		return stderr, goRan, err
	}
	// The method can tell: a command the fast path never takes shows the
	// Go runtime's initialisation.
	if out, goRan, _ := run("--root", rt.Root, "state", "no-such-container"); !goRan {
		t.Fatalf("GODEBUG=inittrace=1 state: no Go init lines in stderr:\n%s", out)
	}
	for _, tc := range []struct {
		name  string
		flags func(log string) []string
		del   []string
	}{
		{"containerd's", func(log string) []string { return []string{"--root", rt.Root, "--log", log, "--log-format", "json"} }, []string{"delete"}},
		{"with equals signs, in another order", func(log string) []string {
			return []string{"--log-format=text", "--log=" + log, "--root=" + rt.Root}
		}, []string{"delete", "--force"}},
		{"with one dash", func(log string) []string { return []string{"-root", rt.Root, "-log", log} }, []string{"delete", "-f"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testutil.NewBundle(t, testutil.WithShell("exit 0"))
			id := rt.NewID("fplog")
			rt.Create(id, b.Dir).OK(t)
			log := filepath.Join(dir, id+".log")
			if out, goRan, err := run(append(tc.flags(log), "start", id)...); err != nil || goRan {
				t.Errorf("start %v: err %v, Go runtime ran %v (want the fast path):\n%s", tc.flags(log), err, goRan, out)
			}
			if _, err := os.Stat(log); err != nil {
				t.Errorf("the --log file after start: %v", err)
			}
			if code := rt.Wait(id); code != 0 {
				t.Errorf("exit status %d, want 0", code)
			}
			if out, goRan, err := run(append(append(tc.flags(log), tc.del...), id)...); err != nil || goRan {
				t.Errorf("%v %v: err %v, Go runtime ran %v (want the fast path):\n%s", tc.flags(log), tc.del, err, goRan, out)
			}
			if fileExists(filepath.Join(rt.Root, id)) {
				t.Errorf("state directory %s remains after delete", filepath.Join(rt.Root, id))
			}
		})
	}
	// A failing startContainer hook runs in the init, which answers the
	// fast path's start with the hook's error.
	for _, format := range []string{"json", "text"} {
		t.Run("hook error as "+format, func(t *testing.T) {
			b := testutil.NewBundle(t, testutil.WithShell("exit 0"), testutil.WithSpec(func(s *specs.Spec) {
				s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{
					Path: "/bin/sh", Args: []string{"sh", "-c", `echo 'no "start"	here' >&2; exit 3`},
				}}}
			}))
			id := rt.NewID("fphook")
			rt.Create(id, b.Dir).OK(t)
			t.Cleanup(func() { rt.Delete(id, "--force") })
			log := filepath.Join(dir, id+".log")
			out, goRan, err := run("--root", rt.Root, "--log", log, "--log-format", format, "start", id)
			if err == nil || goRan {
				t.Fatalf("start with a failing startContainer hook: err %v, Go runtime ran %v (want an error from the fast path):\n%s", err, goRan, out)
			}
			data, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			last := lines[len(lines)-1]
			if format == "json" {
				var rec struct{ Time, Level, Msg string }
				if err := json.Unmarshal([]byte(last), &rec); err != nil || rec.Level != "error" || !strings.Contains(rec.Msg, "no \"start\"\there") || rec.Time == "" {
					t.Errorf("last log record %q (%v): want an error record with the hook's message", last, err)
				}
			} else if !strings.HasPrefix(last, "time=") || !strings.Contains(last, ` level=error msg="`) || !strings.Contains(last, `no \"start\"\there`) {
				t.Errorf("last log line %q: want time=... level=error msg=\"...\" with the hook's message", last)
			}
		})
	}
}

// fastRun runs berth-runtime with args under GODEBUG=inittrace=1 and
// says whether the Go runtime started (it prints a line per package it
// initialises), with stdout and stderr.
func fastRun(t *testing.T, bin string, args ...string) (stdout, stderr string, goRan bool, err error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), strings.Contains(errb.String(), "init runtime @"), err
}

// `state` of a plain container is answered before the Go runtime starts,
// with exactly the bytes the Go path prints (which --debug forces), in
// every status: created, running, paused, stopped; annotations with
// characters JSON escapes included.
func TestFastPathState(t *testing.T) {
	if isRunc(t) {
		t.Skip("berth-runtime's C fast path: runc has none")
	}
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "600"), testutil.WithSpec(func(s *specs.Spec) {
		s.Annotations = map[string]string{"io.example/html": "<a href=\"x\">&</a>", "io.example/unicode": "größe ✓\ttab"}
	}))
	id := rt.NewID("fpstate")
	rt.Create(id, b.Dir).OK(t)
	t.Cleanup(func() { rt.Delete(id, "--force") })
	check := func(want string) {
		t.Helper()
		fast, errOut, goRan, err := fastRun(t, rt.Bin, "--root", rt.Root, "--log", filepath.Join(t.TempDir(), "log"), "--log-format", "json", "state", id)
		if err != nil || goRan {
			t.Fatalf("state (%s): err %v, Go runtime ran %v (want the fast path): %s", want, err, goRan, errOut)
		}
		slow, errOut, goRan, err := fastRun(t, rt.Bin, "--root", rt.Root, "--debug", "state", id)
		if err != nil || !goRan {
			t.Fatalf("--debug state (%s): err %v, Go runtime ran %v (want the Go path): %s", want, err, goRan, errOut)
		}
		if fast != slow {
			t.Errorf("state (%s), fast path:\n%s\nGo path:\n%s", want, fast, slow)
		}
		var st struct {
			Status string
			Pid    int
		}
		if err := json.Unmarshal([]byte(fast), &st); err != nil || st.Status != want || (st.Pid == 0) != (want == "stopped") {
			t.Errorf("state %q: %+v (%v), want status %s and a pid only while not stopped", fast, st, err, want)
		}
	}
	check("created")
	rt.Start(id).OK(t)
	check("running")
	rt.Do("pause", id).OK(t)
	check("paused")
	rt.Do("resume", id).OK(t)
	check("running")
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
	check("stopped")
}

// `kill ID [SIGNAL]` of a live init is sent before the Go runtime starts;
// what needs the cgroup (SIGKILL without a pid namespace of its own,
// --all) or a stopped container's error is the Go path's, unchanged.
func TestFastPathKill(t *testing.T) {
	if isRunc(t) {
		t.Skip("berth-runtime's C fast path: runc has none")
	}
	rt := newRuntime(t)
	for _, tc := range []struct {
		name   string
		args   []string
		hostNS bool
		fast   bool
		code   int
	}{
		{"default signal", nil, false, true, 143},
		{"TERM by name", []string{"TERM"}, false, true, 143},
		{"SIGKILL by name", []string{"SIGKILL"}, false, true, 137},
		{"KILL by number", []string{"9"}, false, true, 137},
		{"SIGKILL in the host pid namespace", []string{"KILL"}, true, false, 137},
		{"--all", []string{"--all", "TERM"}, false, false, 143},
		{"a signal the fast path does not know", []string{"SIGRTMIN+1"}, false, false, 99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The init is PID 1 of its namespace, which the kernel
			// gives no default action for TERM: the shell traps it.
			// It says when its traps are set: a signal before would be
			// lost.
			opts := []testutil.BundleOption{testutil.WithWritableRoot(),
				testutil.WithShell("trap 'exit 143' TERM; trap 'exit 99' 35; touch /tmp/ready; sleep 600 & wait")}
			if tc.hostNS {
				opts = append(opts, testutil.WithNamespaces(
					specs.LinuxNamespace{Type: specs.IPCNamespace},
					specs.LinuxNamespace{Type: specs.UTSNamespace},
					specs.LinuxNamespace{Type: specs.MountNamespace}))
			}
			b := testutil.NewBundle(t, opts...)
			id := rt.NewID("fpkill")
			rt.Create(id, b.Dir).OK(t)
			t.Cleanup(func() { rt.Delete(id, "--force") })
			rt.Start(id).OK(t)
			waitFor(t, "the container's traps", func() bool { return fileExists(b.Path("tmp/ready")) })
			args := []string{"--root", rt.Root, "kill"}
			if len(tc.args) > 0 && tc.args[0] == "--all" {
				args = append(args, "--all", id, tc.args[1])
			} else {
				args = append(append(args, id), tc.args...)
			}
			_, errOut, goRan, err := fastRun(t, rt.Bin, args...)
			if err != nil || goRan == tc.fast {
				t.Errorf("kill %v: err %v, Go runtime ran %v (want %v): %s", tc.args, err, goRan, !tc.fast, errOut)
			}
			if code := rt.Wait(id); code != tc.code {
				t.Errorf("exit status %d, want %d", code, tc.code)
			}
			// The init is gone: the Go path says so.
			_, errOut, goRan, err = fastRun(t, rt.Bin, "--root", rt.Root, "kill", id, "TERM")
			if err == nil || !goRan || !strings.Contains(errOut, "not running") {
				t.Errorf("kill of a stopped container: err %v, Go runtime ran %v (want the Go path's error): %s", err, goRan, errOut)
			}
		})
	}
}
