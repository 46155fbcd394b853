package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// berth-runtime runs the container's init from berth-runtime-init, a small
// binary of the same build beside it, and from itself when there is none
// or when the one beside it is from another build. Which binary the init
// runs from is seen as a user would: /proc/PID/exe of the created
// container's init (before start, the init is still berth's own process).
// A plain create whose init does create's work itself runs it from
// berth-runtime (the last case); the others turn that off.
func TestInitRunsFromInitBinary(t *testing.T) {
	if isRunc(t) {
		t.Skip("berth-runtime's init binary: runc has none")
	}
	testutil.RequiresRoot(t)
	t.Setenv("BERTH_NO_SELF_CREATE", "1")
	built := filepath.Join(filepath.Dir(runtimeBin(t)), "berth-runtime-init")
	if _, err := os.Stat(built); err != nil {
		t.Fatalf("%s: %v (make build writes it beside berth-runtime)", built, err)
	}

	// initExe creates a container with the runtime at bin, checks that it
	// runs, and returns the file its init runs from.
	initExe := func(t *testing.T, bin string) os.FileInfo {
		t.Helper()
		rt := testutil.NewRuntime(t, bin)
		b := testutil.NewBundle(t, testutil.WithShell("echo ran"))
		id := rt.NewID("initbin")
		rt.Create(id, b.Dir).OK(t)
		pid := rt.State(id).Pid
		exe := fmt.Sprintf("/proc/%d/exe", pid)
		fi, err := os.Stat(exe)
		if err != nil {
			t.Fatal(err)
		}
		// The binary is sealed (CVE-2019-5736) whichever it is.
		if f, err := os.OpenFile(exe, os.O_WRONLY, 0); err == nil {
			f.Close()
			t.Errorf("the init's executable %s opened for writing", exe)
		} else if !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.ETXTBSY) {
			t.Errorf("open %s for writing: %v, want EROFS or ETXTBSY", exe, err)
		}
		rt.Start(id).OK(t)
		if code := rt.Wait(id); code != 0 {
			t.Fatalf("container exit status %d, want 0", code)
		}
		if out, _ := rt.Output(id); strings.TrimSpace(out) != "ran" {
			t.Errorf("container printed %q, want \"ran\"", out)
		}
		rt.Delete(id).OK(t)
		return fi
	}
	stat := func(t *testing.T, path string) os.FileInfo {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	copyTo := func(t *testing.T, src, dst string) {
		t.Helper()
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("beside the runtime", func(t *testing.T) {
		if got := initExe(t, runtimeBin(t)); !os.SameFile(got, stat(t, built)) {
			t.Errorf("the init runs from %s (%d bytes), want %s", got.Name(), got.Size(), built)
		}
	})
	t.Run("missing", func(t *testing.T) {
		bin := filepath.Join(hostDir(t), "berth-runtime")
		copyTo(t, runtimeBin(t), bin)
		if got := initExe(t, bin); !os.SameFile(got, stat(t, bin)) {
			t.Errorf("without berth-runtime-init the init runs from %s (%d bytes), want berth-runtime itself", got.Name(), got.Size())
		}
	})
	t.Run("from another build", func(t *testing.T) {
		// Another build's init binary may speak another protocol: a
		// file of that name that is not this build's is not run.
		self, err := os.ReadFile(runtimeBin(t))
		if err != nil {
			t.Fatal(err)
		}
		for what, content := range map[string][]byte{
			"another build's berth-runtime-init": self,
			"a script as berth-runtime-init":     []byte("#!/bin/sh\necho hijacked\n"),
		} {
			dir := hostDir(t)
			bin := filepath.Join(dir, "berth-runtime")
			copyTo(t, runtimeBin(t), bin)
			if err := os.WriteFile(filepath.Join(dir, "berth-runtime-init"), content, 0o755); err != nil {
				t.Fatal(err)
			}
			if got := initExe(t, bin); !os.SameFile(got, stat(t, bin)) {
				t.Errorf("with %s the init runs from %s (%d bytes), want berth-runtime itself", what, got.Name(), got.Size())
			}
		}
	})
	t.Run("copied together", func(t *testing.T) {
		// An install copies both: the pair still works as one.
		dir := hostDir(t)
		bin := filepath.Join(dir, "berth-runtime")
		copyTo(t, runtimeBin(t), bin)
		copyTo(t, built, filepath.Join(dir, "berth-runtime-init"))
		if got := initExe(t, bin); !os.SameFile(got, stat(t, filepath.Join(dir, "berth-runtime-init"))) {
			t.Errorf("the init runs from %s (%d bytes), want the copied berth-runtime-init", got.Name(), got.Size())
		}
	})
	t.Run("self-create", func(t *testing.T) {
		// The init that does create's work holds the whole runtime.
		t.Setenv("BERTH_NO_SELF_CREATE", "")
		os.Unsetenv("BERTH_NO_SELF_CREATE")
		if got := initExe(t, runtimeBin(t)); !os.SameFile(got, stat(t, runtimeBin(t))) {
			t.Errorf("a self-creating init runs from %s (%d bytes), want berth-runtime", got.Name(), got.Size())
		}
	})
	t.Run("runtime binary on its own", func(t *testing.T) {
		// The init's command is still in berth-runtime.
		res := testutil.NewRuntime(t, built)
		out := res.Do("--version")
		if out.ExitCode == 0 || !strings.Contains(out.Stderr, "takes no commands") {
			t.Errorf("berth-runtime-init --version: %s, want a refusal", out)
		}
	})
}
