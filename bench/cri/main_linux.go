package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// callTimeout bounds every CRI call; a pull gets pullTimeout.
const (
	callTimeout = 2 * time.Minute
	pullTimeout = 5 * time.Minute
)

type options struct {
	pods, parallel, rounds int
	image, sandboxImage    string
	handler                string
	logRoot                string
	pidMode                runtimeapi.NamespaceMode
}

func main() {
	var o options
	var specs [2]rtSpec
	specs[0].name, specs[1].name = "containerd", "berthd"
	flag.StringVar(&specs[0].endpoint, "containerd", "unix:///tmp/berth-critest/containerd/containerd.sock", "containerd's CRI endpoint (empty: skip)")
	flag.StringVar(&specs[0].pidFile, "containerd-pid-file", "/tmp/berth-critest/containerd.pid", "containerd's pid file (test/critest/run.sh writes it)")
	flag.StringVar(&specs[0].procs, "containerd-procs", "containerd-shim", "comm prefix of containerd's per-pod processes")
	flag.StringVar(&specs[1].endpoint, "berthd", "", "berthd's CRI endpoint, e.g. unix:///tmp/berth-critest/berthd/berthd.sock (empty: skip)")
	flag.StringVar(&specs[1].pidFile, "berthd-pid-file", "/tmp/berth-critest/berthd.pid", "berthd's pid file (test/critest/run.sh writes it)")
	flag.StringVar(&specs[1].procs, "berthd-procs", "berth-monitor", "comm prefix of berthd's per-container processes")
	flag.IntVar(&o.pods, "pods", 50, "pods started one after the other (and running for the memory figure)")
	flag.IntVar(&o.parallel, "parallel", 10, "pods started at once")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of -parallel pods at once")
	flag.StringVar(&o.image, "image", "registry.k8s.io/e2e-test-images/busybox:1.29-2", "the container's image")
	flag.StringVar(&o.sandboxImage, "sandbox-image", "registry.k8s.io/pause:3.9", "pulled beforehand too (containerd's sandbox image)")
	flag.StringVar(&o.handler, "runtime-handler", "", "RuntimeClass handler for the pods")
	flag.StringVar(&o.logRoot, "log-root", "/tmp/berth-critest/bench-logs", "directory for the pods' log directories")
	pid := flag.String("pid", "pod", "the pods' PID namespace: pod (shared, the bench's default so far) or container (kubelet's default, unless shareProcessNamespace)")
	flag.Parse()
	switch *pid {
	case "pod":
		o.pidMode = runtimeapi.NamespaceMode_POD
	case "container":
		o.pidMode = runtimeapi.NamespaceMode_CONTAINER
	default:
		fmt.Fprintf(os.Stderr, "bench/cri: -pid %q: want pod or container\n", *pid)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, specs[:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench/cri:", err)
		os.Exit(1)
	}
}

// rtSpec names a runtime under test and how its processes are found.
type rtSpec struct {
	name, endpoint, pidFile, procs string
}

// rt is a connected runtime and what was measured on it.
type rt struct {
	rtSpec
	marker string // the socket's directory: its shims' or monitors' command lines name it
	rs     internalapi.RuntimeService
	is     internalapi.ImageManagerService

	// mu guards pods.
	mu   sync.Mutex
	pods map[string]string // pod sandbox ID -> container ID

	start, startPar, stopRm []time.Duration
	wallPar                 []time.Duration
	idle, loaded            memory
}

func run(ctx context.Context, o options, specs []rtSpec) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: the pods need it and the memory of other users' processes is unreadable")
	}
	runID := randHex(4)
	var rts []*rt
	for _, s := range specs {
		if s.endpoint == "" {
			continue
		}
		r, err := connect(ctx, s)
		if err != nil {
			return err
		}
		rts = append(rts, r)
	}
	if len(rts) == 0 {
		return errors.New("no runtime: give -containerd and/or -berthd")
	}
	defer func() {
		// Clean up with a context of its own: ctx may be cancelled.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for _, r := range rts {
			r.removeAll(cctx)
		}
	}()
	for _, r := range rts {
		r.removeStale(ctx)
		for _, img := range []string{o.sandboxImage, o.image} {
			pctx, cancel := context.WithTimeout(ctx, pullTimeout)
			_, err := r.is.PullImage(pctx, &runtimeapi.ImageSpec{Image: img}, nil, nil)
			cancel()
			if err != nil {
				return fmt.Errorf("%s: pull %s (is the loopback registry up? test/critest/run.sh registry): %w", r.name, img, err)
			}
		}
		// One pod untimed: the first makes the CNI bridge and warms caches.
		id, _, err := r.startPod(ctx, o, runID+"-warm")
		if err != nil {
			return fmt.Errorf("%s: warm-up pod: %w", r.name, err)
		}
		if _, err := r.stopRemove(ctx, id); err != nil {
			return fmt.Errorf("%s: warm-up pod: %w", r.name, err)
		}
		time.Sleep(time.Second)
		if r.idle, err = r.memory(); err != nil {
			return err
		}
	}
	fmt.Printf("%d pods one after the other (runtimes taking turns)...\n", o.pods)
	order := make([][]string, len(rts))
	for i := 0; i < o.pods; i++ {
		for k, r := range rts {
			id, d, err := r.startPod(ctx, o, fmt.Sprintf("%s-%d", runID, i))
			if err != nil {
				return fmt.Errorf("%s: pod %d: %w", r.name, i, err)
			}
			r.start = append(r.start, d)
			order[k] = append(order[k], id)
		}
	}
	time.Sleep(2 * time.Second)
	for _, r := range rts {
		var err error
		if r.loaded, err = r.memory(); err != nil {
			return err
		}
	}
	fmt.Println("stop+remove, taking turns...")
	for i := 0; i < o.pods; i++ {
		for k, r := range rts {
			d, err := r.stopRemove(ctx, order[k][i])
			if err != nil {
				return fmt.Errorf("%s: stop+remove pod %d: %w", r.name, i, err)
			}
			r.stopRm = append(r.stopRm, d)
		}
	}
	fmt.Printf("%d rounds of %d pods at once...\n", o.rounds, o.parallel)
	for round := 0; round < o.rounds; round++ {
		for _, r := range rts {
			if err := r.parallelRound(ctx, o, fmt.Sprintf("%s-p%d", runID, round)); err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
		}
	}
	report(o, rts)
	return nil
}

func connect(ctx context.Context, s rtSpec) (*rt, error) {
	// No tracer provider: no OpenTelemetry handler on the calls timed.
	rs, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(s.endpoint).
		WithConnectionTimeout(30 * time.Second).WithTracerProvider(nil).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w", s.name, s.endpoint, err)
	}
	is, err := remote.NewRemoteImageServiceBuilder().WithEndpoint(s.endpoint).
		WithConnectionTimeout(30 * time.Second).WithTracerProvider(nil).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w", s.name, s.endpoint, err)
	}
	return &rt{
		rtSpec: s,
		marker: filepath.Dir(strings.TrimPrefix(s.endpoint, "unix://")),
		rs:     rs, is: is,
		pods: map[string]string{},
	}, nil
}

const benchLabel = "berth-bench"

func (r *rt) podConfig(o options, name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: name, Namespace: benchLabel},
		Hostname:     name,
		LogDirectory: filepath.Join(o.logRoot, r.name, name),
		Labels:       map[string]string{benchLabel: "1"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: o.pidMode},
		}},
	}
}

// startPod runs a pod with one container and returns the pod's ID and the
// time from RunPodSandbox to the container's StartContainer returning.
func (r *rt) startPod(ctx context.Context, o options, name string) (string, time.Duration, error) {
	cfg := r.podConfig(o, name)
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t0 := time.Now()
	pod, err := r.rs.RunPodSandbox(cctx, cfg, o.handler)
	if err != nil {
		return "", 0, fmt.Errorf("RunPodSandbox: %w", err)
	}
	r.track(pod, "")
	ctr, err := r.rs.CreateContainer(cctx, pod, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
		Image:    &runtimeapi.ImageSpec{Image: o.image},
		// sh waits in `wait`, which a trapped SIGTERM interrupts: the stop
		// measures the runtime, not a grace period.
		Command: []string{"/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"},
		LogPath: "sleep.log",
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: o.pidMode},
		}},
	}, cfg)
	if err != nil {
		return pod, 0, fmt.Errorf("CreateContainer: %w", err)
	}
	r.track(pod, ctr)
	if err := r.rs.StartContainer(cctx, ctr); err != nil {
		return pod, 0, fmt.Errorf("StartContainer: %w", err)
	}
	return pod, time.Since(t0), nil
}

func (r *rt) track(pod, ctr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pods[pod] = ctr
}

// stopRemove stops and removes a pod as kubelet does: the container
// (with a grace period), then the sandbox.
func (r *rt) stopRemove(ctx context.Context, pod string) (time.Duration, error) {
	r.mu.Lock()
	ctr := r.pods[pod]
	r.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t0 := time.Now()
	if ctr != "" {
		if err := r.rs.StopContainer(cctx, ctr, 10); err != nil {
			return 0, fmt.Errorf("StopContainer: %w", err)
		}
		if err := r.rs.RemoveContainer(cctx, ctr); err != nil {
			return 0, fmt.Errorf("RemoveContainer: %w", err)
		}
	}
	if err := r.rs.StopPodSandbox(cctx, pod); err != nil {
		return 0, fmt.Errorf("StopPodSandbox: %w", err)
	}
	if err := r.rs.RemovePodSandbox(cctx, pod); err != nil {
		return 0, fmt.Errorf("RemovePodSandbox: %w", err)
	}
	d := time.Since(t0)
	r.mu.Lock()
	delete(r.pods, pod)
	r.mu.Unlock()
	return d, nil
}

func (r *rt) parallelRound(ctx context.Context, o options, prefix string) error {
	type result struct {
		pod string
		d   time.Duration
		err error
	}
	res := make(chan result, o.parallel)
	t0 := time.Now()
	for i := 0; i < o.parallel; i++ {
		go func() {
			pod, d, err := r.startPod(ctx, o, fmt.Sprintf("%s-%d", prefix, i))
			res <- result{pod, d, err}
		}()
	}
	var errs []error
	for i := 0; i < o.parallel; i++ {
		x := <-res
		if x.err != nil {
			errs = append(errs, x.err)
			continue
		}
		r.startPar = append(r.startPar, x.d)
	}
	r.wallPar = append(r.wallPar, time.Since(t0))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.removeAll(ctx)
	return nil
}

// removeAll stops and removes every pod this run made on r.
func (r *rt) removeAll(ctx context.Context) {
	r.mu.Lock()
	var pods []string
	for p := range r.pods {
		pods = append(pods, p)
	}
	r.mu.Unlock()
	for _, p := range pods {
		if _, err := r.stopRemove(ctx, p); err != nil {
			fmt.Fprintf(os.Stderr, "bench/cri: %s: clean up pod %s: %v\n", r.name, p, err)
		}
	}
}

// removeStale removes the pods an earlier, interrupted run left behind.
func (r *rt) removeStale(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	pods, err := r.rs.ListPodSandbox(cctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{benchLabel: "1"}})
	if err != nil {
		return
	}
	for _, p := range pods {
		_ = r.rs.StopPodSandbox(cctx, p.Id)
		_ = r.rs.RemovePodSandbox(cctx, p.Id)
	}
}

// memory is RSS and PSS in KiB summed over a set of processes.
type memory struct {
	rss, pss, procs int
}

// memory sums the runtime's own processes: the daemon (from its pid file),
// the processes named r.procs (by comm or argv[0]) whose command line
// names r.marker, and the
// children of both that share the host's mount namespace (not the pods').
func (r *rt) memory() (memory, error) {
	b, err := os.ReadFile(r.pidFile)
	if err != nil {
		return memory{}, fmt.Errorf("%s: the daemon's pid file (-%s-pid-file): %w", r.name, r.name, err)
	}
	daemon, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return memory{}, fmt.Errorf("%s: pid file %s: %w", r.name, r.pidFile, err)
	}
	hostNS, _ := os.Readlink("/proc/self/ns/mnt")
	type proc struct{ ppid int }
	all := map[int]proc{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return memory{}, err
	}
	set := map[int]bool{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); ns != hostNS {
			continue // a container's process, or gone
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// comm may hold spaces and parentheses: the fields follow the last ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		j := strings.IndexByte(s, '(')
		if i < 0 || j < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		all[pid] = proc{ppid}
		comm := s[j+1 : i]
		if pid == daemon {
			set[pid] = true
		} else {
			// The command's name, also from argv[0]: a process that
			// re-executed /proc/self/exe has comm "exe" (berthd's
			// monitors did until 2026-12-05, and went uncounted).
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			arg0, _, _ := strings.Cut(string(cmd), "\x00")
			named := strings.HasPrefix(comm, r.procs) || strings.HasPrefix(filepath.Base(arg0), r.procs)
			if named && strings.Contains(string(cmd), r.marker) {
				set[pid] = true
			}
		}
	}
	if !set[daemon] {
		return memory{}, fmt.Errorf("%s: process %d of %s is not running", r.name, daemon, r.pidFile)
	}
	for grown := true; grown; {
		grown = false
		for pid, p := range all {
			if !set[pid] && set[p.ppid] {
				set[pid], grown = true, true
			}
		}
	}
	var m memory
	for pid := range set {
		rss, pss, ok := smapsRollup(pid)
		if ok {
			m.rss, m.pss, m.procs = m.rss+rss, m.pss+pss, m.procs+1
		}
	}
	return m, nil
}

// smapsRollup reads Rss and Pss (KiB) of a process.
func smapsRollup(pid int) (rss, pss int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss, true
}

func report(o options, rts []*rt) {
	fmt.Printf("\nCRI benchmark, %s, %d CPUs, load %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), loadavg())
	fmt.Printf("%-34s", "")
	for _, r := range rts {
		fmt.Printf("%14s", r.name)
	}
	if len(rts) == 2 {
		fmt.Printf("%10s", "ratio")
	}
	fmt.Println()
	row := func(label string, f func(*rt) float64, format string) {
		fmt.Printf("%-34s", label)
		for _, r := range rts {
			fmt.Printf("%14s", fmt.Sprintf(format, f(r)))
		}
		if len(rts) == 2 && f(rts[0]) != 0 {
			fmt.Printf("%9.2fx", f(rts[1])/f(rts[0]))
		}
		fmt.Println()
	}
	dur := func(label string, get func(*rt) []time.Duration) {
		row(label+" p50 ms", func(r *rt) float64 { return ms(percentile(get(r), 50)) }, "%.1f")
		row(label+" p90 ms", func(r *rt) float64 { return ms(percentile(get(r), 90)) }, "%.1f")
		row(label+" mean ms", func(r *rt) float64 { return ms(mean(get(r))) }, "%.1f")
	}
	dur(fmt.Sprintf("pod start, %d in turn,", o.pods), func(r *rt) []time.Duration { return r.start })
	dur(fmt.Sprintf("pod start, %d at once,", o.parallel), func(r *rt) []time.Duration { return r.startPar })
	row(fmt.Sprintf("%d at once, wall p50 ms", o.parallel), func(r *rt) float64 { return ms(percentile(r.wallPar, 50)) }, "%.1f")
	dur("stop+remove,", func(r *rt) []time.Duration { return r.stopRm })
	mib := func(kb int) float64 { return float64(kb) / 1024 }
	row("RSS idle MiB", func(r *rt) float64 { return mib(r.idle.rss) }, "%.1f")
	row(fmt.Sprintf("RSS with %d pods MiB", o.pods), func(r *rt) float64 { return mib(r.loaded.rss) }, "%.1f")
	row("RSS per pod MiB", func(r *rt) float64 { return mib(r.loaded.rss-r.idle.rss) / float64(o.pods) }, "%.2f")
	row("PSS idle MiB", func(r *rt) float64 { return mib(r.idle.pss) }, "%.1f")
	row(fmt.Sprintf("PSS with %d pods MiB", o.pods), func(r *rt) float64 { return mib(r.loaded.pss) }, "%.1f")
	row("PSS per pod MiB", func(r *rt) float64 { return mib(r.loaded.pss-r.idle.pss) / float64(o.pods) }, "%.2f")
	row(fmt.Sprintf("processes with %d pods", o.pods), func(r *rt) float64 { return float64(r.loaded.procs) }, "%.0f")
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s)) + 0.999999)
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t / time.Duration(len(ds))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
