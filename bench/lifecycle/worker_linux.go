package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// workerEnv carries a worker's configuration (JSON) from the benchmark to the
// copy of itself it starts; its presence is what makes a process a worker.
const workerEnv = "BERTH_BENCH_WORKER"

// unifiedCgroup is where a hybrid cgroup host mounts cgroup2.
const unifiedCgroup = "/sys/fs/cgroup/unified"

// commandTimeout bounds each runtime command and each wait for a container,
// so a hung runtime fails its run instead of hanging the benchmark.
const commandTimeout = 30 * time.Second

// workerConfig is what a worker needs to drive one runtime.
type workerConfig struct {
	Runtime        string // short name: berth, runc, crun
	Path           string // runtime binary
	Root           string // its --root
	Scratch        string // pid file and captured stderr
	UnmountUnified bool   // runs in a private mount namespace; unmount cgroup2 there first
	GNUTime        string // /usr/bin/time, for RSS cycles
	Log            bool   // --log SCRATCH/runtime.log --log-format json on every command
}

// request asks a worker for one create→start→wait→delete cycle.
type request struct {
	Bundle string
	ID     string
	// MeasureRSS runs each runtime command under GNU time to learn its peak
	// RSS. A child's ru_maxrss starts at the RSS of the process that forked
	// it (the kernel copies the parent's high-water mark into the child and
	// keeps it across execve), so a runtime started directly by this Go
	// process would report at least this process's few MiB. GNU time is a
	// small C program that forks, execs the command and reports the child's
	// ru_maxrss from wait4. It costs an extra exec per command, so these
	// cycles are not timed.
	MeasureRSS bool
}

// reply is a worker's answer to a request.
type reply struct {
	Sample sample
	Err    string `json:",omitempty"`
}

// sample is one container's cycle. Durations are nanoseconds.
type sample struct {
	Create, Start, Wait, Delete, Total time.Duration
	// RuntimeRSS is each command's ru_maxrss in KiB, in MeasureRSS cycles.
	RuntimeRSS map[string]int64 `json:",omitempty"`
}

// worker drives one runtime. It is a child subreaper, as containerd's shim
// is, so each container init is reparented to it when create exits.
type worker struct {
	cfg     workerConfig
	devNull *os.File
	stderr  *os.File       // each runtime command's stderr, read back on failure
	live    map[string]int // containers not yet deleted → init pid (0 if unknown)
}

// workerMain is the whole life of a worker process: set up, serve requests
// from stdin until EOF, clean up. It returns the exit status.
func workerMain() int {
	var cfg workerConfig
	if err := json.Unmarshal([]byte(os.Getenv(workerEnv)), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "lifecycle worker: decode %s: %v\n", workerEnv, err)
		return 1
	}
	w, err := newWorker(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lifecycle worker %s: %v\n", cfg.Runtime, err)
		return 1
	}
	defer w.close()
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintf(os.Stderr, "lifecycle worker %s: decode request: %v\n", cfg.Runtime, err)
			return 1
		}
		s, err := w.cycle(context.Background(), req)
		rep := reply{Sample: s}
		if err != nil {
			rep.Err = err.Error()
			w.cleanup()
		}
		w.reapStrays()
		if err := out.Encode(rep); err != nil {
			return 1
		}
	}
	return 0
}

func newWorker(cfg workerConfig) (*worker, error) {
	if cfg.UnmountUnified {
		// The parent started us with CLONE_NEWNS, and Go's fork made "/"
		// rprivate in the new namespace before exec, so this unmount does not
		// propagate to the host.
		if err := unix.Unmount(unifiedCgroup, unix.MNT_DETACH); err != nil {
			return nil, fmt.Errorf("unmount %s in the private mount namespace: %w", unifiedCgroup, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become child subreaper: %w", err)
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(filepath.Join(cfg.Scratch, "stderr"))
	if err != nil {
		devNull.Close()
		return nil, fmt.Errorf("create stderr capture file: %w", err)
	}
	return &worker{cfg: cfg, devNull: devNull, stderr: stderr, live: map[string]int{}}, nil
}

func (w *worker) close() {
	w.cleanup()
	w.reapStrays()
	w.devNull.Close()
	w.stderr.Close()
}

// cycle runs one container through its life and times each step.
func (w *worker) cycle(ctx context.Context, req request) (sample, error) {
	bundle, id, measureRSS := req.Bundle, req.ID, req.MeasureRSS
	s := sample{}
	if measureRSS {
		s.RuntimeRSS = map[string]int64{}
	}
	pidFile := filepath.Join(w.cfg.Scratch, "pid")
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	w.live[id] = 0
	t0 := time.Now()
	rss, err := w.run(ctx, measureRSS, "create", "--bundle", bundle, "--pid-file", pidFile, id)
	t1 := time.Now()
	if err != nil {
		return s, err
	}
	s.Create = t1.Sub(t0)
	s.record("create", rss)
	pid, err := readPidFile(pidFile)
	if err != nil {
		return s, fmt.Errorf("%s create %s: %w", w.cfg.Runtime, id, err)
	}
	w.live[id] = pid

	t1 = time.Now()
	rss, err = w.run(ctx, measureRSS, "start", id)
	t2 := time.Now()
	if err != nil {
		return s, err
	}
	s.Start = t2.Sub(t1)
	s.record("start", rss)

	status, err := waitContainer(pid)
	t3 := time.Now()
	if err != nil {
		return s, fmt.Errorf("wait for container %s (pid %d): %w", id, pid, err)
	}
	s.Wait = t3.Sub(t2)
	w.live[id] = 0 // reaped: its pid may be reused
	if !status.Exited() || status.ExitStatus() != 0 {
		return s, fmt.Errorf("container %s: /bin/true ended with %s", id, describeStatus(status))
	}

	t3 = time.Now()
	rss, err = w.run(ctx, measureRSS, "delete", id)
	t4 := time.Now()
	if err != nil {
		return s, err
	}
	delete(w.live, id)
	s.Delete = t4.Sub(t3)
	s.record("delete", rss)
	s.Total = s.Create + s.Start + s.Wait + s.Delete
	return s, nil
}

func (s *sample) record(cmd string, rssKiB int64) {
	if s.RuntimeRSS != nil {
		s.RuntimeRSS[cmd] = rssKiB
	}
}

// run runs one runtime command; with measureRSS, under GNU time, returning
// the command's ru_maxrss. Its stdio are files, not pipes: a container init
// inherits create's stdio, and a pipe would make Wait block until the
// container exits.
func (w *worker) run(ctx context.Context, measureRSS bool, args ...string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if err := w.stderr.Truncate(0); err != nil {
		return 0, err
	}
	if _, err := w.stderr.Seek(0, 0); err != nil {
		return 0, err
	}
	argv := []string{w.cfg.Path, "--root", w.cfg.Root}
	if w.cfg.Log {
		argv = append(argv, "--log", filepath.Join(w.cfg.Scratch, "runtime.log"), "--log-format", "json")
	}
	argv = append(argv, args...)
	rssFile := filepath.Join(w.cfg.Scratch, "rss")
	if measureRSS {
		argv = append([]string{w.cfg.GNUTime, "-f", "%M", "-o", rssFile, "--"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = w.devNull, w.devNull, w.stderr
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(w.stderr.Name())
		return 0, fmt.Errorf("%s %s: %w: %s", w.cfg.Runtime, strings.Join(args, " "), err, lastLines(msg, 5))
	}
	if !measureRSS {
		return 0, nil
	}
	out, err := os.ReadFile(rssFile)
	if err != nil {
		return 0, fmt.Errorf("read GNU time's output: %w", err)
	}
	kib, err := strconv.ParseInt(lastLines(out, 1), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("GNU time's output %q is not a KiB count", out)
	}
	return kib, nil
}

// cleanup force-deletes every container this worker created and has not
// deleted, and reaps their inits. Errors are reported, not returned: cleanup
// goes on with the next container.
func (w *worker) cleanup() {
	for id, pid := range w.live {
		if _, err := w.run(context.Background(), false, "delete", "--force", id); err != nil &&
			!strings.Contains(strings.ToLower(err.Error()), "not exist") &&
			!strings.Contains(strings.ToLower(err.Error()), "not found") {
			fmt.Fprintf(os.Stderr, "lifecycle worker %s: cleanup: %v\n", w.cfg.Runtime, err)
		}
		if pid > 0 {
			reapInit(pid)
		}
		delete(w.live, id)
	}
}

// reapInit makes sure a container init that delete --force should have
// killed is gone and reaped. Only an unreaped child of ours is signalled: its
// pid cannot have been reused.
func reapInit(pid int) {
	deadline := time.Now().Add(5 * time.Second)
	for killed := false; time.Now().Before(deadline); {
		got, err := unix.Wait4(pid, nil, unix.WNOHANG, nil)
		if got == pid || err != nil {
			return
		}
		if !killed {
			unix.Kill(pid, unix.SIGKILL)
			killed = true
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "lifecycle worker: container init %d survived SIGKILL for 5s\n", pid)
}

// reapStrays reaps any other orphan reparented to this subreaper (a
// runtime's helper process). It runs only between commands, when no exec.Cmd
// of ours is waiting, so it cannot steal an exit status.
func (w *worker) reapStrays() {
	for {
		pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// waitContainer waits for the container init, which create left as an
// orphan that the kernel reparented to this subreaper.
func waitContainer(pid int) (unix.WaitStatus, error) {
	var status unix.WaitStatus
	timer := time.AfterFunc(commandTimeout, func() { unix.Kill(pid, unix.SIGKILL) })
	defer timer.Stop()
	for {
		_, err := unix.Wait4(pid, &status, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			return status, fmt.Errorf("not a child of the subreaper: the runtime must leave the init as an orphan after create: %w", err)
		}
		return status, err
	}
}

func readPidFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read --pid-file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("--pid-file %s holds %q, not a pid", path, data)
	}
	return pid, nil
}

func describeStatus(s unix.WaitStatus) string {
	if s.Signaled() {
		return "signal " + s.Signal().String()
	}
	return "exit status " + strconv.Itoa(s.ExitStatus())
}

// lastLines keeps the end of a runtime's stderr for an error message.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
