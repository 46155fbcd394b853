package monitor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
)

// Unix sockets as *os.File (non-blocking fds in Go's poller, so deadlines
// and Close work as with net.Conn), on raw syscalls rather than package
// net: net pulls in its resolver and, with cgo, dynamic linking against
// libc; berth-monitor's per-container memory pays for every mapped page.

// listener is a listening unix socket.
type listener struct {
	f    *os.File
	path string
}

// listenUnix listens on path (mode 0600), replacing a stale socket.
func listenUnix(path string) (*listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("make socket %s: %w", path, err)
	}
	// The umask makes the socket 0600 from the start: no window in which
	// another user could connect.
	addr, done, err := sockAddr(path)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	old := unix.Umask(0o177)
	err = unix.Bind(fd, addr)
	unix.Umask(old)
	done()
	if err == nil {
		err = unix.Listen(fd, 64)
	}
	if err != nil {
		unix.Close(fd)
		os.Remove(path)
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return &listener{f: os.NewFile(uintptr(fd), path), path: path}, nil
}

// accept waits for a connection, until the deadline set with
// l.f.SetDeadline or Close.
func (l *listener) accept() (*os.File, error) {
	raw, err := l.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var aerr error
	err = raw.Read(func(fd uintptr) bool {
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return aerr != unix.EAGAIN
	})
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, fmt.Errorf("accept on %s: %w", l.path, aerr)
	}
	return os.NewFile(uintptr(nfd), l.path), nil
}

// Close stops listening and removes the socket file.
func (l *listener) Close() error {
	os.Remove(l.path)
	return l.f.Close()
}

// peerUID returns the uid of the process at the other end of conn.
func peerUID(conn *os.File) (uint32, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var gerr error
	if err := raw.Control(func(fd uintptr) { cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return 0, err
	}
	if gerr != nil {
		return 0, gerr
	}
	return cred.Uid, nil
}

// dialUnix connects to the socket at path; errdefs.ErrNotFound if nothing
// listens there.
func dialUnix(ctx context.Context, path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("make socket: %w", err)
	}
	addr, done, err := sockAddr(path)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	defer done()
	for {
		err = unix.Connect(fd, addr)
		// EAGAIN: the listener's backlog is full; it drains it soon.
		if err != unix.EAGAIN && err != unix.EINTR {
			break
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return nil, fmt.Errorf("connect to %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// maxSockPath is the longest path sun_path holds (108 bytes with its NUL).
const maxSockPath = 107

// sockAddr returns the address of the socket at path. A path too long
// for sun_path (a deep --runroot) is reached through its directory's fd,
// /proc/self/fd/N/NAME; done closes that fd.
func sockAddr(path string) (*unix.SockaddrUnix, func(), error) {
	if len(path) <= maxSockPath {
		return &unix.SockaddrUnix{Name: path}, func() {}, nil
	}
	dir, name := filepath.Split(path)
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open socket directory %s: %w", dir, err)
	}
	short := "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + name
	if len(short) > maxSockPath {
		unix.Close(dfd)
		return nil, nil, fmt.Errorf("socket name %q is longer than a unix socket address allows: %w", name, errdefs.ErrInvalidArgument)
	}
	return &unix.SockaddrUnix{Name: short}, func() { unix.Close(dfd) }, nil
}

// recvFds reads one message from conn and returns the fds passed with it.
func recvFds(conn *os.File) ([]int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var oobn int
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		_, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, rerr
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if got, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	return fds, nil
}
