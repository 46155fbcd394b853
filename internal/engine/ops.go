package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/fscopy"
	"github.com/berth-project/berth/internal/logs"
	"github.com/berth-project/berth/internal/monitor"
	"github.com/berth-project/berth/internal/runtime/events"
	"github.com/berth-project/berth/internal/snapshot"
)

// Attach connects streams to a running container until its output ends
// (returns its exit code) or ctx ends (detaches).
func (e *Engine) Attach(ctx context.Context, ref string, streams AttachStreams) (int, error) {
	r, err := e.store.get(ref)
	if err != nil {
		return 0, err
	}
	if st := e.liveState(r); !st.Running {
		return 0, fmt.Errorf("you cannot attach to a stopped container, start it first: %w", errdefs.ErrFailedPrecondition)
	}
	code, err := monitor.Attach(ctx, e.runDir(r.ID), attachOptions(streams))
	if err != nil {
		return 0, err
	}
	if c, err := e.Wait(ctx, r.ID); err == nil {
		return c, nil
	}
	return code, nil
}

// Logs writes the container's log; with o.Follow it goes on until the
// container stops or ctx ends.
func (e *Engine) Logs(ctx context.Context, ref string, o LogsOptions, stdout, stderr io.Writer) error {
	r, err := e.store.get(ref)
	if err != nil {
		return err
	}
	tail := o.Tail
	if tail == 0 && !o.Follow {
		tail = 0
	}
	ro := logs.ReadOptions{
		Follow: o.Follow, Tail: o.Tail, Since: o.Since, Until: o.Until, Timestamps: o.Timestamps,
		Stdout: stdout, Stderr: stderr,
		Done: func() bool {
			st := e.liveState(r)
			return !st.Running && !st.Restarting && st.MonitorPid == 0
		},
	}
	if _, err := os.Stat(r.LogPath); errors.Is(err, os.ErrNotExist) {
		if !o.Follow {
			return nil
		}
	}
	return logs.Read(ctx, r.LogPath, ro)
}

// Exec runs a process in a running container; with o.Detach it returns at
// once with code 0. The exit code of the process is returned; 126 and 127
// as Docker when it cannot be run.
func (e *Engine) Exec(ctx context.Context, ref string, o ExecOptions, streams AttachStreams) (int, error) {
	r, err := e.store.get(ref)
	if err != nil {
		return 0, err
	}
	st := e.liveState(r)
	if !st.Running {
		return 0, fmt.Errorf("container %s is not running: %w", r.ID[:12], errdefs.ErrFailedPrecondition)
	}
	if len(o.Cmd) == 0 {
		return 0, fmt.Errorf("exec: no command given: %w", errdefs.ErrInvalidArgument)
	}
	if o.Detach && o.Tty {
		// The terminal would end with this command and hang up on the
		// process; nothing long-lived holds an exec's terminal yet.
		return 0, fmt.Errorf("exec: -d with -t is not supported yet; drop -t: %w", errdefs.ErrNotImplemented)
	}
	rundir := e.runDir(r.ID)
	b, err := os.ReadFile(filepath.Join(rundir, "config.json"))
	if err != nil {
		return 0, fmt.Errorf("exec: the container's bundle: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return 0, fmt.Errorf("exec: the container's bundle: %w", err)
	}
	p := *spec.Process
	p.Args = o.Cmd
	p.Terminal = o.Tty
	p.Env = mergeEnv(p.Env, o.Env)
	if o.WorkingDir != "" {
		p.Cwd = o.WorkingDir
	}
	if o.User != "" {
		u, err := resolveUser(ctx, filepath.Join(rundir, "rootfs"), o.User)
		if err != nil {
			return 0, err
		}
		p.User = u.specUser()
	}
	if o.Privileged {
		p.Capabilities = allCapabilities()
		p.ApparmorProfile, p.SelinuxLabel = "", ""
	}
	p.ConsoleSize = nil
	pb, err := json.Marshal(&p)
	if err != nil {
		return 0, err
	}
	// Not under rundir: a unix socket's path must fit in 108 bytes.
	execDir, err := os.MkdirTemp("", "berth-exec-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(execDir)
	procFile := filepath.Join(execDir, "process.json")
	if err := os.WriteFile(procFile, pb, 0o600); err != nil {
		return 0, err
	}
	pidFile := filepath.Join(execDir, "pid")
	args := append(e.runtimeGlobal(r), "exec", "--process", procFile, "--pid-file", pidFile)
	if o.Detach {
		args = append(args, "--detach")
	}
	var console *consoleSocket
	if o.Tty {
		console, err = newConsoleSocket(filepath.Join(execDir, "console.sock"))
		if err != nil {
			return 0, err
		}
		defer console.Close()
		args = append(args, "--console-socket", console.path)
	}
	// In a runtime sandbox (runsc) the exec'd process is not on the host:
	// the runtime names it, and kills it, by its sandbox-internal pid.
	internalPid := ""
	if spec.Annotations[AnnotationContainerType] != "" {
		internalPid = filepath.Join(execDir, "internal-pid")
		args = append(args, "--internal-pid-file", internalPid)
	}
	args = append(args, r.ID)
	cmd := exec.CommandContext(ctx, r.Runtime, args...)
	if o.KillOnCancel && !o.Detach {
		cmd.Cancel = func() error {
			if internalPid != "" {
				e.killInSandbox(r, internalPid)
			}
			return killExec(cmd, pidFile)
		}
	}
	var errBuf bytes.Buffer
	if o.Tty {
		cmd.Stdin, cmd.Stdout = nil, nil
		cmd.Stderr = &errBuf
	} else {
		if o.Interactive && streams.Stdin != nil {
			cmd.Stdin = streams.Stdin
		}
		cmd.Stdout, cmd.Stderr = streams.Stdout, io.MultiWriter(streams.Stderr, &limitedBuffer{b: &errBuf, max: 4096})
		if o.Detach {
			cmd.Stdout, cmd.Stderr = nil, &errBuf
		}
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}
	ioDone := make(chan struct{})
	if o.Tty {
		go func() {
			defer close(ioDone)
			pty, err := console.Receive(ctx, 30*time.Second)
			if err != nil {
				return
			}
			defer pty.Close()
			go resizeLoop(pty, streams.Resize)
			if o.Interactive && streams.Stdin != nil {
				go io.Copy(pty, streams.Stdin)
			}
			io.Copy(streams.Stdout, pty)
		}()
	} else {
		close(ioDone)
	}
	err = cmd.Wait()
	if o.Tty {
		select {
		case <-ioDone:
		case <-time.After(2 * time.Second):
		}
	}
	if o.Detach {
		if err != nil {
			return 0, execError(err, errBuf.String())
		}
		return 0, nil
	}
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		msg := errBuf.String()
		if code == 255 && msg != "" && (strings.Contains(msg, "exec") || strings.Contains(msg, "executable")) {
			return 0, execError(err, msg)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return code, nil
	}
	return 0, fmt.Errorf("exec: %w", err)
}

// execError turns the runtime's refusal to exec into Docker's 126/127.
func execError(err error, msg string) error {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		msg = err.Error()
	}
	if e := startError(errors.New(msg)); e != nil {
		var xe *ExitError
		if errors.As(e, &xe) {
			return xe
		}
	}
	return &ExitError{Code: 126, Err: errors.New(msg)}
}

type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}

// Top lists the container's processes as ps(1) does with psArgs (default
// -ef), keeping the rows whose PID is the container's.
func (e *Engine) Top(ctx context.Context, ref string, psArgs []string) ([]string, [][]string, error) {
	r, err := e.store.get(ref)
	if err != nil {
		return nil, nil, err
	}
	if st := e.liveState(r); !st.Running {
		return nil, nil, fmt.Errorf("container %s is not running: %w", r.ID[:12], errdefs.ErrFailedPrecondition)
	}
	out, err := e.runtimeCmd(ctx, r, "ps", "--format", "json", r.ID)
	if err != nil {
		return nil, nil, err
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		return nil, nil, fmt.Errorf("top: the runtime's ps: %w", err)
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	ctx, cancel := context.WithTimeout(ctx, runtimeTimeout)
	defer cancel()
	psOut, err := exec.CommandContext(ctx, "ps", psArgs...).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("top: ps %s: %w", strings.Join(psArgs, " "), err)
	}
	lines := strings.Split(strings.TrimRight(string(psOut), "\n"), "\n")
	titles := strings.Fields(lines[0])
	pidCol := -1
	for i, t := range titles {
		if t == "PID" {
			pidCol = i
		}
	}
	if pidCol < 0 {
		return nil, nil, fmt.Errorf("top: ps %s prints no PID column: %w", strings.Join(psArgs, " "), errdefs.ErrInvalidArgument)
	}
	want := map[string]bool{}
	for _, p := range pids {
		want[strconv.Itoa(p)] = true
	}
	var rows [][]string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= pidCol || !want[f[pidCol]] {
			continue
		}
		// The last column (the command) may hold spaces.
		if len(f) > len(titles) {
			f = append(f[:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		}
		rows = append(rows, f)
	}
	return titles, rows, nil
}

// Stats samples the container's resource use through the runtime's
// `events --stats` (runc's JSON, the same on cgroup v1 and v2), or, for a
// runtime without that command (crun), from the cgroup files of the
// container's init.
func (e *Engine) Stats(ctx context.Context, ref string) (Stats, error) {
	r, err := e.store.get(ref)
	if err != nil {
		return Stats{}, err
	}
	s := Stats{ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), Read: time.Now().UTC()}
	st := e.liveState(r)
	if !st.Running {
		return s, nil
	}
	var ev struct {
		Data *events.Stats `json:"data"`
	}
	out, err := e.runtimeCmd(ctx, r, "events", "--stats", r.ID)
	if err != nil && st.Pid > 0 && strings.Contains(err.Error(), "unknown command") {
		ev.Data, err = cgroupStats(st.Pid)
	} else if err == nil {
		if err := json.Unmarshal(out, &ev); err != nil {
			return s, fmt.Errorf("stats: the runtime's events: %w", err)
		}
		if ev.Data == nil {
			return s, errors.New("stats: the runtime's events carry no data")
		}
	}
	if err != nil {
		return s, err
	}
	d := ev.Data
	s.CPUNanos = d.CPU.Usage.Total
	s.MemUsage = d.Memory.Usage.Usage
	// Docker subtracts the page cache the kernel can drop.
	if c, ok := d.Memory.Raw["total_inactive_file"]; ok && c < s.MemUsage {
		s.MemUsage -= c
	} else if c, ok := d.Memory.Raw["inactive_file"]; ok && c < s.MemUsage {
		s.MemUsage -= c
	}
	s.MemLimit = d.Memory.Usage.Limit
	if mt := memTotal(); s.MemLimit == 0 || s.MemLimit > mt {
		s.MemLimit = mt
	}
	if s.MemLimit > 0 {
		s.MemPercent = float64(s.MemUsage) / float64(s.MemLimit) * 100
	}
	s.Pids = d.Pids.Current
	for _, b := range d.Blkio.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			s.BlockRead += b.Value
		case "write":
			s.BlockWrite += b.Value
		}
	}
	s.NetRx, s.NetTx = netDev(st.Pid)
	s.OnlineCPUs = onlineCPUs()
	return s, nil
}

// netDev sums the container's interfaces' bytes (not lo).
func netDev(pid int) (rx, tx uint64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(fs[0], 10, 64)
		t, _ := strconv.ParseUint(fs[8], 10, 64)
		rx, tx = rx+r, tx+t
	}
	return rx, tx
}

func memTotal() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

func onlineCPUs() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 1
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "cpu") && len(l) > 3 && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	if n == 0 {
		n = 1
	}
	return n
}

// Port lists the container's published ports.
func (e *Engine) Port(ctx context.Context, ref string) (map[string][]PortBinding, error) {
	c, err := e.Inspect(ctx, ref)
	if err != nil {
		return nil, err
	}
	return c.NetworkSettings.Ports, nil
}

// withRootfs runs fn with the container's root file system mounted: the
// running container's own mount, or a temporary one.
func (e *Engine) withRootfs(ctx context.Context, r *record, fn func(rootfs string) error) error {
	rootfs := filepath.Join(e.runDir(r.ID), "rootfs")
	if st := e.liveState(r); st.Running {
		return fn(rootfs)
	}
	unlock, err := e.lockContainer(ctx, r.ID)
	if err != nil {
		return err
	}
	defer unlock()
	tmp, err := os.MkdirTemp(e.opts.RunRoot, "cp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	ms, err := e.images.Snapshots.Mounts(ctx, r.Snapshot)
	if err != nil {
		return err
	}
	if err := snapshot.MountAll(ms, tmp); err != nil {
		return fmt.Errorf("mount the container's file system: %w", err)
	}
	defer unmountAll(tmp)
	return fn(tmp)
}

// CopyFromContainer copies src in the container to dst on the host ("-":
// a tar stream to w).
func (e *Engine) CopyFromContainer(ctx context.Context, ref, src, dst string, w io.Writer) error {
	r, err := e.store.get(ref)
	if err != nil {
		return err
	}
	return e.withCopyRoot(ctx, r, src, false, func(root, rel string) error {
		return fscopy.CopyOut(ctx, root, rel, dst, w)
	})
}

// CopyToContainer copies the host's src ("-": a tar stream from r) to dst
// in the container.
func (e *Engine) CopyToContainer(ctx context.Context, ref, dst, src string, in io.Reader) error {
	r, err := e.store.get(ref)
	if err != nil {
		return err
	}
	return e.withCopyRoot(ctx, r, dst, true, func(root, rel string) error {
		return fscopy.CopyIn(ctx, root, rel, src, in)
	})
}

// withCopyRoot runs fn with the host directory that holds the container
// path p and p relative to it: the volume or bind-mounted directory p lies
// in (the container sees those, not the root file system under them), or
// the container's root file system. Paths are resolved inside whichever
// root is chosen, so a symlink cannot lead out of it.
func (e *Engine) withCopyRoot(ctx context.Context, r *record, p string, write bool, fn func(root, rel string) error) error {
	clean := path.Clean("/" + p)
	var best *MountPoint
	for i := range r.Mounts {
		m := &r.Mounts[i]
		if clean != m.Destination && !strings.HasPrefix(clean, m.Destination+"/") {
			continue
		}
		if best == nil || len(m.Destination) > len(best.Destination) {
			best = m
		}
	}
	if best == nil {
		return e.withRootfs(ctx, r, func(rootfs string) error { return fn(rootfs, p) })
	}
	switch best.Type {
	case "tmpfs":
		return fmt.Errorf("cp: %s is on a tmpfs mount, which only the container sees: %w", best.Destination, errdefs.ErrNotImplemented)
	case "bind":
		if fi, err := os.Stat(best.Source); err != nil || !fi.IsDir() {
			return fmt.Errorf("cp: %s is a bind-mounted file: copy it on the host (%s): %w", best.Destination, best.Source, errdefs.ErrNotImplemented)
		}
	}
	if write && !best.RW {
		return fmt.Errorf("cp: %s is mounted read-only in the container: %w", best.Destination, errdefs.ErrFailedPrecondition)
	}
	rel := "/" + strings.TrimPrefix(strings.TrimPrefix(clean, best.Destination), "/")
	// Keep Docker's markers: "dir/." (its contents) and a trailing "/".
	switch {
	case strings.HasSuffix(p, "/."):
		rel = strings.TrimSuffix(rel, "/") + "/."
	case strings.HasSuffix(p, "/") && rel != "/":
		rel += "/"
	}
	return fn(best.Source, rel)
}

// Boot starts, after a reboot, the containers whose restart policy is
// always, or unless-stopped and not stopped by the user.
func (e *Engine) Boot(ctx context.Context) error {
	recs, err := e.store.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range recs {
		p := r.HostConfig.RestartPolicy.Name
		if p != "always" && p != "unless-stopped" {
			continue
		}
		if p == "unless-stopped" && r.StoppedByUser {
			continue
		}
		if p == "always" && r.StoppedByUser {
			// Docker starts `always` containers at daemon start even
			// after a manual stop? No: a manually stopped container stays
			// stopped until the daemon restarts — and a reboot is one.
		}
		if st := e.liveState(r); st.Running || st.Restarting {
			continue
		}
		if _, err := e.Start(ctx, r.ID); err != nil {
			errs = append(errs, fmt.Errorf("start %s: %w", strings.TrimPrefix(r.Name, "/"), err))
		}
	}
	return errors.Join(errs...)
}
