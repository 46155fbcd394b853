package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

func jsonIndent(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "\t")
	return enc
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// consoleProxy is the terminal of a foreground `run` or `exec -t`: the
// runtime receives the pty master itself and copies between it and its own
// stdio, putting its terminal in raw mode meanwhile.
type consoleProxy struct {
	local, remote *os.File
	master        *os.File
	restore       *unix.Termios
	out           sync.WaitGroup
}

func newConsoleProxy() (*consoleProxy, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &consoleProxy{local: os.NewFile(uintptr(fds[0]), "console-local"), remote: os.NewFile(uintptr(fds[1]), "console-remote")}, nil
}

func (c *consoleProxy) start() error {
	c.remote.Close()
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(c.local.Fd()), buf, oob, 0)
	if err != nil {
		return fmt.Errorf("receive pty: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return fmt.Errorf("receive pty: no fd")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return fmt.Errorf("receive pty: no fd")
	}
	c.master = os.NewFile(uintptr(fds[0]), "pty-master")
	// As runc does: the container's "\n" reaches our stdout as "\n", not
	// the terminal's "\r\n"; our own terminal adds its own if it is one.
	if t, err := unix.IoctlGetTermios(fds[0], unix.TCGETS); err == nil {
		t.Oflag &^= unix.ONLCR
		unix.IoctlSetTermios(fds[0], unix.TCSETS, t)
	}
	if t, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		c.restore = t
		raw := *t
		raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		raw.Oflag &^= unix.OPOST
		raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		raw.Cflag &^= unix.CSIZE | unix.PARENB
		raw.Cflag |= unix.CS8
		unix.IoctlSetTermios(0, unix.TCSETS, &raw)
		if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
			unix.IoctlSetWinsize(int(c.master.Fd()), unix.TIOCSWINSZ, ws)
		}
	}
	go io.Copy(c.master, os.Stdin)
	c.out.Add(1)
	go func() {
		defer c.out.Done()
		io.Copy(os.Stdout, c.master)
	}()
	return nil
}

// drain waits for the output the process wrote before it exited.
func (c *consoleProxy) drain() {
	if c.master != nil {
		c.out.Wait()
	}
}

func (c *consoleProxy) close() {
	if c.restore != nil {
		unix.IoctlSetTermios(0, unix.TCSETS, c.restore)
	}
	if c.master != nil {
		c.master.Close()
	}
	c.local.Close()
}
