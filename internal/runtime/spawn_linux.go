package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/runtime/initproc"
)

type nsJoin struct {
	name string // /proc/PID/ns name: user mnt pid net ipc uts cgroup time
	path string
}

// spawnOptions describe the process that becomes a container init or an
// exec'd process.
type spawnOptions struct {
	join        []nsJoin
	clone       uintptr
	uidMaps     []specs.LinuxIDMapping
	gidMaps     []specs.LinuxIDMapping
	timeOffsets map[string]specs.LinuxTimeOffset
	joinCgroup  func(pid int) error // puts the first child in the container's cgroup
	oomScoreAdj *int
	stdio       [3]*os.File
	preserveFds int
	fifo        *os.File         // O_PATH fd of exec.fifo (create only)
	console     *os.File         // connected console socket (terminal only)
	mountFiles  map[int]*os.File // idmapped mounts, by index in the spec's mounts
	// lateMounts are bind sources cloned in the init's mount namespace
	// once it exists (cloneInMountNS) and sent to the init before its
	// config, by index in the spec's mounts.
	lateMounts map[int]lateMount
	rootDir    *os.File // exec without a mount namespace: the init's root
	message    *initproc.Message
	// beforeConfig runs once the init is forked, before it is sent its
	// config (which it waits for after starting its Go runtime).
	beforeConfig func() error
	// prespawn, when set, is a stage started before the runtime's Go
	// runtime (create): adopted when it fits, else discarded.
	prespawn *Prespawn
}

// child is a spawned init (or exec'd process) that is still in its setup
// phase and talks to the runtime over the sync socket.
type child struct {
	pid     int
	timeout time.Duration // of the current deadline, for its error
	sock    *os.File
	dec     *json.Decoder
	enc     *json.Encoder
}

// spawn starts `berth-runtime init` in the container's namespaces. On error
// nothing it started is left running.
func spawn(opt spawnOptions) (_ *child, retErr error) {
	if opt.prespawn.adoptable(&opt) {
		c, err := spawnPrespawned(opt, opt.prespawn)
		if !errors.Is(err, errPrespawnLost) {
			return c, err
		}
	}
	opt.prespawn.Discard()
	exe, err := sealedInit()
	if err != nil {
		return nil, err
	}
	defer exe.Close()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("init socket: %w", err)
	}
	// Our end is non-blocking, so os.File puts it in the poller and
	// every read and write on it can have a deadline (child.deadline).
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("init socket: %w", err)
	}
	parentSock := os.NewFile(uintptr(fds[0]), "init-parent")
	childSock := os.NewFile(uintptr(fds[1]), "init-child")
	defer childSock.Close()
	defer func() {
		if retErr != nil {
			parentSock.Close()
		}
	}()

	// The process is started with syscall.StartProcess, not os/exec: the
	// first os.StartProcess of a process probes whether pidfds work by
	// cloning and reaping a throwaway child, a whole extra process on
	// create's critical path (~0.5 ms here), and nothing below needs a
	// pidfd.
	var extra []*os.File
	// Preserved fds keep their numbers (3..3+N-1), as with runc, so the
	// sync socket and the rest come after them.
	for i := 0; i < opt.preserveFds; i++ {
		extra = append(extra, os.NewFile(uintptr(3+i), "preserved"))
	}
	addFd := func(f *os.File) int {
		extra = append(extra, f)
		return 2 + len(extra)
	}
	env := []string{
		initproc.EnvInitPipe + "=" + strconv.Itoa(addFd(childSock)),
		initproc.EnvPreserve + "=" + strconv.Itoa(opt.preserveFds),
		// The init does its work on one locked thread. With a P per
		// CPU the Go runtime sets up more per-P state and threads at
		// start: about 45 more page faults, 0.5 ms on a VM, in every
		// create and exec. Its environment never reaches the container
		// process or hooks, which get their own.
		"GOMAXPROCS=1",
	}
	if opt.fifo != nil {
		env = append(env, initproc.EnvFifoFd+"="+strconv.Itoa(addFd(opt.fifo)))
	}
	if opt.console != nil {
		env = append(env, initproc.EnvConsole+"="+strconv.Itoa(addFd(opt.console)))
	}
	if len(opt.lateMounts) > 0 {
		env = append(env, initproc.EnvLateMounts+"="+strconv.Itoa(len(opt.lateMounts)))
	}
	if len(opt.mountFiles) > 0 {
		opt.message.Config.MountFds = map[int]int{}
		for i, f := range opt.mountFiles {
			opt.message.Config.MountFds[i] = addFd(f)
		}
	}
	if opt.rootDir != nil {
		opt.message.Config.RootFd = addFd(opt.rootDir)
	}
	// Missing stdio is /dev/null, as os/exec gives it.
	stdio := opt.stdio
	for i, f := range stdio {
		if f == nil {
			null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return nil, fmt.Errorf("start init: %w", err)
			}
			defer null.Close()
			stdio[i] = null
		}
	}
	// The child execs /proc/self/fd/N after the fork has placed the
	// extra files at 3.. . To do that, Go's fork moves its error pipe and
	// every clashing fd to fresh numbers counting up from one above the
	// highest fd it passes (syscall.forkAndExecInChild's nextfd), so N
	// must be above that whole range, or the path names the pipe or
	// another file and the exec fails with "permission denied" (a fresh
	// process can hold the binary at fd 3; a caller's fds can reach N).
	files := 3 + len(extra)
	exeFd, err := unix.FcntlInt(exe.Fd(), unix.F_DUPFD_CLOEXEC, max(highestFd(stdio[:], extra), files)+files+8)
	if err != nil {
		return nil, fmt.Errorf("start init: %w", err)
	}
	defer unix.Close(exeFd)
	passFds := make([]uintptr, 0, files)
	for _, f := range append(stdio[:], extra...) {
		passFds = append(passFds, f.Fd())
	}
	stagePid, _, err := syscall.StartProcess(fmt.Sprintf("/proc/self/fd/%d", exeFd), []string{"berth-runtime", "init"},
		&syscall.ProcAttr{Env: env, Files: passFds})
	// The fds must stay open until the fork has duplicated them.
	for _, f := range stdio {
		goruntime.KeepAlive(f)
	}
	goruntime.KeepAlive(extra)
	if err != nil {
		return nil, fmt.Errorf("start init: %w", err)
	}
	stage := &stageProc{pid: stagePid}
	// The first child only sets up namespaces; its own child, the init,
	// is killed below if anything fails after it was forked.
	initPid := 0
	defer func() {
		if retErr != nil {
			stage.kill()
			stage.wait(reapTimeout)
			if initPid > 0 {
				unix.Kill(initPid, unix.SIGKILL)
				reapBounded(initPid, reapTimeout)
			}
		}
	}()
	parentSock.SetDeadline(time.Now().Add(initStepTimeout))
	// The stage waits for its config, sent once it is in the container's
	// cgroups. (Making the namespaces while the cgroups were being joined
	// saved ~1-2% of create; it was undone after a test VM run in which
	// the runtime and its stage were both reported stuck in the kernel,
	// cause not found.)
	if opt.joinCgroup != nil {
		// Before the namespaces: a new cgroup namespace is rooted at
		// the cgroup the process is in when it is created.
		if err := opt.joinCgroup(stage.pid); err != nil {
			return nil, err
		}
	}
	if opt.oomScoreAdj != nil {
		// Before the fork: the init inherits it.
		if err := writeOOMScoreAdj(stage.pid, *opt.oomScoreAdj); err != nil {
			return nil, err
		}
	}
	if err := writeNsConfig(parentSock, opt); err != nil {
		return nil, err
	}
	r := bufio.NewReader(parentSock)
	for initPid == 0 {
		line, err := r.ReadString('\n')
		if isTimeout(err) {
			return nil, fmt.Errorf("container init did not finish namespace setup within %s (is its cgroup frozen?)", initStepTimeout)
		}
		if err != nil {
			werr := stage.wait(reapTimeout)
			return nil, fmt.Errorf("container init exited during namespace setup (%v)", werr)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "U":
			if err := writeIDMaps(stage.pid, opt.uidMaps, opt.gidMaps); err != nil {
				return nil, err
			}
			if _, err := parentSock.Write([]byte{'u'}); err != nil {
				return nil, fmt.Errorf("init socket: %w", err)
			}
		default:
			if initPid, err = initPidLine(line); err != nil {
				return nil, err
			}
		}
	}
	if err := stage.wait(initStepTimeout); err != nil {
		return nil, fmt.Errorf("namespace setup process: %w", err)
	}
	if opt.beforeConfig != nil {
		if err := opt.beforeConfig(); err != nil {
			return nil, err
		}
	}
	if len(opt.lateMounts) > 0 {
		if err := sendLateMounts(parentSock, initPid, opt); err != nil {
			return nil, err
		}
	}
	return sendConfig(parentSock, r, initPid, opt)
}

// sendLateMounts clones opt.lateMounts in the init's mount namespace and
// sends the clones to the init (which expects one message with at most
// that many fds, initproc.EnvLateMounts) before its config; the config
// says which mount each fd is for, in order.
func sendLateMounts(sock *os.File, initPid int, opt spawnOptions) error {
	// Best effort, as each clone is: where the runtime cannot enter the
	// init's mount namespace (rootless: the init is not ours to inspect),
	// none is sent and the init binds every source itself, with the same
	// locks, failing only on a source its user cannot reach.
	idx, fds, _ := cloneInMountNS(initPid, opt.lateMounts)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if err := sendFds(sock, 'm', fds); err != nil {
		return fmt.Errorf("send bind mounts to init: %w", err)
	}
	opt.message.Config.LateMounts = idx
	return nil
}

// sendFds sends one message to the init: the byte tag, with fds attached
// (none when fds is empty).
func sendFds(sock *os.File, tag byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	// Through the raw conn: after sock.Fd(), by its documentation, the
	// deadlines of every later exchange with the init may stop working.
	raw, err := sock.SyscallConn()
	if err != nil {
		return err
	}
	var sendErr error
	err = raw.Write(func(fd uintptr) bool {
		sendErr = unix.Sendmsg(int(fd), []byte{tag}, oob, nil, unix.MSG_NOSIGNAL)
		return !errors.Is(sendErr, unix.EAGAIN)
	})
	if err == nil {
		err = sendErr
	}
	return err
}

// initPidLine reads the stage's last line: "P PID", the init it forked,
// or "E ERRNO MESSAGE", why it could not.
func initPidLine(line string) (int, error) {
	switch {
	case strings.HasPrefix(line, "P "):
		pid, err := strconv.Atoi(line[2:])
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("init sent a bad pid %q", line)
		}
		return pid, nil
	case strings.HasPrefix(line, "E "):
		return 0, nsenterError(line[2:])
	default:
		return 0, fmt.Errorf("init sent %q during namespace setup", line)
	}
}

// stageProc is the first child of spawn, which sets up namespaces, forks
// the init and exits.
type stageProc struct {
	pid    int
	reaped bool // its pid may be reused: never signal it again
}

// wait reaps the process, waiting at most d; past that it kills it and
// gives up (a process in a frozen cgroup cannot die until thawed).
func (p *stageProc) wait(d time.Duration) error {
	if p.reaped {
		return nil
	}
	type result struct {
		ws  unix.WaitStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for {
			_, r.err = unix.Wait4(p.pid, &r.ws, 0, nil)
			if r.err != unix.EINTR {
				break
			}
		}
		done <- r
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-done:
		p.reaped = true
		switch {
		case r.err != nil:
			return fmt.Errorf("wait for process %d: %w", p.pid, r.err)
		case r.ws.Exited() && r.ws.ExitStatus() == 0:
			return nil
		case r.ws.Signaled():
			return fmt.Errorf("signal: %s", r.ws.Signal())
		default:
			return fmt.Errorf("exit status %d", r.ws.ExitStatus())
		}
	case <-timer.C:
		p.kill()
		return fmt.Errorf("process %d did not exit within %s", p.pid, d)
	}
}

// kill sends SIGKILL unless the process was reaped.
func (p *stageProc) kill() {
	if !p.reaped {
		unix.Kill(p.pid, unix.SIGKILL)
	}
}

// nsenterError turns "ERRNO message: strerror" from nsenter.c into an
// error that keeps the errno for errors.Is.
func nsenterError(s string) error {
	num, msg, _ := strings.Cut(s, " ")
	n, _ := strconv.Atoi(num)
	if n != 0 {
		return &nsError{msg: msg, errno: unix.Errno(n)}
	}
	return errors.New(msg)
}

type nsError struct {
	msg   string
	errno unix.Errno
}

func (e *nsError) Error() string { return "namespace setup: " + e.msg }
func (e *nsError) Unwrap() error { return e.errno }

func writeNsConfig(w io.Writer, opt spawnOptions) error {
	var b strings.Builder
	for _, j := range opt.join {
		fmt.Fprintf(&b, "join %s %s\n", j.name, j.path)
	}
	if opt.clone != 0 {
		fmt.Fprintf(&b, "clone %d\n", opt.clone)
	}
	if opt.clone&unix.CLONE_NEWUSER != 0 {
		b.WriteString("usermap 1\n")
	}
	for clock, off := range opt.timeOffsets {
		fmt.Fprintf(&b, "timens %s %d %d\n", clock, off.Secs, off.Nanosecs)
	}
	msg := b.String()
	buf := make([]byte, 4+len(msg))
	buf[0], buf[1], buf[2], buf[3] = byte(len(msg)), byte(len(msg)>>8), byte(len(msg)>>16), byte(len(msg)>>24)
	copy(buf[4:], msg)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("send namespace config to init: %w", err)
	}
	return nil
}

func writeIDMaps(pid int, uids, gids []specs.LinuxIDMapping) error {
	format := func(maps []specs.LinuxIDMapping) []byte {
		var b strings.Builder
		for _, m := range maps {
			fmt.Fprintf(&b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
		}
		return []byte(b.String())
	}
	p := "/proc/" + strconv.Itoa(pid)
	if err := os.WriteFile(p+"/uid_map", format(uids), 0); err != nil {
		return fmt.Errorf("linux.uidMappings: write uid_map: %w", err)
	}
	err := os.WriteFile(p+"/gid_map", format(gids), 0)
	if errors.Is(err, unix.EPERM) {
		// Without CAP_SETGID on the host (rootless), the kernel takes a
		// gid map only once setgroups(2) is denied in the namespace.
		if derr := os.WriteFile(p+"/setgroups", []byte("deny"), 0); derr == nil {
			err = os.WriteFile(p+"/gid_map", format(gids), 0)
		}
	}
	if err != nil {
		return fmt.Errorf("linux.gidMappings: write gid_map: %w", err)
	}
	return nil
}

// writeOOMScoreAdj sets the score before the container exists, from the
// host, where the runtime still has its privileges. Lowering the score needs
// CAP_SYS_RESOURCE; where the host withholds it the error says so, as
// containerd's restrict_oom_score_adj documents.
func writeOOMScoreAdj(pid, score int) error {
	err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte(strconv.Itoa(score)), 0)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		cur, _ := os.ReadFile("/proc/self/oom_score_adj")
		return fmt.Errorf("process.oomScoreAdj: cannot set oom_score_adj to %d (the runtime's own is %s): lowering it needs CAP_SYS_RESOURCE, which this host withholds; use a value of at least the runtime's own (what containerd's restrict_oom_score_adj does)", score, strings.TrimSpace(string(cur)))
	}
	return fmt.Errorf("process.oomScoreAdj: %w", err)
}

// reapBounded is reap for at most d: a process in a frozen cgroup cannot
// die until thawed, and the caller's cleanup thaws it after.
func reapBounded(pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		var ws unix.WaitStatus
		p, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if p == pid || (err != nil && err != unix.EINTR) || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// deadline bounds the exchanges with the init from now on: past it, a
// read or write fails with an error that says the init did not answer.
func (c *child) deadline(d time.Duration) {
	c.timeout = d
	c.sock.SetDeadline(time.Now().Add(d))
}

// recv reads the init's next message; an error message from the init comes
// back as that error, intact.
func (c *child) recv() (*initproc.Reply, error) {
	var m initproc.Reply
	if err := c.dec.Decode(&m); err != nil {
		if isTimeout(err) {
			return nil, fmt.Errorf("container init did not answer within %s (its setup is stuck: a frozen cgroup, a mount or a hook that does not return?)", c.timeout)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("container init exited without saying why")
		}
		return nil, fmt.Errorf("read from init: %w", err)
	}
	if m.Type == initproc.ReplyError {
		return nil, errors.New(m.Error)
	}
	return &m, nil
}

func (c *child) expect(t string) (*initproc.Reply, error) {
	m, err := c.recv()
	if err != nil {
		return nil, err
	}
	if m.Type != t {
		return nil, fmt.Errorf("init sent %q, expected %q", m.Type, t)
	}
	return m, nil
}

func (c *child) send(m *initproc.Message) error {
	if err := c.enc.Encode(m); err != nil {
		if isTimeout(err) {
			return fmt.Errorf("container init did not read within %s", c.timeout)
		}
		return fmt.Errorf("write to init: %w", err)
	}
	return nil
}

// highestFd is the highest descriptor among the files the fork passes on:
// where Go's fork starts counting the fds it moves.
func highestFd(lists ...[]*os.File) int {
	hi := 0
	for _, l := range lists {
		for _, f := range l {
			if f != nil && int(f.Fd()) > hi {
				hi = int(f.Fd())
			}
		}
	}
	return hi
}
