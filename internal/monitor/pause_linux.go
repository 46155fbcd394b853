package monitor

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// pause is `berth-monitor --pause SANDBOXID`: the init of a pod's shared
// PID namespace. It holds the namespace open (it dies with its first
// process) and reaps the orphans that are reparented to it, until the
// engine kills it or asks it to end. The sandbox ID in its arguments lets
// the engine tell it from a process that reused its PID.
func pause() int {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT)
	for sig := range ch {
		if sig != unix.SIGCHLD {
			return 0
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	return 0
}
