package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// A plain `create` starts the container init's stage before berth-runtime's
// Go runtime (internal/runtime/fastpath/prespawn.c) and adopts it once the
// spec is read; --debug says whether it did. These tests drive create as
// containerd's shim does (--root, --log, --bundle, --pid-file).

// TestCreateAdoptsPrespawnedInit: the adopted init is a whole container:
// in its cgroups, with the cgroup namespace the runtime cannot make before
// it has joined them, and it runs the process on start.
func TestCreateAdoptsPrespawnedInit(t *testing.T) {
	skipIfRunc(t, "berth-runtime's prespawned init stage")
	testutil.RequiresRoot(t)
	rt := newRuntime(t)
	// The default spec has a cgroup namespace, as runc's does.
	b := testutil.NewBundle(t, testutil.WithShell("cat /proc/self/cgroup"))

	create := func(t *testing.T, id string, env ...string) (log, out string) {
		t.Helper()
		dir := t.TempDir()
		logPath, outPath := filepath.Join(dir, "log"), filepath.Join(dir, "out")
		out0, err := os.Create(outPath)
		if err != nil {
			t.Fatal(err)
		}
		defer out0.Close()
		cmd := rt.Cmd("--log", logPath, "--debug", "create", "--bundle", b.Dir, "--pid-file", filepath.Join(dir, "pid"), id)
		cmd.Stdout, cmd.Stderr, cmd.Env = out0, out0, append(os.Environ(), env...)
		if err := cmd.Run(); err != nil {
			o, _ := os.ReadFile(outPath)
			t.Fatalf("create: %v\n%s", err, o)
		}
		pid := rt.State(id).Pid
		self, _ := os.Readlink("/proc/self/ns/cgroup")
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/cgroup", pid)); err != nil || ns == self {
			t.Errorf("the created init's cgroup namespace %q (%v), the host's %q: want its own", ns, err, self)
		}
		rt.Start(id).OK(t)
		deadline := time.Now().Add(testutil.CallTimeout)
		for rt.State(id).Status != "stopped" {
			if time.Now().After(deadline) {
				t.Fatalf("container %s still running after %s", id, testutil.CallTimeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
		logData, _ := os.ReadFile(logPath)
		outData, _ := os.ReadFile(outPath)
		rt.Delete(id).OK(t)
		return string(logData), string(outData)
	}

	log, out := create(t, rt.NewID("prespawn"))
	if !strings.Contains(log, "before the Go runtime") || !strings.Contains(log, "adopted=true") {
		t.Errorf("--debug log does not say the prespawned init stage was adopted:\n%s", log)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if !strings.HasSuffix(l, ":/") {
			t.Errorf("/proc/self/cgroup line %q, want the cgroup namespace root \"/\" (all of %q)", l, out)
		}
	}
	// BERTH_NO_PRESPAWN turns it off; the container is the same.
	log, out = create(t, rt.NewID("noprespawn"), "BERTH_NO_PRESPAWN=1")
	if strings.Contains(log, "before the Go runtime") {
		t.Errorf("with BERTH_NO_PRESPAWN the --debug log still names a prespawned stage:\n%s", log)
	}
	if !strings.HasSuffix(strings.TrimSpace(out), ":/") {
		t.Errorf("without prespawn /proc/self/cgroup: %q", out)
	}
}

// TestCreateDiscardsPrespawnedInit: a create that fails after its stage was
// started leaves no init behind (the stage has made namespaces and forked
// the init before the runtime read the spec).
func TestCreateDiscardsPrespawnedInit(t *testing.T) {
	skipIfRunc(t, "berth-runtime's prespawned init stage")
	testutil.RequiresRoot(t)
	rt := newRuntime(t)
	before := liveInits(t)

	bad := testutil.NewBundle(t, testutil.WithSpec(func(s *specs.Spec) { s.Process.Args = nil }))
	res := rt.Create(rt.NewID("badspec"), bad.Dir).Fails(t)
	if !strings.Contains(res.Stderr, "process.args") {
		t.Errorf("create of a spec without process.args: %s", res)
	}
	if n := liveInits(t); n != before {
		t.Errorf("%d container inits after the failed create, %d before", n, before)
	}

	good := testutil.NewBundle(t, testutil.WithShell("true"))
	id := rt.NewID("twice")
	rt.Create(id, good.Dir).OK(t)
	rt.Create(id, good.Dir).Fails(t)
	if n := liveInits(t); n != before+1 {
		t.Errorf("%d container inits after a second create of the same id, want %d (the first one's)", n, before+1)
	}
	rt.Delete(id, "--force").OK(t)
}

// liveInits counts the processes that are a container's init before its
// start: berth-runtime's init, waiting.
func liveInits(t *testing.T) int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range procs {
		if c, err := os.ReadFile(p); err == nil && bytes.HasPrefix(c, []byte("berth-runtime\x00init\x00")) {
			n++
		}
	}
	return n
}
