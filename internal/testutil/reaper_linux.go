package testutil

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Why tests reap containers themselves:
//
// `create` (and `run -d`) return while the container's init keeps running;
// the runtime process that forked it has exited, so the kernel reparents the
// init to the nearest ancestor that is a child subreaper, or to PID 1. A
// container manager must learn the init's exit status, so containerd's shim
// and Podman's conmon call prctl(PR_SET_CHILD_SUBREAPER) and then wait4 on
// the pid from --pid-file. The tests do the same: TestMain calls
// SetChildSubreaper once (it is a per-process attribute), and Runtime.Wait
// waits for the pid. Without it, the init would be reaped by PID 1 and its
// exit status lost, and the test could not tell "exited 3" from "killed".

// SetChildSubreaper makes the calling process a child subreaper: orphaned
// descendants (a container's init after `create` returns) are reparented to
// it, so it can wait for them. Call it once, from TestMain.
func SetChildSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

func isChildSubreaper() bool {
	var v int32
	// PR_GET_CHILD_SUBREAPER stores an int at the address in arg2.
	_, _, errno := unix.Syscall(unix.SYS_PRCTL, unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&v)), 0)
	return errno == 0 && v != 0
}

// WaitPid waits up to timeout for pid, a child (or reparented descendant) of
// the test process, to exit, and returns its status the way a shell reports
// it: the exit code, or 128+signal for a death by signal.
func WaitPid(pid int, timeout time.Duration) (int, error) {
	return waitPidReaping(pid, timeout, nil)
}

// waitPidReaping is WaitPid that also reaps the processes in others while it
// waits. A process started by `exec -d` is reparented to the test process
// (the runtime's exec has exited), not to the container's init; while it is
// an unreaped zombie, the kernel does not let the init of its pid namespace
// finish dying. A shim reaps every child; the tests reap what they started.
func waitPidReaping(pid int, timeout time.Duration, others []int) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, o := range others {
			if o != pid {
				unix.Wait4(o, nil, unix.WNOHANG, nil)
			}
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			if !isChildSubreaper() {
				return 0, fmt.Errorf("pid %d is not a child of the test process: call testutil.SetChildSubreaper in TestMain", pid)
			}
			return 0, fmt.Errorf("pid %d is not a child of the test process (already reaped, or not reparented to it)", pid)
		case err != nil:
			return 0, fmt.Errorf("wait4(%d): %w", pid, err)
		case got == pid:
			if ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return ws.ExitStatus(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("pid %d still running after %v", pid, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reapAll collects the pids that are (or become) zombie children of the test
// process, until none of them exists or timeout passes, or stop is closed and
// a last pass is done. Pids that are not our children are left alone.
func reapAll(pids []int, timeout time.Duration, stop <-chan struct{}) {
	deadline := time.Now().Add(timeout)
	left := append([]int(nil), pids...)
	for len(left) > 0 && time.Now().Before(deadline) {
		stopped := false
		select {
		case <-stop:
			stopped = true
		default:
		}
		var next []int
		for _, pid := range left {
			got, err := unix.Wait4(pid, nil, unix.WNOHANG, nil)
			if got == pid || (err != nil && !errors.Is(err, unix.EINTR)) {
				continue
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				next = append(next, pid)
			}
		}
		left = next
		if stopped {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
