package testutil

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ConsoleSocket is the receiving end of runc's --console-socket: a unix
// socket on which the runtime sends the master of the container's pty as an
// SCM_RIGHTS message, as containerd's shim and conmon receive it.
type ConsoleSocket struct {
	Path string

	ln  *net.UnixListener
	got chan consoleResult
}

type consoleResult struct {
	f   *os.File
	err error
}

// NewConsoleSocket listens on a new socket in a temporary directory and
// accepts one connection in the background. The socket and any received
// master are closed when t ends.
func NewConsoleSocket(t testing.TB) *ConsoleSocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-e2e-console-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("listen on console socket: %v", err)
	}
	cs := &ConsoleSocket{Path: path, ln: ln, got: make(chan consoleResult, 1)}
	go cs.acceptOne()
	t.Cleanup(func() {
		ln.Close()
		select {
		case r := <-cs.got:
			if r.f != nil {
				r.f.Close()
			}
		default:
		}
	})
	return cs
}

func (cs *ConsoleSocket) acceptOne() {
	conn, err := cs.ln.AcceptUnix()
	if err != nil {
		cs.got <- consoleResult{err: fmt.Errorf("accept on console socket: %w", err)}
		return
	}
	defer conn.Close()
	f, err := recvFd(conn)
	cs.got <- consoleResult{f: f, err: err}
}

// Receive returns the pty master the runtime sent, waiting up to timeout.
// The caller owns (and closes) the file.
func (cs *ConsoleSocket) Receive(timeout time.Duration) (*os.File, error) {
	select {
	case r := <-cs.got:
		return r.f, r.err
	case <-time.After(timeout):
		return nil, fmt.Errorf("no pty master on %s after %v", cs.Path, timeout)
	}
}

// recvFd reads one message carrying exactly one file descriptor.
func recvFd(conn *net.UnixConn) (*os.File, error) {
	name := make([]byte, 4096) // runc sends the pty's name as the payload
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(name, oob)
	if err != nil {
		return nil, fmt.Errorf("read console socket message: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		rights, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fds = append(fds, rights...)
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("console socket message %q carried %d file descriptors, want 1", name[:n], len(fds))
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}
