package monitor

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/logs"
)

// Timeouts of runtime calls: a hung runtime must not hang the monitor.
const (
	createTimeout = 2 * time.Minute
	startTimeout  = time.Minute
	deleteTimeout = 30 * time.Second
	// drainTimeout bounds how long output is read after the init exited: a
	// process outside the container's pid namespace may hold its stdout.
	drainTimeout = 2 * time.Second
	// leftoverGrace is how long output may stay open after the init
	// exited before what is left of the container is killed.
	leftoverGrace = 100 * time.Millisecond
	// Restart backoff, as Docker: doubling from 100ms, reset after a run of
	// 10s.
	backoffStart = 100 * time.Millisecond
	backoffMax   = time.Minute
	backoffReset = 10 * time.Second
	// clientQueue is how many output frames an attach client may lag behind
	// before it is dropped.
	clientQueue = 64
)

// server is the state of a running monitor.
type server struct {
	cfg    Config
	log    *logs.Writer
	ln     *listener
	report *os.File // the launcher's pipe until the first report; nil after
	startC chan chan reply

	// writers are the attach sessions' writer goroutines: the monitor
	// lets them send what is queued (the exit frame) before it exits.
	writers sync.WaitGroup

	// fileMu orders the writes of the status file: setStatus encodes
	// under mu and writes after, so without it two callers (the run loop
	// and a client's "stopping") could write in the other order and leave
	// the older status on disk. Taken after mu is released.
	fileMu      sync.Mutex
	fileVersion uint64 // of the status last written; guarded by fileMu

	mu            sync.Mutex // guards the fields below
	status        Status
	statusVersion uint64 // bumped by every change of status
	clients       map[*client]struct{}
	stdin         *os.File // the current run's stdin writer (pipe or pty master); nil if none
	pty           *os.File // the current run's pty master, with a terminal
	waiters       []chan Status
}

// client is one attach connection.
type client struct {
	conn  *os.File
	out   chan []byte // encoded frames; closed to end the session
	once  sync.Once
	stdin bool
}

// runMonitor is the monitor: it supervises the container of cfg until it has
// exited and will not be restarted. report, when not nil, is the
// launcher's pipe: the first outcome (created, or the error) is written to
// it as a JSON reply line.
func runMonitor(cfg Config, report *os.File) error {
	s := &server{cfg: cfg, report: report, startC: make(chan chan reply, 1), clients: map[*client]struct{}{}}
	s.status.MonitorPid = os.Getpid()
	if err := s.setup(); err != nil {
		s.fail(err.Error())
		return err
	}
	defer s.teardown()
	err := s.loop()
	if !s.snapshot().StartedAt.IsZero() {
		s.runExitCommand()
	}
	return err
}

// runExitCommand runs Config.ExitCommand and waits for it (bounded), so
// that when the monitor is gone the container's clean-up is done: a `wait`
// that returns then finds the network torn down and the die event
// recorded.
func (s *server) runExitCommand() {
	if len(s.cfg.ExitCommand) == 0 {
		return
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer devnull.Close()
	files := []*os.File{devnull, devnull, devnull}
	if f, err := os.OpenFile(filepath.Join(s.cfg.StateDir, "monitor.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
		defer f.Close()
		files[1], files[2] = f, f
	}
	p, err := os.StartProcess(s.cfg.ExitCommand[0], s.cfg.ExitCommand, &os.ProcAttr{Files: files, Sys: &unix.SysProcAttr{Setsid: true}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-monitor: exit command: %v\n", err)
		return
	}
	done := make(chan struct{})
	timer := time.AfterFunc(exitCommandTimeout, func() {
		select {
		case <-done:
		default:
			p.Kill()
		}
	})
	p.Wait()
	close(done)
	timer.Stop()
}

// exitCommandTimeout bounds the engine's clean-up run by the monitor.
const exitCommandTimeout = time.Minute

func (s *server) setup() error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("make monitor state dir: %w", err)
	}
	// Only root may attach: the socket lives in a 0700 directory.
	if err := os.Chmod(s.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("make monitor state dir private: %w", err)
	}
	w, err := logs.NewWriter(s.cfg.LogPath, s.cfg.LogMaxSize, s.cfg.LogMaxFiles)
	if err != nil {
		return err
	}
	s.log = w
	sock := filepath.Join(s.cfg.StateDir, socketFile)
	ln, err := listenUnix(sock)
	if err != nil {
		return fmt.Errorf("attach socket: %w", err)
	}
	s.ln = ln
	start, err := procStartTime(os.Getpid())
	if err != nil {
		return err
	}
	if err := writeStateFile(filepath.Join(s.cfg.StateDir, pidFile), []byte(fmt.Sprintf("%d %d\n", os.Getpid(), start))); err != nil {
		return err
	}
	go s.acceptLoop()
	return nil
}

func (s *server) teardown() {
	s.flushClients()
	// A new monitor may already own the directory (a start that came
	// while this one finished): remove only what is still ours.
	ours := true
	if b, err := os.ReadFile(filepath.Join(s.cfg.StateDir, pidFile)); err == nil && !strings.HasPrefix(string(b), strconv.Itoa(os.Getpid())+" ") {
		ours = false
	}
	if s.ln != nil {
		if ours {
			s.ln.Close()
		} else {
			s.ln.f.Close()
		}
	}
	if ours {
		for _, f := range []string{pidFile, "pid", "runtime.log", "runtime.stderr", "runtime-wait.log"} {
			os.Remove(filepath.Join(s.cfg.StateDir, f))
		}
	}
	if s.log != nil {
		s.log.Close()
	}
}

// fail reports a fatal error to the launcher, if it still waits. The pipe
// stays open until the monitor exits: the launcher reads to its end, so
// it returns only once the monitor has cleaned up and gone.
func (s *server) fail(msg string) {
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	if s.report != nil {
		writeLine(s.report, encodeReply(reply{Status: &st, Error: msg}))
	}
}

// sendReport writes r to the launcher's pipe and closes it. It reports
// false if the launcher has gone (it gave up waiting).
func (s *server) sendReport(r reply) bool {
	if s.report == nil {
		return true
	}
	err := writeLine(s.report, encodeReply(r))
	s.report.Close()
	s.report = nil
	return err == nil
}

// run is one execution of the container: created, started, exited.
type run struct {
	pid     int
	exited  chan int // the init's exit code, once
	copiers sync.WaitGroup
	readers []*os.File // output read ends, closed to end the copiers
	oom     *oomWatch  // follows the OOM counters while it runs
	started time.Time
	// healthStop ends the health probes when the run ends.
	healthStop chan struct{}
	// startStdio are the container's ends of its stdio with RuntimeWait:
	// runsc gives a pod container the stdio of `runsc start`, not of
	// create. Closed after start.
	startStdio [3]*os.File
}

// closeStartStdio closes the container's stdio ends kept for start.
func (r *run) closeStartStdio() {
	for i, f := range r.startStdio {
		if f != nil {
			f.Close()
			r.startStdio[i] = nil
		}
	}
}

func (s *server) loop() error {
	backoff := backoffStart
	first := true
	for {
		r, err := s.create()
		if err != nil {
			s.setStatus(func(st *Status) {
				st.State, st.Pid, st.Error = StateExited, 0, err.Error()
				st.ExitCode = exitCodeOfError(err.Error())
				st.FinishedAt = time.Now()
			})
			s.recordExit()
			s.fail(err.Error())
			s.endClients(s.snapshot().ExitCode)
			return err
		}
		if first && s.cfg.StartAtOnce {
			err := s.start(r) // on failure it has killed the init
			st := s.snapshot()
			rep := reply{Status: &st}
			if err != nil {
				rep.Error = err.Error()
			}
			if !s.sendReport(rep) && err == nil {
				// The launcher gave up (its context ended): undo.
				s.kill(r)
				err = errors.New("launcher went away before the container was started")
			}
			if err != nil {
				s.finish(r)
				return err
			}
			first = false
		} else if first {
			s.setStatus(func(st *Status) { st.State, st.Pid = StateCreated, r.pid })
			st := s.snapshot()
			if !s.sendReport(reply{Status: &st}) {
				// The launcher gave up (its context ended): undo.
				s.kill(r)
				s.finish(r)
				return errors.New("launcher went away before the container was created")
			}
			if !s.waitStart(r) {
				// The init exited before start: the engine deleted it.
				return s.finish(r)
			}
			first = false
		} else if err := s.start(r); err != nil {
			return s.finish(r)
		}
		code := <-r.exited
		s.endRun(r, code)
		if !s.shouldRestart() {
			// A stop may have come since endRun said "restarting".
			s.setStatus(func(st *Status) { st.State = StateExited })
			return nil
		}
		if time.Since(r.started) >= backoffReset {
			backoff = backoffStart
		}
		s.setStatus(func(st *Status) { st.State = StateRestarting; st.RestartCount++ })
		if !s.sleepUnlessStopped(backoff) {
			s.setStatus(func(st *Status) { st.State = StateExited })
			return nil
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// waitStart waits, in state created, for a start request or for the init to
// exit. It reports whether the container was started.
func (s *server) waitStart(r *run) bool {
	select {
	case rc := <-s.startC:
		err := s.start(r)
		st := s.snapshot()
		if err != nil {
			rc <- reply{Status: &st, Error: err.Error()}
			return false
		}
		rc <- reply{Status: &st}
		return true
	case code := <-r.exited:
		r.exited <- code // for finish
		return false
	case <-time.After(startWaitTimeout):
		// The launcher died between create and start: nobody will start
		// this container; end it rather than hold it forever.
		s.kill(r)
		return false
	}
}

// startWaitTimeout bounds how long a created container waits for start.
const startWaitTimeout = 3 * time.Minute

// finish ends a run that failed or was deleted before it ran, and the
// monitor with it.
func (s *server) finish(r *run) error {
	code := <-r.exited
	s.endRun(r, code)
	return nil
}

// create makes the container's stdio and runs `runtime create`.
func (s *server) create() (*run, error) {
	r := &run{exited: make(chan int, 1)}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	stdio := [3]*os.File{devnull, devnull, nil}
	var toClose []*os.File // the container's ends, ours to close after create
	defer func() {
		for _, f := range toClose {
			f.Close()
		}
	}()
	pidPath := filepath.Join(s.cfg.StateDir, "pid")
	os.Remove(pidPath)
	args := []string{"create", "--bundle", s.cfg.Bundle, "--pid-file", pidPath}
	var console *consoleSocket
	if s.cfg.Terminal {
		// The runtime connects by path, and a deep StateDir would pass
		// sun_path's 108 bytes: a private directory in the temp dir.
		consoleDir, err := os.MkdirTemp("", "berth-console-")
		if err != nil {
			return nil, fmt.Errorf("make console socket dir: %w", err)
		}
		defer os.RemoveAll(consoleDir)
		console, err = listenConsole(filepath.Join(consoleDir, "console.sock"))
		if err != nil {
			return nil, err
		}
		defer console.Close()
		args = append(args, "--console-socket", console.path)
	} else {
		outR, outW, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("make stdout pipe: %w", err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			return nil, fmt.Errorf("make stderr pipe: %w", err)
		}
		toClose = append(toClose, outW, errW)
		r.readers = []*os.File{outR, errR}
		stdio[1], stdio[2] = outW, errW
		if s.cfg.Stdin {
			inR, inW, err := os.Pipe()
			if err != nil {
				outR.Close()
				errR.Close()
				return nil, fmt.Errorf("make stdin pipe: %w", err)
			}
			toClose = append(toClose, inR)
			stdio[0] = inR
			s.mu.Lock()
			s.stdin = inW
			s.mu.Unlock()
		}
	}
	closeOurs := func() {
		for _, f := range r.readers {
			f.Close()
		}
		s.mu.Lock()
		if s.stdin != nil {
			s.stdin.Close()
			s.stdin, s.pty = nil, nil
		}
		s.mu.Unlock()
	}
	createStdio := stdio
	if s.cfg.RuntimeWait && console == nil {
		// The container's ends go to start (see run.startStdio), kept
		// open until then; create's helpers must not hold them.
		for i, f := range stdio {
			if f != devnull {
				r.startStdio[i] = f
			}
		}
		toClose = nil
		createStdio = [3]*os.File{devnull, devnull, nil}
	}
	if err := s.runtime(createTimeout, createStdio, append(args, s.cfg.ID)...); err != nil {
		r.closeStartStdio()
		closeOurs()
		s.deleteForce()
		return nil, err
	}
	if console != nil {
		master, err := console.receive(10 * time.Second)
		if err != nil {
			closeOurs()
			s.deleteForce()
			return nil, err
		}
		r.readers = []*os.File{master}
		s.mu.Lock()
		s.pty, s.stdin = master, master
		s.mu.Unlock()
	}
	pid, err := readPidFile(pidPath)
	if err != nil {
		r.closeStartStdio()
		closeOurs()
		s.deleteForce()
		return nil, err
	}
	r.pid = pid
	r.oom = s.watchOOM()
	if s.cfg.RuntimeWait {
		go s.waitRuntime(r.exited)
	} else {
		go waitInit(pid, r.exited)
	}
	streams := []string{logs.Stdout, logs.Stderr}
	for i, f := range r.readers {
		r.copiers.Add(1)
		go s.copyOutput(&r.copiers, f, streams[i])
	}
	return r, nil
}

// start runs `runtime start`; on failure it has killed the init.
func (s *server) start(r *run) error {
	err := s.runtime(startTimeout, r.startStdio, "start", s.cfg.ID)
	r.closeStartStdio()
	if err != nil {
		s.setStatus(func(st *Status) { st.Error = err.Error() })
		s.kill(r)
		return err
	}
	r.started = time.Now()
	s.setStatus(func(st *Status) {
		st.State, st.Pid, st.Error = StateRunning, r.pid, ""
		st.StartedAt, st.FinishedAt = r.started, time.Time{}
		st.ExitCode, st.OOMKilled = 0, false
	})
	if s.cfg.Health != nil {
		r.healthStop = make(chan struct{})
		go s.healthLoop(r.started, r.healthStop)
	}
	return nil
}

// kill ends a run's init through the runtime, for the monitor's own
// failures; the exit arrives on r.exited.
func (s *server) kill(r *run) {
	s.deleteForce()
	// If the runtime could not, the pid is still our child: it is ours to
	// end, or r.exited never fires. Not with RuntimeWait: the pid is the
	// sandbox's, shared with the pod's other containers.
	if !s.cfg.RuntimeWait && unix.Kill(r.pid, 0) == nil {
		unix.Kill(r.pid, unix.SIGKILL)
	}
}

// endRun records the exit of a run, drains its output, ends attach
// sessions and deletes the container from the runtime.
func (s *server) endRun(r *run, code int) {
	r.closeStartStdio() // a run that never started
	if r.healthStop != nil {
		close(r.healthStop)
	}
	drained := make(chan struct{})
	go func() { r.copiers.Wait(); close(drained) }()
	var oom, deleted bool
	select {
	case <-drained:
	case <-time.After(leftoverGrace):
		// The output is still open: a process the init left behind holds
		// it, which happens when the container shares a pod's PID
		// namespace (its init's exit does not end the others). Delete
		// the container now, which kills what is left in its cgroup, as
		// the end of a PID namespace would; read the OOM count first,
		// while the cgroup is there.
		oom = r.oom.stop(code)
		s.deleteForce()
		deleted = true
		select {
		case <-drained:
		case <-time.After(drainTimeout):
			for _, f := range r.readers {
				f.SetReadDeadline(time.Now())
			}
			<-drained
		}
	}
	for _, f := range r.readers {
		f.Close()
	}
	if !deleted {
		oom = r.oom.stop(code)
		// Delete before telling anyone it exited: whoever acts on the
		// exit (the engine's teardown, a new start) finds the runtime's
		// state gone instead of racing this delete.
		s.deleteForce()
	}
	s.mu.Lock()
	if s.stdin != nil {
		s.stdin.Close()
		s.stdin, s.pty = nil, nil
	}
	s.mu.Unlock()
	s.setStatus(func(st *Status) {
		st.State, st.Pid, st.ExitCode, st.OOMKilled = StateExited, 0, code, oom
		st.FinishedAt = time.Now()
		// Say "restarting" in the same breath when the policy restarts
		// it: an engine that saw "exited" would tear the network down
		// under the restart.
		if restartWanted(*st, s.cfg.Restart) {
			st.State = StateRestarting
		}
	})
	s.recordExit()
	s.endClients(code)
	reapOrphans()
}

func (s *server) shouldRestart() bool {
	return restartWanted(s.snapshot(), s.cfg.Restart)
}

// restartWanted is the restart policy's answer for a container that has
// just exited with st.
func restartWanted(st Status, p RestartPolicy) bool {
	if st.StoppedByUser {
		return false
	}
	switch p.Name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return st.ExitCode != 0 && (p.MaxRetries == 0 || st.RestartCount < p.MaxRetries)
	}
	return false
}

// sleepUnlessStopped waits d, and reports false if the user stopped the
// container meanwhile.
func (s *server) sleepUnlessStopped(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if s.snapshot().StoppedByUser {
			return false
		}
		time.Sleep(min(time.Until(deadline), 20*time.Millisecond))
	}
	return !s.snapshot().StoppedByUser
}

// recordExit writes the status to the exit file and wakes waiters.
func (s *server) recordExit() {
	st := s.snapshot()
	if err := writeFileAtomic(s.cfg.ExitFile, encodeStatus(st)); err != nil {
		fmt.Fprintf(os.Stderr, "berth-monitor %s: %v\n", s.cfg.ID, err)
	}
	s.mu.Lock()
	waiters := s.waiters
	s.waiters = nil
	s.mu.Unlock()
	for _, w := range waiters {
		w <- st
	}
}

func (s *server) snapshot() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// setStatus changes the status and rewrites status.json.
func (s *server) setStatus(change func(*Status)) {
	s.mu.Lock()
	change(&s.status)
	s.statusVersion++
	version, data := s.statusVersion, encodeStatus(s.status)
	s.mu.Unlock()
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if version < s.fileVersion {
		return // a later status is on disk already
	}
	s.fileVersion = version
	if err := writeStateFile(filepath.Join(s.cfg.StateDir, statusFile), data); err != nil {
		fmt.Fprintf(os.Stderr, "berth-monitor %s: %v\n", s.cfg.ID, err)
	}
}

// runtime runs the OCI runtime with its global flags and args. Its error
// is the runtime's own message: the last error in its --log, else its
// stderr, else how it failed.
func (s *server) runtime(timeout time.Duration, stdio [3]*os.File, args ...string) error {
	logPath := filepath.Join(s.cfg.StateDir, "runtime.log")
	errPath := filepath.Join(s.cfg.StateDir, "runtime.stderr")
	os.Remove(logPath)
	global := []string{"--root", s.cfg.RuntimeRoot}
	if s.cfg.RuntimeRoot == "" {
		global = nil
	}
	global = append(append(global, s.cfg.RuntimeArgs...), "--log", logPath, "--log-format", "json")
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	files := []*os.File{devnull, devnull, devnull}
	for i, f := range stdio {
		if f != nil {
			files[i] = f
		}
	}
	if stdio[2] == nil {
		// A file, not a pipe: a process that inherits it (the container's
		// init) must not keep us waiting for its end.
		f, err := os.OpenFile(errPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("capture runtime stderr: %w", err)
		}
		defer f.Close()
		files[2] = f
	}
	// os.StartProcess rather than os/exec, which costs the monitor's
	// memory more than it saves here. Setpgid: not the monitor's group's
	// signals.
	argv := append(append([]string{s.cfg.Runtime}, global...), args...)
	p, err := os.StartProcess(s.cfg.Runtime, argv, &os.ProcAttr{Files: files, Sys: &unix.SysProcAttr{Setpgid: true}})
	if err != nil {
		return fmt.Errorf("run %s %s: %w", s.cfg.Runtime, args[0], err)
	}
	timedOut := make(chan struct{})
	timer := time.AfterFunc(timeout, func() { close(timedOut); p.Kill() })
	ps, err := p.Wait()
	timer.Stop()
	if err == nil && ps.Success() {
		return nil
	}
	select {
	case <-timedOut:
		return fmt.Errorf("%s %s: timed out after %s", filepath.Base(s.cfg.Runtime), args[0], timeout)
	default:
	}
	if err == nil {
		err = errors.New(ps.String())
	}
	if msg := lastRuntimeError(logPath); msg != "" {
		return errors.New(msg)
	}
	if out, _ := os.ReadFile(errPath); stdio[2] == nil && len(bytes.TrimSpace(out)) > 0 {
		return errors.New(strings.TrimSpace(string(out)))
	}
	return fmt.Errorf("%s %s: %w", filepath.Base(s.cfg.Runtime), args[0], err)
}

// lastRuntimeError returns the msg of the last error-level record of a
// runtime's JSON --log (runc's logrus and berth-runtime write the same).
func lastRuntimeError(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var msg string
	for _, line := range bytes.Split(data, []byte("\n")) {
		v, err := parseJSON(line)
		if err != nil {
			continue
		}
		rec, err := asObject(v, "log record")
		if err != nil {
			continue
		}
		if level := rec.str("level"); (level == "error" || level == "fatal") && rec.str("msg") != "" {
			msg = rec.str("msg")
		}
	}
	return msg
}

// exitCodeOfError is the shell's code for a command that could not start:
// 127 not found, 126 not executable, else 125 (the runtime failed).
func exitCodeOfError(msg string) int {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "not found") || strings.Contains(m, "no such file"):
		return 127
	case strings.Contains(m, "permission denied"):
		return 126
	}
	return 125
}

func (s *server) deleteForce() {
	if err := s.runtime(deleteTimeout, [3]*os.File{}, "delete", "--force", s.cfg.ID); err != nil {
		// "does not exist" is the usual case after a failed create.
		if !strings.Contains(err.Error(), "not exist") && !strings.Contains(err.Error(), "not found") {
			fmt.Fprintf(os.Stderr, "berth-monitor %s: delete: %v\n", s.cfg.ID, err)
		}
	}
}

// waitInit waits for the container's init (our child since `runtime
// create` exited: we are its subreaper) and sends its exit code.
func waitInit(pid int, exited chan<- int) {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// Not our child (it was never reparented to us): watch for its
			// end; its status is lost.
			for unix.Kill(pid, 0) == nil {
				time.Sleep(100 * time.Millisecond)
			}
			exited <- -1
			return
		}
		switch {
		case ws.Exited():
			exited <- ws.ExitStatus()
		case ws.Signaled():
			exited <- 128 + int(ws.Signal())
		default:
			continue // stopped or continued
		}
		return
	}
}

// reapOrphans reaps the container's other processes, reparented to the
// monitor when its init died. Only called while no runtime command runs.
func reapOrphans() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

func readPidFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read container pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("container pid file %s holds %q, not a pid", path, data)
	}
	return pid, nil
}

// copyOutput copies one of the container's streams to the log and to the
// attach clients until it ends.
func (s *server) copyOutput(wg *sync.WaitGroup, f *os.File, stream string) {
	defer wg.Done()
	buf := make([]byte, logs.MaxLineSize)
	typ := frameStdout
	if stream == logs.Stderr {
		typ = frameStderr
	}
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if werr := s.log.Write(stream, buf[:n]); werr != nil {
				fmt.Fprintf(os.Stderr, "berth-monitor %s: %v\n", s.cfg.ID, werr)
			}
			s.broadcast(typ, buf[:n])
		}
		if err != nil {
			return // EOF, or EIO from a pty master whose slave closed
		}
	}
}

// broadcast queues a frame to every attach client; a client whose queue
// is full is dropped rather than waited for.
func (s *server) broadcast(typ byte, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.clients) == 0 {
		return
	}
	frame := make([]byte, 5+len(p))
	frame[0] = typ
	binary.BigEndian.PutUint32(frame[1:], uint32(len(p)))
	copy(frame[5:], p)
	for c := range s.clients {
		select {
		case c.out <- frame:
		default:
			delete(s.clients, c)
			c.close()
			c.conn.Close()
		}
	}
}

// endClients sends the exit code to every attach client and ends their
// sessions.
func (s *server) endClients(code int) {
	frame := make([]byte, 9)
	frame[0] = frameExit
	binary.BigEndian.PutUint32(frame[1:], 4)
	binary.BigEndian.PutUint32(frame[5:], uint32(int32(code)))
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.clients {
		select {
		case c.out <- frame:
		default:
		}
		c.close()
		delete(s.clients, c)
	}
}

// flushClients waits, for at most clientFlushTimeout, until the attach
// sessions' writers have sent what is queued (endClients queued the exit
// code last and ended them): a monitor that exited first would cut a
// session short of its exit code.
func (s *server) flushClients() {
	done := make(chan struct{})
	go func() { s.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(clientFlushTimeout):
	}
}

// clientFlushTimeout bounds flushClients: a session that does not read
// must not keep the monitor.
const clientFlushTimeout = 2 * time.Second

func (c *client) close() { c.once.Do(func() { close(c.out) }) }

func (s *server) acceptLoop() {
	for {
		conn, err := s.ln.accept()
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go s.serve(conn)
	}
}

// serve handles one connection.
func (s *server) serve(conn *os.File) {
	// Belt and braces beside the 0700 directory and 0600 socket: only root.
	if uid, err := peerUID(conn); err != nil || uid != 0 {
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	req, err := readRequest(br)
	if err != nil {
		writeLine(conn, encodeReply(reply{Error: fmt.Sprintf("bad request: %v", err)}))
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Time{})
	if req.Op == opAttach {
		s.serveAttach(conn, br)
		return
	}
	defer conn.Close()
	var rep reply
	switch req.Op {
	case opStatus:
		st := s.snapshot()
		rep.Status = &st
	case opStopping:
		s.setStatus(func(st *Status) { st.StoppedByUser = true })
		st := s.snapshot()
		rep.Status = &st
	case opReopenLog:
		if err := s.log.Reopen(); err != nil {
			rep.Error = err.Error()
		}
	case opStart:
		if s.snapshot().State != StateCreated {
			rep.Error = "container is " + s.snapshot().State + ", not created"
			break
		}
		rc := make(chan reply, 1)
		select {
		case s.startC <- rc:
			select {
			case rep = <-rc:
			case <-time.After(startTimeout + 10*time.Second):
				rep.Error = "container did not start: it exited before start"
			}
		default:
			rep.Error = "container is being started already"
		}
	case opWait:
		w := make(chan Status, 1)
		s.mu.Lock()
		s.waiters = append(s.waiters, w)
		s.mu.Unlock()
		st := <-w
		rep.Status = &st
	default:
		rep.Error = fmt.Sprintf("unknown op %q", req.Op)
	}
	writeLine(conn, encodeReply(rep))
}

func readRequest(br *bufio.Reader) (request, error) {
	line, err := readLine(br)
	if err != nil {
		return request{}, err
	}
	v, err := parseJSON(line)
	if err != nil {
		return request{}, err
	}
	o, err := asObject(v, "request")
	if err != nil {
		return request{}, err
	}
	req := request{Op: o.str("op")}
	return req, o.err
}

func (s *server) serveAttach(conn *os.File, br *bufio.Reader) {
	c := &client{conn: conn, out: make(chan []byte, clientQueue)}
	s.mu.Lock()
	st := s.status
	exited := st.State == StateExited
	if !exited {
		s.clients[c] = struct{}{}
	}
	s.mu.Unlock()
	if err := writeLine(conn, encodeReply(reply{Status: &st, Terminal: s.cfg.Terminal})); err != nil {
		s.dropClient(c)
		conn.Close()
		return
	}
	if exited {
		writeFrame(conn, frameExit, binary.BigEndian.AppendUint32(nil, uint32(int32(st.ExitCode))))
		conn.Close()
		return
	}
	s.writers.Add(1)
	go func() {
		defer s.writers.Done()
		// The writer: frames queued by broadcast, until the session ends.
		for frame := range c.out {
			conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := conn.Write(frame); err != nil {
				s.dropClient(c)
				break
			}
		}
		conn.Close()
	}()
	for {
		typ, p, err := readFrame(br)
		if err != nil {
			// The client went away (or detached): the container goes on.
			s.dropClient(c)
			return
		}
		s.mu.Lock()
		in, pty := s.stdin, s.pty
		s.mu.Unlock()
		switch typ {
		case frameStdin:
			if in != nil && s.cfg.Stdin {
				in.Write(p)
			}
		case frameStdinClose:
			if in != nil && pty == nil && s.cfg.Stdin {
				s.mu.Lock()
				if s.stdin == in {
					s.stdin = nil
				}
				s.mu.Unlock()
				in.Close()
			}
		case frameResize:
			if pty != nil && len(p) == 4 {
				ws := &unix.Winsize{Row: binary.BigEndian.Uint16(p), Col: binary.BigEndian.Uint16(p[2:])}
				// Through Control, not Fd(): Fd would make the master
				// blocking and take it out of the poller.
				if raw, err := pty.SyscallConn(); err == nil {
					raw.Control(func(fd uintptr) { unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) })
				}
			}
		}
	}
}

func (s *server) dropClient(c *client) {
	s.mu.Lock()
	if _, ok := s.clients[c]; ok {
		delete(s.clients, c)
		c.close()
	}
	s.mu.Unlock()
}

// consoleSocket receives the pty master a runtime sends over
// --console-socket.
type consoleSocket struct {
	path string
	ln   *listener
}

func listenConsole(path string) (*consoleSocket, error) {
	ln, err := listenUnix(path)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &consoleSocket{path: path, ln: ln}, nil
}

func (c *consoleSocket) Close() { c.ln.Close() }

// receive accepts the runtime's connection and returns the pty master it
// sent. The runtime has sent it before `create` returned.
func (c *consoleSocket) receive(timeout time.Duration) (*os.File, error) {
	c.ln.f.SetDeadline(time.Now().Add(timeout))
	conn, err := c.ln.accept()
	if err != nil {
		return nil, fmt.Errorf("receive the container's terminal: %w", err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(timeout))
	fds, err := recvFds(conn)
	if err != nil {
		return nil, fmt.Errorf("receive the container's terminal: %w", err)
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive the container's terminal: the runtime sent %d fds, want 1", len(fds))
	}
	// It must be a terminal: anything else is not what the runtime owes us.
	if _, err := unix.IoctlGetTermios(fds[0], unix.TCGETS); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive the container's terminal: the fd sent is not a terminal: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive the container's terminal: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// procStartTime returns field 22 of /proc/PID/stat, the process's start
// time in clock ticks since boot: with the pid it names a process uniquely.
func procStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read start time of process %d: %w", pid, err)
	}
	// The command name, in parentheses, may hold spaces and parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
