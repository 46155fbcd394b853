package engine

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestTeardownFindsUnrecordedPause: a sandbox torn down before its record
// got the pause process's pid (a RunSandbox cut short) still ends the
// pause process, found by the pid file startPause writes.
func TestTeardownFindsUnrecordedPause(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()
	sb := &Sandbox{ID: newID(), Config: SandboxConfig{HostNetwork: true, SharePID: true}}
	rundir := e.sandboxRunDir(sb.ID)
	if err := os.MkdirAll(rundir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rundir) })
	pid, err := e.startPause(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stopPause(pid, rundir)
		}
	})
	// No wait for the pause to show its command line: a teardown right
	// after the start must find it all the same (pauseAlive waits out
	// the exec's last step).
	if sb.PausePid != 0 {
		t.Fatalf("startPause recorded the pid itself (%d)", sb.PausePid)
	}
	e.teardownSandbox(ctx, sb)
	for i := 0; i < 500 && pauseAlive(pid, rundir); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if pauseAlive(pid, rundir) {
		t.Errorf("pause process %d of an unrecorded pid survived the sandbox's teardown", pid)
	} else {
		stopped = true
	}
	if _, err := os.Stat(rundir); !os.IsNotExist(err) {
		t.Errorf("run directory left: %v", err)
	}
}
