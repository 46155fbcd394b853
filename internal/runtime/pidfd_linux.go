package runtime

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// dialPidfdSocket connects to the unix socket of --pidfd-socket, before
// anything of the container or process is made: a path nobody listens on,
// or a kernel without pidfd_open, fails the command with nothing left
// behind.
func dialPidfdSocket(path string) (*os.File, error) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return nil, fmt.Errorf("--pidfd-socket: pidfd_open needs Linux 5.3 or later: %w", err)
		}
		return nil, fmt.Errorf("--pidfd-socket: pidfd_open: %w", err)
	}
	unix.Close(fd)
	return dialSocket("--pidfd-socket", path)
}

// sendPidfd gives the caller on --pidfd-socket a pidfd of pid, as runc 1.2
// and later do: one message whose data says which kind of process it is
// (runc's words: "standard" for a container's init, "setns" for an exec'd
// process) and whose one SCM_RIGHTS fd is the pidfd. pid is our child
// (the runtime is a subreaper) and not yet reaped, so the number cannot
// name another process by now.
func sendPidfd(sock *os.File, pid int, kind string) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("--pidfd-socket: pidfd_open of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	for {
		err = unix.Sendmsg(int(sock.Fd()), []byte(kind), unix.UnixRights(fd), nil, unix.MSG_NOSIGNAL)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("--pidfd-socket: send the pidfd: %w", err)
	}
	return nil
}

// dialSocket connects to the unix socket at path, given by flag, and
// returns the connection as a file.
func dialSocket(flag, path string) (*os.File, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	defer conn.Close()
	f, err := conn.(*net.UnixConn).File()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return f, nil
}
