package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// berth-runtime does plain starts and deletes before its Go runtime starts
// (internal/runtime/nsenter/fastpath.c) and leaves the rest to the Go code.
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
