package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// gateScript marks that it started, then waits until the host creates
// /tmp/go in the (writable) rootfs, then exits with code.
func gateScript(code int) string {
	return "touch /tmp/started; while [ ! -e /tmp/go ]; do sleep 0.05; done; exit " + strconv.Itoa(code)
}

func TestLifecycle(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithWritableRoot(), testutil.WithShell(gateScript(3)))
	id := rt.NewID("life")

	rt.Create(id, b.Dir).OK(t)
	s := rt.State(id)
	if s.Status != "created" || s.ID != id || s.Bundle != b.Dir || s.Pid != rt.Pid(id) || s.OCIVersion == "" {
		t.Fatalf("state after create = %+v, want status created, id %s, bundle %s, pid %d (from --pid-file), an ociVersion", s, id, b.Dir, rt.Pid(id))
	}
	if fileExists(b.Path("tmp/started")) {
		t.Fatal("the user process ran before start")
	}
	rt.Start(id).OK(t)
	waitFor(t, "the user process to start", func() bool { return fileExists(b.Path("tmp/started")) })
	if s := rt.State(id); s.Status != "running" || s.Pid != rt.Pid(id) {
		t.Fatalf("state after start = %+v, want running with pid %d", s, rt.Pid(id))
	}
	if res := rt.Start(id); res.ExitCode == 0 {
		t.Errorf("start of a running container succeeded: %s", res)
	}

	if err := os.WriteFile(b.Path("tmp/go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := rt.Wait(id); code != 3 {
		t.Fatalf("container exit status = %d, want 3", code)
	}
	if s := rt.State(id); s.Status != "stopped" {
		t.Fatalf("state after exit = %+v, want stopped", s)
	}
	if res := rt.Start(id); res.ExitCode == 0 {
		t.Errorf("start of a stopped container succeeded: %s", res)
	}
	if res := rt.Kill(id, "KILL"); res.ExitCode == 0 {
		t.Errorf("kill of a stopped container succeeded: %s", res)
	}
	rt.Delete(id).OK(t)
	if res := rt.Do("state", id); res.ExitCode == 0 {
		t.Errorf("state after delete succeeded: %s", res)
	}
	if fileExists(filepath.Join(rt.Root, id)) {
		t.Errorf("state directory %s remains after delete", filepath.Join(rt.Root, id))
	}
}

func TestRunExitCodes(t *testing.T) {
	rt := newRuntime(t)
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"exit 255", 255},
	} {
		b := testutil.NewBundle(t, testutil.WithShell(tc.script))
		if res := rt.Run(rt.NewID("exit"), b.Dir); res.ExitCode != tc.want {
			t.Errorf("run `sh -c %q`: exit %d, want %d\n%s", tc.script, res.ExitCode, tc.want, res)
		}
	}
}

func TestRunExitBySignal(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithWritableRoot(), testutil.WithShell(gateScript(0)))
	id := rt.NewID("sigkill")
	done := make(chan testutil.Result, 1)
	go func() { done <- rt.Run(id, b.Dir) }()
	waitFor(t, "the container to start", func() bool {
		select {
		case res := <-done:
			t.Fatalf("run ended before the container started: %s", res)
		default:
		}
		return fileExists(b.Path("tmp/started"))
	})
	// The container's init is pid 1 of its namespace: only a signal from
	// outside, like this SIGKILL from the host, can kill it.
	if err := syscall.Kill(rt.Pid(id), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if res := <-done; res.ExitCode != 128+9 {
		t.Fatalf("run of a container killed by SIGKILL: exit %d, want 137\n%s", res.ExitCode, res)
	}
}

func TestRunForwardsSignals(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithWritableRoot(), testutil.WithShell(
		`trap 'exit 42' TERM; touch /tmp/started; while true; do sleep 0.05; done`))
	id := rt.NewID("fwd")
	cmd := rt.Cmd("run", "--bundle", b.Dir, "--pid-file", filepath.Join(b.Dir, "pid"), id)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, "the container to start", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("run ended before the container started: %v\n%s", err, stderr.String())
		default:
		}
		return fileExists(b.Path("tmp/started"))
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := <-exited
	if code := cmd.ProcessState.ExitCode(); code != 42 {
		t.Fatalf("run after SIGTERM to the runtime: exit %d (%v), want 42 from the container's TERM trap", code, err)
	}
}

func TestRunDetached(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithShell("echo detached-out; exec sleep 1000"))
	id := rt.NewID("detach")
	rt.Run(id, b.Dir, "-d").OK(t)
	if s := rt.State(id); s.Status != "running" {
		t.Fatalf("state after run -d = %+v, want running", s)
	}
	waitFor(t, "the container's output", func() bool {
		out, _ := rt.Output(id)
		return strings.Contains(out, "detached-out")
	})
	rt.Kill(id, "KILL").OK(t)
	if code := rt.Wait(id); code != 137 {
		t.Fatalf("exit status after kill KILL = %d, want 137", code)
	}
	rt.Delete(id).OK(t)
}

func TestKillSignals(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithWritableRoot(), testutil.WithShell(
		`trap 'echo TERM >> /tmp/sigs' TERM; touch /tmp/started; while true; do sleep 0.05; done`))
	id := rt.NewID("kill")
	rt.Run(id, b.Dir, "-d").OK(t)
	waitFor(t, "the container to start", func() bool { return fileExists(b.Path("tmp/started")) })
	for i, sig := range []string{"TERM", "SIGTERM", "15"} {
		rt.Kill(id, sig).OK(t)
		want := strings.Repeat("TERM\n", i+1)
		waitFor(t, "signal "+sig+" to arrive", func() bool {
			got, _ := os.ReadFile(b.Path("tmp/sigs"))
			return string(got) == want
		})
	}
	if res := rt.Kill(id, "NOSUCHSIGNAL"); res.ExitCode == 0 {
		t.Errorf("kill with an unknown signal succeeded: %s", res)
	}
	rt.Kill(id, "9").OK(t)
	if code := rt.Wait(id); code != 137 {
		t.Fatalf("exit status after kill 9 = %d, want 137", code)
	}

	// KILL by name, to a created container (the spec allows kill in created).
	b2 := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id2 := rt.NewID("killc")
	rt.Create(id2, b2.Dir).OK(t)
	rt.Kill(id2, "KILL").OK(t)
	if code := rt.Wait(id2); code != 137 {
		t.Fatalf("exit status of a created container after kill KILL = %d, want 137", code)
	}
	if s := rt.State(id2); s.Status != "stopped" {
		t.Fatalf("state after kill = %+v, want stopped", s)
	}
}

func TestKillAll(t *testing.T) {
	rt := newRuntime(t)
	// Without a pid namespace, the death of the init does not take its
	// children with it: only kill --all reaches them.
	b := testutil.NewBundle(t, testutil.WithWritableRoot(),
		testutil.WithNamespaces(nsList("network", "ipc", "uts", "mount")...),
		testutil.WithShell(`sleep 1000 & echo $! >> /tmp/pids; sleep 1000 & echo $! >> /tmp/pids; touch /tmp/started; wait`))
	id := rt.NewID("killall")
	rt.Run(id, b.Dir, "-d").OK(t)
	waitFor(t, "the container to start", func() bool { return fileExists(b.Path("tmp/started")) })
	raw, _ := os.ReadFile(b.Path("tmp/pids"))
	var pids []int
	for _, f := range strings.Fields(string(raw)) {
		pid, _ := strconv.Atoi(f)
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Fatalf("pids of the container's children: %q", raw)
	}
	rt.Kill(id, "KILL", "--all").OK(t)
	if code := rt.Wait(id); code != 137 {
		t.Fatalf("init exit status after kill --all KILL = %d, want 137", code)
	}
	for _, pid := range pids {
		// The children were reparented to the test process, the subreaper.
		if code, err := testutil.WaitPid(pid, testutil.CallTimeout); err != nil || code != 137 {
			t.Errorf("child %d of the container: status %d (%v), want killed by SIGKILL", pid, code, err)
		}
	}
	rt.Delete(id).OK(t)
}

func TestDeleteRunning(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("delrun")
	rt.Run(id, b.Dir, "-d").OK(t)
	pid := rt.Pid(id)
	rt.Delete(id).Fails(t)
	if s := rt.State(id); s.Status != "running" {
		t.Fatalf("state after a refused delete = %+v, want running", s)
	}
	rt.Delete(id, "--force").OK(t)
	if code, err := testutil.WaitPid(pid, testutil.CallTimeout); err != nil || code != 137 {
		t.Errorf("container init after delete --force: status %d (%v), want killed by SIGKILL", code, err)
	}
	if res := rt.Do("state", id); res.ExitCode == 0 {
		t.Errorf("state after delete --force succeeded: %s", res)
	}
}

// TestDeleteCreated pins a deliberate deviation from runtime-spec (delete
// of a container that is not stopped MUST fail): a created container is
// killed and deleted without --force, as runc does, because containerd's
// runc shim deletes a task it never started with a plain `delete ID`
// (createdState.Delete), and a refusal would leave its init waiting on
// exec.fifo for good. Running and paused containers are refused
// (TestDeleteRunning). See the README's berth-runtime section.
func TestDeleteCreated(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	id := rt.NewID("delcreated")
	rt.Create(id, b.Dir).OK(t)
	pid := rt.Pid(id)
	rt.Delete(id).OK(t)
	if code, err := testutil.WaitPid(pid, testutil.CallTimeout); err != nil || code != 137 {
		t.Errorf("init of a created container after delete: status %d (%v), want killed by SIGKILL", code, err)
	}
	if res := rt.Do("state", id); res.ExitCode == 0 {
		t.Errorf("state after delete succeeded: %s", res)
	}
}

func TestList(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	ids := []string{rt.NewID("list"), rt.NewID("list")}
	for _, id := range ids {
		rt.Create(id, b.Dir).OK(t)
	}
	rt.Start(ids[1]).OK(t)

	table := rt.List().OK(t).Stdout
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !slices.Equal(strings.Fields(lines[0]), []string{"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"}) {
		t.Fatalf("list table:\n%s", table)
	}
	wantStatus := map[string]string{ids[0]: "created", ids[1]: "running"}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 6 || wantStatus[f[0]] != f[2] || f[1] != strconv.Itoa(rt.Pid(f[0])) || f[3] != b.Dir || f[5] != "root" {
			t.Errorf("list row %q, want id, pid, status %v, bundle %s, created, owner root", line, wantStatus, b.Dir)
		}
	}

	var entries []map[string]any
	out := rt.List("--format", "json").OK(t).Stdout
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 2 {
		t.Fatalf("list --format json: %v\n%s", err, out)
	}
	// One line, as runc prints it and its own tests match it.
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
		t.Errorf("list --format json printed %d lines, want 1: %s", n+1, out)
	}
	for _, e := range entries {
		id, _ := e["id"].(string)
		if wantStatus[id] == "" || e["status"] != wantStatus[id] || e["bundle"] != b.Dir || e["pid"] != float64(rt.Pid(id)) {
			t.Errorf("list --format json entry %v", e)
		}
	}

	q := strings.Fields(rt.List("-q").OK(t).Stdout)
	slices.Sort(q)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(q, want) {
		t.Errorf("list -q = %q, want %q", q, want)
	}
}

func TestPs(t *testing.T) {
	testutil.RequiresBinary(t, "ps", "procps")
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithWritableRoot(),
		testutil.WithShell(`sleep 1000 & echo $! > /tmp/child; wait`))
	id := rt.NewID("ps")
	rt.Run(id, b.Dir, "-d").OK(t)
	waitFor(t, "the child to start", func() bool { return fileExists(b.Path("tmp/child")) })
	init := rt.Pid(id)
	// /tmp/child holds the child's pid in the container's pid namespace;
	// the host pid is found from the init's children.
	children, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(init), "task", strconv.Itoa(init), "children"))
	child, _ := strconv.Atoi(strings.TrimSpace(string(children)))
	if child == 0 {
		t.Fatalf("children of %d: %q", init, children)
	}

	var pids []int
	out := rt.Ps(id, []string{"--format", "json"}).OK(t).Stdout
	if err := json.Unmarshal([]byte(out), &pids); err != nil {
		t.Fatalf("ps --format json: %v\n%s", err, out)
	}
	slices.Sort(pids)
	want := []int{init, child}
	slices.Sort(want)
	if !slices.Equal(pids, want) {
		t.Errorf("ps --format json = %v, want %v (init and its sleep)", pids, want)
	}

	table := rt.Ps(id, nil).OK(t).Stdout
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "PID") {
		t.Fatalf("ps table:\n%s", table)
	}
	for _, pid := range want {
		found := false
		for _, l := range lines[1:] {
			if slices.Contains(strings.Fields(l), strconv.Itoa(pid)) {
				found = true
			}
		}
		if !found {
			t.Errorf("ps table has no row for pid %d:\n%s", pid, table)
		}
	}
	if !strings.Contains(table, "sleep 1000") {
		t.Errorf("ps table does not show the container's `sleep 1000`:\n%s", table)
	}
}

// nsList makes namespace entries of the given types (no paths).
func nsList(types ...string) []specs.LinuxNamespace {
	var ns []specs.LinuxNamespace
	for _, t := range types {
		ns = append(ns, specs.LinuxNamespace{Type: specs.LinuxNamespaceType(t)})
	}
	return ns
}
