package proc

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// A process started a moment ago shows its own command line, at once
// after StartProcess returns (the window Args waits out), and none once it
// has ended, zombie or reaped.
func TestArgsOfAStartingProcess(t *testing.T) {
	for i := 0; i < 20; i++ {
		cmd := exec.Command("sleep", "600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		got := Args(pid)
		running := Running(pid)
		cmd.Process.Kill()
		// Killed, not yet reaped: a zombie.
		for deadline := time.Now().Add(10 * time.Second); Running(pid) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		zombie := Args(pid)
		cmd.Wait()
		gone := Args(pid)
		if !slices.Equal(got, []string{"sleep", "600"}) || !running {
			t.Fatalf("run %d: Args of a started process = %q, Running %v; want its command line, running", i, got, running)
		}
		if zombie != nil || gone != nil || Running(pid) {
			t.Fatalf("run %d: Args of a zombie = %q, of a reaped process = %q, Running %v; want nil, nil, false", i, zombie, gone, Running(pid))
		}
	}
}

func TestRunningSelf(t *testing.T) {
	if !Running(os.Getpid()) {
		t.Error("Running(own pid) = false")
	}
	if Running(-1) {
		t.Error("Running(-1) = true")
	}
}
