package monitor

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestReapLaterLeavesNoZombie: a child handed to ReapLater is reaped once
// it exits, also when it exits before ReapLater runs.
func TestReapLaterLeavesNoZombie(t *testing.T) {
	for _, name := range []string{"exits later", "already exited"} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", "read x")
			if name == "already exited" {
				cmd = exec.Command("true")
			}
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd.Process.Pid
			if name == "already exited" {
				waitState(t, pid, "Z")
			}
			ReapLater(pid)
			cmd.Process.Release()
			stdin.Close() // sh's read ends, and sh with it
			waitState(t, pid, "")
		})
	}
}

// waitState waits until pid's state is want ("" for gone), failing after
// a generous bound.
func waitState(t *testing.T, pid int, want string) {
	t.Helper()
	var got string
	for i := 0; i < 1000; i++ {
		got = ""
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			s := string(b)
			got = strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
		}
		if got == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d: state %q, want %q", pid, got, want)
}
