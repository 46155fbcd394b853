package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// pidfdListener is the caller's end of --pidfd-socket: it takes one
// connection and the one message runc sends on it.
type pidfdListener struct {
	path string
	got  chan pidfdMsg
}

type pidfdMsg struct {
	data string
	fd   int // -1 when none came
	err  error
}

func listenPidfd(t *testing.T) *pidfdListener {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pidfd.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &pidfdListener{path: path, got: make(chan pidfdMsg, 1)}
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			p.got <- pidfdMsg{fd: -1, err: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(time.Minute))
		buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4*4))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		m := pidfdMsg{data: string(buf[:n]), fd: -1, err: err}
		if cmsgs, cerr := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && cerr == nil && len(cmsgs) == 1 {
			if fds, ferr := unix.ParseUnixRights(&cmsgs[0]); ferr == nil && len(fds) == 1 {
				m.fd = fds[0]
			}
		}
		p.got <- m
	}()
	return p
}

// receive returns the message once it came: its data and the pid the
// pidfd refers to, read from the fd's fdinfo.
func (p *pidfdListener) receive(t *testing.T) (string, int, int) {
	t.Helper()
	select {
	case m := <-p.got:
		if m.err != nil || m.fd < 0 {
			t.Fatalf("--pidfd-socket: message %q, fd %d, error %v; want one fd", m.data, m.fd, m.err)
		}
		t.Cleanup(func() { unix.Close(m.fd) })
		info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", m.fd))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "Pid:"); ok {
				pid, _ := strconv.Atoi(strings.TrimSpace(v))
				return m.data, m.fd, pid
			}
		}
		t.Fatalf("the fd from --pidfd-socket is not a pidfd: fdinfo %q", info)
	case <-time.After(time.Minute):
		t.Fatal("nothing came on --pidfd-socket within a minute")
	}
	return "", -1, 0
}

// TestPidfdSocket: `create`, `run` and `exec` with --pidfd-socket send the
// caller a pidfd of the container's init or of the exec'd process, as runc
// 1.2 and later do (runc's pidfd-socket.bats): one message naming the kind
// of process, with the pidfd, which signals that process.
func TestPidfdSocket(t *testing.T) {
	skipIfRunc(t, "--pidfd-socket came with runc 1.2")
	for _, cmd := range []string{"create", "run"} {
		t.Run(cmd, func(t *testing.T) {
			rt := newRuntime(t)
			b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
			id := rt.NewID("pidfd")
			l := listenPidfd(t)
			if cmd == "create" {
				rt.Create(id, b.Dir, "--pidfd-socket", l.path).OK(t)
			} else {
				rt.Run(id, b.Dir, "-d", "--pidfd-socket", l.path).OK(t)
			}
			kind, fd, pid := l.receive(t)
			if kind != "standard" || pid != rt.State(id).Pid {
				t.Errorf("%s --pidfd-socket sent %q and a pidfd of %d; want \"standard\" and the init, %d", cmd, kind, pid, rt.State(id).Pid)
			}
			if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
				t.Fatalf("pidfd_send_signal: %v", err)
			}
			waitFor(t, "the container to stop", func() bool { return rt.State(id).Status == "stopped" })
			rt.Delete(id).OK(t)
		})
	}
	t.Run("exec", func(t *testing.T) {
		rt := newRuntime(t)
		b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
		id := rt.NewID("pidfdx")
		rt.Run(id, b.Dir, "-d").OK(t)
		l := listenPidfd(t)
		// Exec's --pid-file is the harness's, which reaps the process
		// once killed: a zombie of ours would keep the container's pid
		// namespace from finishing its exit.
		rt.Exec(id, []string{"-d", "--pidfd-socket", l.path}, "sleep", "1000").OK(t)
		kind, fd, pid := l.receive(t)
		var want int
		for _, f := range strings.Fields(rt.Do("ps", "--format", "json", id).OK(t).Stdout) {
			if p, err := strconv.Atoi(strings.Trim(f, "[],")); err == nil && p != rt.State(id).Pid {
				want = p
			}
		}
		if kind != "setns" || pid != want || want == 0 {
			t.Errorf("exec --pidfd-socket sent %q and a pidfd of %d; want \"setns\" and the exec'd process, %d", kind, pid, want)
		}
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
			t.Fatalf("pidfd_send_signal: %v", err)
		}
		waitFor(t, "the exec'd process to die", func() bool {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", want))
			return err != nil || strings.Contains(string(stat), ") Z ")
		})
		if st := rt.State(id).Status; st != "running" {
			t.Errorf("the container is %s after its exec'd process was killed; want running", st)
		}
		rt.Kill(id, "KILL").OK(t)
		rt.Wait(id)
		rt.Delete(id).OK(t)
	})
	t.Run("nobody-listens", func(t *testing.T) {
		rt := newRuntime(t)
		b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
		id := rt.NewID("pidfdbad")
		sock := filepath.Join(t.TempDir(), "none.sock")
		res := rt.Create(id, b.Dir, "--pidfd-socket", sock)
		if res.ExitCode == 0 || !strings.Contains(res.Stderr, "--pidfd-socket "+sock) {
			t.Errorf("create with a --pidfd-socket nobody listens on: want a failure naming the flag and %s: %s", sock, res)
		}
		testutil.CheckNoLeaks(t, testutil.Leaks{Root: rt.Root, ID: id, Bundle: b.Dir})
	})
}
