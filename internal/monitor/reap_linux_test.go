package monitor

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
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

// TestSpareMonitor: a spare monitor handed a config runs the container as
// a launched one does (its pid is the monitor's); an unused spare exits
// when closed, and one handed a config after it exited is replaced by a
// launched monitor.
func TestSpareMonitor(t *testing.T) {
	rt := firstRuntime(t)
	spare, err := NewSpare(monitorBin, "test")
	if err != nil {
		t.Fatal(err)
	}
	sparePid := spareOf(t, spare)
	b := testutil.NewBundle(t, testutil.WithShell(`echo out; exit 4`))
	cfg := newConfig(t, rt, b)
	st, err := StartWith(ctxT(t), spare, monitorBin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateRunning || st.MonitorPid != sparePid {
		t.Errorf("StartWith status = %+v, want running under the spare %d", st, sparePid)
	}
	if st, err = Wait(ctxT(t), cfg.StateDir, cfg.ExitFile); err != nil || st.ExitCode != 4 {
		t.Fatalf("exit status = %+v, %v; want code 4", st, err)
	}
	waitMonitorGone(t, cfg)

	unused, err := NewSpare(monitorBin, "test")
	if err != nil {
		t.Fatal(err)
	}
	pid := spareOf(t, unused)
	unused.Close()
	if !waitGone(pid) {
		t.Errorf("an unused spare %d still runs after Close", pid)
	}

	// A spare that is gone: StartWith launches a monitor instead.
	gone, err := NewSpare(monitorBin, "test")
	if err != nil {
		t.Fatal(err)
	}
	pid = spareOf(t, gone)
	unix.Kill(pid, unix.SIGKILL)
	if !waitGone(pid) {
		t.Fatalf("spare %d survived SIGKILL", pid)
	}
	b2 := testutil.NewBundle(t, testutil.WithShell(`exit 5`))
	cfg2 := newConfig(t, rt, b2)
	if st, err = StartWith(ctxT(t), gone, monitorBin, cfg2); err != nil || st.MonitorPid == pid {
		t.Fatalf("StartWith a dead spare = %+v, %v; want a launched monitor", st, err)
	}
	if st, err = Wait(ctxT(t), cfg2.StateDir, cfg2.ExitFile); err != nil || st.ExitCode != 5 {
		t.Fatalf("exit status = %+v, %v; want code 5", st, err)
	}
	waitMonitorGone(t, cfg2)
}

// spareOf finds the pid of the spare whose report pipe s holds: the one
// berth-monitor --spare child of this process.
func spareOf(t *testing.T, s *Spare) int {
	t.Helper()
	var pid int
	waitUntil(t, "the spare monitor to show", func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil || !strings.Contains(string(b), "--spare\x00test") {
				continue
			}
			st, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
			f := strings.Fields(string(st)[strings.LastIndexByte(string(st), ')')+1:])
			if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) && f[0] != "Z" {
				pid, _ = strconv.Atoi(e.Name())
				return true
			}
		}
		return false
	})
	return pid
}
