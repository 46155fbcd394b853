package engine

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/oci"
)

// consoleSocket receives the pty master an OCI runtime sends over
// --console-socket (runc's protocol: one SCM_RIGHTS message).
type consoleSocket struct {
	path string
	l    *net.UnixListener
}

func newConsoleSocket(path string) (*consoleSocket, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &consoleSocket{path: path, l: l}, nil
}

// Receive waits (at most d) for the runtime to send the terminal.
func (c *consoleSocket) Receive(ctx context.Context, d time.Duration) (*os.File, error) {
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.l.SetDeadline(deadline)
	conn, err := c.l.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, fmt.Errorf("console socket: no terminal received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, fmt.Errorf("console socket: no terminal received")
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

func (c *consoleSocket) Close() error {
	err := c.l.Close()
	os.Remove(c.path)
	return err
}

// resizeLoop applies terminal sizes to the pty until sizes is closed.
// The ioctl runs under the file's own reference (SyscallConn) rather than
// on pty.Fd(): Fd races with the pty's Close (a resize arriving as the
// process exits would hit whatever file reused the number) and switches
// the pty to blocking mode, so a Close would no longer interrupt a read.
func resizeLoop(pty *os.File, sizes <-chan TermSize) {
	if sizes == nil {
		return
	}
	rc, err := pty.SyscallConn()
	if err != nil {
		for range sizes {
		}
		return
	}
	for sz := range sizes {
		rc.Control(func(fd uintptr) {
			unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Rows, Col: sz.Cols})
		})
	}
}

// unmountAll unmounts everything stacked on dir.
func unmountAll(dir string) {
	for i := 0; i < 8; i++ {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return
		}
	}
}

// specUser is u as a runtime spec's process.user.
func (u execUser) specUser() specs.User {
	return specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.AdditionalGids}
}

// allCapabilities is every capability, for `exec --privileged`.
func allCapabilities() *specs.LinuxCapabilities {
	all := oci.KnownCapabilities()
	return &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
}
