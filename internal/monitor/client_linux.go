package monitor

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/proc"
)

// Create writes cfg to cfg.StateDir/monitor.json and launches monitorBin
// for it, detached: in a session of its own, with stdio on /dev/null. It
// is the caller's child, reaped in the background (ReapLater) while the
// caller lives and reparented to init (or the nearest subreaper) when the
// caller exits, so the caller may exit at once and never waits for it.
// (The monitor used to fork once more to leave its launcher at once;
// that second Go process start cost every container start ~10 ms.) Create returns
// when `runtime create` is done: the Status then has State "created" and
// Pid set. The container runs only after StartCreated. With
// cfg.StartAtOnce it returns once `runtime start` is done too, with State
// "running" (see Start).
//
// If the container cannot be created, the error carries the runtime's own
// message unchanged (also in Status.Error, and Status.ExitCode is 127 for
// "not found"/"no such file", 126 for "permission denied", else 125); the
// monitor has then run `runtime delete --force` and exited.
//
// If ctx ends first, Create returns ctx's error; the monitor notices that
// nobody waits for it, deletes the container and exits.
func Create(ctx context.Context, monitorBin string, cfg Config) (Status, error) {
	return create(ctx, monitorBin, nil, cfg)
}

// create is Create, handing cfg to spare if it is not nil and still
// there, else launching a monitor.
func create(ctx context.Context, monitorBin string, spare *Spare, cfg Config) (Status, error) {
	if err := cfg.Validate(); err != nil {
		return Status{}, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return Status{}, fmt.Errorf("make monitor state dir: %w", err)
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return Status{}, fmt.Errorf("encode monitor config: %w", err)
	}
	cfgPath := filepath.Join(cfg.StateDir, configFile)
	if err := writeStateFile(cfgPath, data); err != nil {
		return Status{}, err
	}
	var pr *os.File
	if spare != nil {
		pr = spare.handOff(cfgPath)
	}
	if pr == nil {
		if pr, err = launch(monitorBin, nil, cfgPath); err != nil {
			return Status{}, fmt.Errorf("start monitor %s for container %s: %w", monitorBin, cfg.ID, err)
		}
	}
	defer pr.Close()

	// The report is one JSON line; on failure the pipe ends only when the
	// monitor has exited, so reading to its end waits for the cleanup.
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(pr, maxLine))
		got <- b
	}()
	var out []byte
	select {
	case out = <-got:
	case <-ctx.Done():
		// The monitor's report now fails, so it deletes the container and
		// exits. If it had already reported, it would wait for a start
		// that never comes: delete the container here too, which ends it.
		pr.Close()
		deleteContainer(cfg)
		return Status{}, fmt.Errorf("create container %s: %w", cfg.ID, ctx.Err())
	}
	var rep reply
	if err := json.Unmarshal(out, &rep); err != nil {
		return Status{}, fmt.Errorf("monitor for container %s exited without a report (%q): %w", cfg.ID, out, err)
	}
	var st Status
	if rep.Status != nil {
		st = *rep.Status
	}
	if rep.Error != "" {
		if st.Error == "" {
			st.Error = rep.Error
		}
		if cfg.StartAtOnce {
			return st, fmt.Errorf("create and start container %s: %s", cfg.ID, rep.Error)
		}
		return st, fmt.Errorf("create container %s: %s", cfg.ID, rep.Error)
	}
	return st, nil
}

// launch starts monitorBin with args, detached (a session of its own,
// stdio on /dev/null, reaped in the background; detachedEnv tells it not
// to fork once more), its fd 3 the write end of the report pipe whose
// read end it returns, and extra as fd 4 on.
func launch(monitorBin string, extra []*os.File, args ...string) (*os.File, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("make monitor report pipe: %w", err)
	}
	cmd := exec.Command(monitorBin, args...)
	cmd.ExtraFiles = append([]*os.File{pw}, extra...) // fd 3 in the monitor
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = append(os.Environ(), detachedEnv+"=1")
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, err
	}
	ReapLater(cmd.Process.Pid)
	cmd.Process.Release()
	return pr, nil
}

// Spare is a monitor started ahead of need (`berth-monitor --spare`): Go's
// start-up, most of a monitor's launch, is then paid before a container
// start asks for it, e.g. while a pod's CNI plugins run. It waits for its
// config file's path on a pipe, and exits if that pipe closes (Close, or
// its launcher is gone) or after SpareIdle without one.
type Spare struct {
	cfgW   *os.File // the spare reads its config file's path from here
	report *os.File // the spare's report pipe
	born   time.Time
}

// SpareIdle is how long a spare waits for a config before it exits.
const SpareIdle = 10 * time.Minute

// NewSpare starts a spare monitor; tag is only for ps (the engine passes
// its run root, so that one can tell whose spare it is).
func NewSpare(monitorBin, tag string) (*Spare, error) {
	cr, cw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("make spare monitor pipe: %w", err)
	}
	pr, err := launch(monitorBin, []*os.File{cr}, "--spare", tag)
	cr.Close()
	if err != nil {
		cw.Close()
		return nil, fmt.Errorf("start spare monitor %s: %w", monitorBin, err)
	}
	return &Spare{cfgW: cw, report: pr, born: time.Now()}, nil
}

// Fresh says whether s is young enough to be handed a config: one close
// to SpareIdle may exit before it reads it.
func (s *Spare) Fresh() bool { return time.Since(s.born) < SpareIdle/2 }

// Close ends an unused spare.
func (s *Spare) Close() {
	s.cfgW.Close()
	s.report.Close()
}

// handOff gives cfgPath to the spare and returns its report pipe, or nil
// (and closes s) if the spare is gone or too old.
func (s *Spare) handOff(cfgPath string) *os.File {
	if !s.Fresh() {
		s.Close()
		return nil
	}
	_, err := s.cfgW.Write([]byte(cfgPath + "\n"))
	s.cfgW.Close()
	if err != nil { // EPIPE: it exited
		s.report.Close()
		return nil
	}
	return s.report
}

// StartWith is Start, handing cfg to spare (if not nil and still there)
// instead of launching a monitor; spare is used up either way.
func StartWith(ctx context.Context, spare *Spare, monitorBin string, cfg Config) (Status, error) {
	cfg.StartAtOnce = true
	st, err := create(ctx, monitorBin, spare, cfg)
	if err != nil || st.State == StateRunning {
		return st, err
	}
	return StartCreated(ctx, cfg.StateDir)
}

// deleteContainer runs `runtime delete --force` for cfg's container, for
// a Create abandoned midway. Errors are ignored: usually there is nothing
// to delete.
func deleteContainer(cfg Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{}, cfg.RuntimeArgs...)
	if cfg.RuntimeRoot != "" {
		args = append([]string{"--root", cfg.RuntimeRoot}, args...)
	}
	exec.CommandContext(ctx, cfg.Runtime, append(args, "delete", "--force", cfg.ID)...).Run()
}

// StartCreated tells the monitor of stateDir to run `runtime start` and
// returns the Status once the container's process runs (State "running").
// On failure the error carries the runtime's message and the monitor
// deletes the container and exits.
func StartCreated(ctx context.Context, stateDir string) (Status, error) {
	rep, err := call(ctx, stateDir, opStart)
	if err != nil {
		return Status{}, err
	}
	var st Status
	if rep.Status != nil {
		st = *rep.Status
	}
	if rep.Error != "" {
		return st, fmt.Errorf("start container: %s", rep.Error)
	}
	return st, nil
}

// Start is Create with StartAtOnce: the container runs when it returns.
// (A monitor too old to know StartAtOnce reports "created" and gets a
// StartCreated.)
func Start(ctx context.Context, monitorBin string, cfg Config) (Status, error) {
	return StartWith(ctx, nil, monitorBin, cfg)
}

// Stopping tells the monitor the user is stopping the container, so no
// restart policy restarts it (Docker: a user stop disables restarts until
// the next start). The engine then kills it through the runtime. An error
// wrapping errdefs.ErrNotFound means no monitor runs.
func Stopping(ctx context.Context, stateDir string) error {
	_, err := call(ctx, stateDir, opStopping)
	return err
}

// ReopenLog makes the monitor close and reopen its log file (the CRI's
// ReopenContainerLog, after the log was moved away).
func ReopenLog(ctx context.Context, stateDir string) error {
	rep, err := call(ctx, stateDir, opReopenLog)
	if err == nil && rep.Error != "" {
		err = fmt.Errorf("reopen container log: %s", rep.Error)
	}
	return err
}

// CurrentStatus asks the monitor for its status.
func CurrentStatus(ctx context.Context, stateDir string) (Status, error) {
	rep, err := call(ctx, stateDir, opStatus)
	if err != nil || rep.Status == nil {
		return Status{}, err
	}
	return *rep.Status, nil
}

// Wait blocks until the container's next exit (its current run ends,
// whether or not it will be restarted) and returns that Status. If no
// monitor runs (or it dies meanwhile), it returns the Status in exitFile.
func Wait(ctx context.Context, stateDir, exitFile string) (Status, error) {
	rep, err := call(ctx, stateDir, opWait)
	if err == nil && rep.Status != nil {
		return *rep.Status, nil
	}
	if ctx.Err() != nil {
		return Status{}, ctx.Err()
	}
	return ReadStatus(exitFile)
}

// dial connects to the monitor of stateDir; errdefs.ErrNotFound if none
// listens.
func dial(ctx context.Context, stateDir string) (*os.File, error) {
	c, err := dialUnix(ctx, filepath.Join(stateDir, socketFile))
	if err != nil {
		return nil, fmt.Errorf("container monitor: %w", err)
	}
	return c, nil
}

// call sends one request and reads its reply, bounded by ctx.
func call(ctx context.Context, stateDir, op string) (reply, error) {
	var rep reply
	conn, err := dial(ctx, stateDir)
	if err != nil {
		return rep, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := writeJSONLine(conn, request{Op: op}); err != nil {
		return rep, fmt.Errorf("send %s to container monitor: %w", op, err)
	}
	if err := readJSONLine(bufio.NewReader(conn), &rep); err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		return rep, fmt.Errorf("read reply to %s from container monitor (did it exit?): %w", op, err)
	}
	return rep, nil
}

// Size is a terminal size.
type Size struct{ Rows, Cols uint16 }

// AttachOptions are the caller's ends of an attach session.
type AttachOptions struct {
	// Stdin, if set and the container was started with Stdin, is copied
	// to the container's stdin; its EOF closes the container's stdin
	// (without a terminal; with one, EOF just stops the copy).
	Stdin io.Reader
	// Stdout and Stderr receive the streams (with a terminal, one stream,
	// to Stdout). A nil writer drops its stream.
	Stdout, Stderr io.Writer
	// Resize carries terminal size changes.
	Resize <-chan Size
}

// Session is an open attach session: the monitor sends it the output
// written from the moment OpenAttach returned.
type Session struct {
	conn     *os.File
	Terminal bool   // the container has a terminal: output is one stream
	Status   Status // the status when attached

	mu   sync.Mutex // serialises frames to the monitor
	done chan struct{}
	code int
	err  error
}

// OpenAttach connects to the monitor of stateDir and starts streaming.
// Once it returns, no output is missed: open it between Create and
// StartCreated so a foreground run sees the first output. Call Wait.
func OpenAttach(ctx context.Context, stateDir string, opts AttachOptions) (*Session, error) {
	conn, err := dial(ctx, stateDir)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReader(conn)
	var rep reply
	err = writeJSONLine(conn, request{Op: opAttach})
	if err == nil {
		err = readJSONLine(br, &rep)
	}
	if err == nil && rep.Error != "" {
		err = errors.New(rep.Error)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("attach to container monitor in %s: %w", stateDir, err)
	}
	s := &Session{conn: conn, Terminal: rep.Terminal, done: make(chan struct{}), code: -1}
	if rep.Status != nil {
		s.Status = *rep.Status
	}
	go s.readOutput(br, opts)
	if opts.Stdin != nil {
		go s.copyStdin(opts.Stdin)
	}
	if opts.Resize != nil {
		go func() {
			for {
				select {
				case sz, ok := <-opts.Resize:
					if !ok {
						return
					}
					p := make([]byte, 4)
					binary.BigEndian.PutUint16(p, sz.Rows)
					binary.BigEndian.PutUint16(p[2:], sz.Cols)
					s.send(frameResize, p)
				case <-s.done:
					return
				}
			}
		}()
	}
	return s, nil
}

func (s *Session) send(typ byte, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return writeFrame(s.conn, typ, p)
}

func (s *Session) copyStdin(r io.Reader) {
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if s.send(frameStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				s.send(frameStdinClose, nil)
			}
			return
		}
	}
}

func (s *Session) readOutput(br *bufio.Reader, opts AttachOptions) {
	defer close(s.done)
	for {
		typ, p, err := readFrame(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, os.ErrClosed) {
				s.err = fmt.Errorf("attach: %w", err)
			}
			return
		}
		var w io.Writer
		switch typ {
		case frameStdout:
			w = opts.Stdout
		case frameStderr:
			w = opts.Stderr
		case frameExit:
			if len(p) == 4 {
				s.code = int(int32(binary.BigEndian.Uint32(p)))
			}
			return
		}
		if w != nil {
			if _, err := w.Write(p); err != nil {
				s.err = fmt.Errorf("attach: write output: %w", err)
				return
			}
		}
	}
}

// Wait returns when the container's output has ended (it exited) with its
// exit code (-1 if the monitor went away without one), or when ctx ends:
// then the session detaches and the container keeps running.
func (s *Session) Wait(ctx context.Context) (int, error) {
	defer s.conn.Close()
	select {
	case <-s.done:
		return s.code, s.err
	case <-ctx.Done():
		s.conn.Close()
		<-s.done
		return -1, ctx.Err()
	}
}

// Attach is OpenAttach then Wait.
func Attach(ctx context.Context, stateDir string, opts AttachOptions) (int, error) {
	s, err := OpenAttach(ctx, stateDir, opts)
	if err != nil {
		return -1, err
	}
	return s.Wait(ctx)
}

// Alive reports whether the monitor of stateDir runs: the pid in
// monitor.pid exists and started when the monitor recorded, so a reused
// pid is not taken for it.
func Alive(stateDir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(stateDir, pidFile))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return 0, false
	}
	now, err := procStartTime(pid)
	if err != nil || now != start {
		return 0, false
	}
	// A zombie is not alive.
	if !proc.Running(pid) {
		return 0, false
	}
	return pid, true
}

// readJSONLine reads one line and decodes it with encoding/json (the
// engine's side; the monitor has its own codec).
func readJSONLine(br *bufio.Reader, v any) error {
	line, err := readLine(br)
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

func writeJSONLine(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeLine(w, data)
}
