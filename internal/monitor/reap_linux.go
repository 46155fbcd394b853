package monitor

import (
	"os"

	"golang.org/x/sys/unix"
)

// ReapLater reaps the child pid when it exits, so that a long-lived
// launcher (berthd, a test binary) keeps no zombie of it, without holding
// a thread meanwhile as os.Process.Wait would (one per container): the
// child's pidfd turns readable at its exit, and the runtime's poller
// waits for that. Where pidfds cannot be polled it falls back to a
// blocking wait in a goroutine.
func ReapLater(pid int) {
	var ws unix.WaitStatus
	blocking := func() {
		for {
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
				return
			}
		}
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		go blocking()
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	go func() {
		defer f.Close()
		rc, err := f.SyscallConn()
		if err == nil && rc.Read(func(uintptr) bool {
			// 0: still running; EINTR: try again; anything else
			// (reaped, ECHILD) ends the wait.
			p, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			return p != 0 && err != unix.EINTR
		}) == nil {
			return
		}
		blocking()
	}()
}
