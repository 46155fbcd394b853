package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	if os.Getenv(workerEnv) != "" {
		os.Exit(workerMain())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lifecycle:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	n, warmup         int
	berth, runc, crun string
	limits, json      bool
	privateMountNS    bool
	log               bool
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("lifecycle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 100, "containers measured per runtime and configuration")
	fs.IntVar(&o.warmup, "warmup", 3, "unmeasured containers per runtime before the measured ones")
	fs.StringVar(&o.berth, "berth", "", "berth-runtime binary (not measured when empty or missing)")
	fs.StringVar(&o.runc, "runc", "runc", `runc binary, or "none"`)
	fs.StringVar(&o.crun, "crun", "crun", `crun binary, or "none"`)
	fs.BoolVar(&o.limits, "limits", false, "also measure a config with cgroup limits and a seccomp profile")
	fs.BoolVar(&o.privateMountNS, "private-mountns", false,
		"drive every runtime, not only crun, from the private mount namespace without "+unifiedCgroup)
	fs.BoolVar(&o.log, "log", false,
		"pass --log FILE --log-format json to every command, as containerd's shim and Docker do")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of tables")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: every setting is a flag", fs.Arg(0))
	}
	if o.n < 1 {
		return o, fmt.Errorf("-n %d: need at least one container", o.n)
	}
	if o.warmup < 0 {
		return o, fmt.Errorf("-warmup %d: cannot be negative", o.warmup)
	}
	return o, nil
}

// runtimeInfo is one runtime under measurement.
type runtimeInfo struct {
	Name    string
	Path    string
	Version string
	// PrivateMountNS: drive it from a private mount namespace in which
	// /sys/fs/cgroup/unified is unmounted (crun on a hybrid cgroup host).
	PrivateMountNS bool
	// Log: every command gets --log and --log-format json (-log).
	Log bool
}

// resolveRuntimes finds the binaries to measure, in the order berth, runc,
// crun, and says why any is left out.
func resolveRuntimes(o options) (rts []runtimeInfo, notes []string) {
	hybrid := isCgroup2(unifiedCgroup)
	for _, c := range []struct{ name, flag, pkg string }{
		{"berth", o.berth, ""}, {"runc", o.runc, "runc"}, {"crun", o.crun, "crun"},
	} {
		if c.flag == "" {
			notes = append(notes, fmt.Sprintf("%s: not measured (no -%s given)", c.name, c.name))
			continue
		}
		if c.flag == "none" {
			notes = append(notes, fmt.Sprintf("%s: not measured (-%s none)", c.name, c.name))
			continue
		}
		path, err := exec.LookPath(c.flag)
		if err != nil {
			hint := ""
			if c.pkg != "" {
				hint = " (Debian package " + c.pkg + ")"
			}
			notes = append(notes, fmt.Sprintf("%s: not measured: %v%s", c.name, err, hint))
			continue
		}
		rt := runtimeInfo{Name: c.name, Path: path, Version: runtimeVersion(path), Log: o.log}
		if hybrid && (c.name == "crun" || o.privateMountNS) {
			rt.PrivateMountNS = true
		}
		rts = append(rts, rt)
	}
	if hybrid && o.privateMountNS {
		notes = append(notes, "every runtime is driven from a private mount namespace without "+unifiedCgroup+
			" (-private-mountns): the same cgroup v1 view for all")
	} else if hybrid && slices.ContainsFunc(rts, func(rt runtimeInfo) bool { return rt.Name == "crun" }) {
		// crun 1.8.1 refuses a hybrid host ("cgroups in hybrid mode not
		// supported"). The alternative, unshare+umount in front of every
		// crun command, would add two execs and a mount-namespace copy to
		// each of crun's times. One worker process that enters the private
		// namespace once keeps crun's per-command path the same as the
		// others'. The one difference left is that crun, unlike runc and
		// berth, has no cgroup2 directory to create and remove;
		// -private-mountns removes that difference too.
		notes = append(notes, "crun: driven from a private mount namespace without "+unifiedCgroup+
			" (crun refuses hybrid cgroup hosts); runc and berth see the host as it is")
	}
	return rts, notes
}

// findGNUTime returns the path of GNU time, which measures RSS (see
// request.MeasureRSS), or "", and a note for the report either way.
func findGNUTime() (path, note string) {
	path, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		return "", "RSS: not measured: GNU time missing (Debian package time)"
	}
	floor := "?"
	if out, err := exec.Command(path, "-f", "%M", busyboxPath, "true").CombinedOutput(); err == nil {
		if kib, err := strconv.ParseInt(lastLines(out, 1), 10, 64); err == nil {
			floor = f1(mib(kib))
		}
	}
	return path, fmt.Sprintf("RSS: ru_maxrss of each create, start and delete run under GNU time, in %d extra untimed containers per runtime (busybox true measures %s MiB this way)",
		rssContainers, floor)
}

// isCgroup2 reports whether path is a cgroup2 mount.
// cpusetNote says when no cgroup exists in the v1 cpuset hierarchy at
// root: then each container's cpuset cgroup is the only one, and its mkdir
// turns on a kernel static key (cpuset_css_online, which patches the
// kernel's code on every CPU: ~1.6 ms on the VM of session 12, 30 us with
// another cpuset cgroup present) in every create of every runtime. A host
// that runs containers keeps parent cgroups (/docker, /kubepods, ...) and
// does not pay it; the benchmark leaves the host as it is and says so.
func cpusetNote(root string) string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return "" // no v1 cpuset hierarchy
	}
	for _, e := range entries {
		if e.IsDir() {
			return ""
		}
	}
	return "cgroup v1 cpuset: no other cgroup in " + root + ", so every create of every runtime makes the first one, " +
		"which turns on a kernel static key (code patching on every CPU, ~1.6 ms here); hosts with parent cgroups do not pay it"
}

func isCgroup2(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// runtimeVersion is the version word from "<runtime> --version", or "?".
func runtimeVersion(path string) string {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "?"
	}
	fields := strings.Fields(strings.SplitN(string(out), "\n", 2)[0])
	for i, f := range fields {
		if f == "version" && i+1 < len(fields) {
			return fields[i+1]
		}
	}
	if len(fields) > 0 {
		return fields[len(fields)-1]
	}
	return "?"
}

// run is the whole benchmark: it returns an error after printing the report
// when a runtime failed or something leaked.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root: runtimes create cgroups and namespaces")
	}
	if err := checkBusybox(); err != nil {
		return err
	}
	rts, notes := resolveRuntimes(o)
	if len(rts) == 0 {
		return fmt.Errorf("no runtime to measure: %s", strings.Join(notes, "; "))
	}
	gnuTime, note := findGNUTime()
	notes = append(notes, note)
	if note := cpusetNote("/sys/fs/cgroup/cpuset"); note != "" {
		notes = append(notes, note)
	}
	tmp, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	scenarios := []scenario{scenarioDefault}
	if o.limits {
		scenarios = append(scenarios, scenarioLimits)
	}
	bundles := map[string]string{}
	for _, sc := range scenarios {
		dir := filepath.Join(tmp, "bundle-"+sc.name)
		if err := writeBundle(dir, sc); err != nil {
			return err
		}
		bundles[sc.name] = dir
	}

	// Workers' stderr goes to one writer; a non-file writer gets a copying
	// goroutine per worker, so writes must not interleave.
	workerStderr := stderr
	if _, ok := stderr.(*os.File); !ok {
		workerStderr = &syncWriter{w: stderr}
	}
	workers := make([]*workerProc, 0, len(rts))
	// Stop every worker on every path: a worker force-deletes what it
	// created when its stdin closes.
	stopAll := func() {
		for _, w := range workers {
			if err := w.stop(); err != nil {
				fmt.Fprintf(stderr, "lifecycle: %s worker: %v\n", w.rt.Name, err)
			}
		}
		workers = nil
	}
	defer stopAll()
	for _, rt := range rts {
		w, err := startWorker(rt, tmp, gnuTime, workerStderr)
		if err != nil {
			return err
		}
		workers = append(workers, w)
	}

	rep := report{N: o.n, Warmup: o.warmup, Order: "interleaved", Notes: notes}
	ids := map[string]bool{}
	for _, sc := range scenarios {
		results := measure(ctx, workers, sc, bundles[sc.name], o.n, o.warmup, gnuTime != "", ids)
		rep.Scenarios = append(rep.Scenarios, summarize(sc, results))
		if ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, "INTERRUPTED: the tables hold the containers measured so far")
	}
	roots := make([]string, 0, len(workers))
	for _, w := range workers {
		roots = append(roots, w.cfg.Root)
	}
	stopAll()
	rep.Leaks = checkLeaks(ids, roots)
	if rep.Leaks == nil {
		rep.Leaks = []string{}
	}

	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.writeText(stdout)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return rep.problems()
}

// rssContainers is how many extra, untimed containers per runtime measure
// RSS under GNU time: peak RSS hardly varies, so a few suffice.
const rssContainers = 10

// measure runs warm-up and measured cycles, then the RSS cycles. The runtimes
// take turns, one container each, and the turn order rotates every round, so
// drifting background load and cache state fall on all of them alike. A
// runtime that fails drops out of this scenario; the others go on.
func measure(ctx context.Context, workers []*workerProc, sc scenario, bundle string, n, warmup int, measureRSS bool, ids map[string]bool) []runResult {
	results := make([]runResult, len(workers))
	for i, w := range workers {
		results[i].rt = w.rt
	}
	rssRounds := 0
	if measureRSS {
		rssRounds = min(n, rssContainers)
	}
	for round := -warmup; round < n+rssRounds && ctx.Err() == nil; round++ {
		for k := range workers {
			i := (k + round + warmup) % len(workers)
			if results[i].err != nil || ctx.Err() != nil {
				continue
			}
			name := workers[i].rt.Name
			req := request{Bundle: bundle, ID: fmt.Sprintf("berth-bench-%s-%s%d", name, sc.idPart, round)}
			switch {
			case round < 0:
				req.ID = fmt.Sprintf("berth-bench-%s-%swarmup-%d", name, sc.idPart, round+warmup)
			case round >= n:
				req.ID = fmt.Sprintf("berth-bench-%s-%srss-%d", name, sc.idPart, round-n)
				req.MeasureRSS = true
			}
			ids[req.ID] = true
			s, err := workers[i].cycle(req)
			if err != nil {
				results[i].err = err
				continue
			}
			switch {
			case round >= n:
				results[i].rssSamples = append(results[i].rssSamples, s)
			case round >= 0:
				results[i].samples = append(results[i].samples, s)
			}
		}
	}
	return results
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// workerProc is the benchmark's handle on one worker process.
type workerProc struct {
	rt  runtimeInfo
	cfg workerConfig
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

// startWorker starts a copy of this program as the worker for rt, in its
// own process group so a terminal's ^C reaches only the benchmark, which
// then lets the workers clean up.
func startWorker(rt runtimeInfo, tmp, gnuTime string, stderr io.Writer) (*workerProc, error) {
	cfg := workerConfig{
		GNUTime:        gnuTime,
		Runtime:        rt.Name,
		Path:           rt.Path,
		Root:           filepath.Join(tmp, "root-"+rt.Name),
		Scratch:        filepath.Join(tmp, "scratch-"+rt.Name),
		UnmountUnified: rt.PrivateMountNS,
		Log:            rt.Log,
	}
	for _, d := range []string{cfg.Root, cfg.Scratch} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable to start the %s worker: %w", rt.Name, err)
	}
	env, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), workerEnv+"="+string(env))
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if rt.PrivateMountNS {
		// Go's fork marks / rprivate after unsharing, like unshare(1).
		cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the %s worker: %w", rt.Name, err)
	}
	return &workerProc{rt: rt, cfg: cfg, cmd: cmd, in: in, out: json.NewDecoder(bufio.NewReader(out))}, nil
}

// cycle asks the worker for one container's life.
func (w *workerProc) cycle(r request) (sample, error) {
	req, err := json.Marshal(r)
	if err != nil {
		return sample{}, err
	}
	if _, err := w.in.Write(append(req, '\n')); err != nil {
		return sample{}, fmt.Errorf("%s worker gone: %w", w.rt.Name, err)
	}
	var rep reply
	if err := w.out.Decode(&rep); err != nil {
		return sample{}, fmt.Errorf("%s worker gone: %w", w.rt.Name, err)
	}
	if rep.Err != "" {
		return rep.Sample, errors.New(rep.Err)
	}
	return rep.Sample, nil
}

// stop closes the worker's stdin, which makes it delete whatever it still
// has, and waits for it.
func (w *workerProc) stop() error {
	w.in.Close()
	if err := w.cmd.Wait(); err != nil {
		return fmt.Errorf("worker exited: %w", err)
	}
	return nil
}
