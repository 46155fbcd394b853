package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	n := flag.Int("n", 50, "runs of `run --rm IMAGE true` per engine and network")
	many := flag.Int("many", 100, "detached containers for the memory and ps measurements (0: skip)")
	bin := flag.String("bin", "bin", "directory with berth, berth-monitor and berth-runtime")
	networks := flag.String("networks", "none,bridge", "networks of the latency runs (comma-separated; bridge = each engine's default)")
	withPodman := flag.Bool("podman", true, "measure Podman (crun and runc)")
	withCtr := flag.Bool("containerd", true, "measure containerd's runc shim in the -many part")
	timeout := flag.Duration("timeout", 2*time.Minute, "timeout of every command")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		fatal(err)
	}
	b := &bench{binDir: binDir, timeout: *timeout, ifsBefore: interfaces()}
	err = b.run(ctx, *n, *many, strings.Split(*networks, ","), *withPodman, *withCtr)
	b.cleanup()
	// The default bridges are shared by every root of their engine (other
	// Berth or Podman users of the host may be on them): said, not removed.
	for name := range interfaces() {
		if !b.ifsBefore[name] && (name == "berth0" || name == "cni-podman0") {
			fmt.Printf("note: the default bridge %s was made during the run and is left for the engine's other users (ip link del %s)\n", name, name)
		}
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/run:", err)
	os.Exit(1)
}

// bench holds what the benchmark made, for cleanup.
type bench struct {
	binDir    string
	timeout   time.Duration
	work      string
	image     string
	ifsBefore map[string]bool
	cleanups  []func() // run last first
}

func (b *bench) defer_(f func()) { b.cleanups = append(b.cleanups, f) }

func (b *bench) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
}

// engine is one way to run containers: a binary with global flags.
type engine struct {
	name   string
	bin    string
	global []string
	env    []string
	// runFlags go after `run` (besides --rm/-d and --network).
	runFlags []string
	pull     []string // the pull command's arguments after the global flags
	// wrap, if set, runs the engine through this command (crun on a
	// hybrid cgroup host, see podmanEngine).
	wrap []string
}

// exec runs the engine's command with the benchmark's timeout; output goes
// to files, so a supervisor that inherits stdout cannot hold the caller.
func (b *bench) exec(ctx context.Context, e engine, args ...string) (string, time.Duration, error) {
	argv := append(append([]string{e.bin}, e.global...), args...)
	if len(e.wrap) > 0 {
		argv = append(append([]string{}, e.wrap...), argv...)
	}
	return b.command(ctx, e.env, argv[0], argv[1:]...)
}

func (b *bench) command(ctx context.Context, env []string, bin string, args ...string) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	f, err := os.CreateTemp(b.work, "out")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	out, _ := os.ReadFile(f.Name())
	if err != nil {
		return string(out), d, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out), d, nil
}

func (b *bench) run(ctx context.Context, n, many int, networks []string, withPodman, withCtr bool) error {
	work, err := os.MkdirTemp("/tmp", "brun")
	if err != nil {
		return err
	}
	b.work = work
	b.defer_(func() {
		unmountUnder(work)
		if err := os.RemoveAll(work); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	})
	b.defer_(func() { killNaming(work) })
	reg, err := b.startRegistry()
	if err != nil {
		return err
	}
	b.image = reg + "/bench/busybox:1"
	if err := pushImage(ctx, b.image); err != nil {
		return err
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("bench/run %s, %d CPUs, load average at start: %s", time.Now().Format(time.RFC3339), runtime.NumCPU(), load)

	engines := []engine{b.berthEngine()}
	if withPodman {
		for _, rt := range []string{"crun", "runc"} {
			if _, err := exec.LookPath(rt); err != nil {
				fmt.Printf("podman-%s: skipped, no %s\n", rt, rt)
				continue
			}
			engines = append(engines, b.podmanEngine(rt))
		}
	}
	for _, e := range engines {
		if _, _, err := b.exec(ctx, e, e.pull...); err != nil {
			return fmt.Errorf("%s: pull: %w", e.name, err)
		}
	}

	// Latency: the engines take turns, with the order rotating.
	type key struct{ engine, network string }
	times := map[key][]time.Duration{}
	failures := map[key]int{}
	for _, netw := range networks {
		for _, e := range engines { // one unmeasured run each: caches, the bridge
			b.exec(ctx, e, b.runArgs(e, netw, "--rm", "true")...)
		}
		for i := range n {
			for j := range engines {
				e := engines[(i+j)%len(engines)]
				_, d, err := b.exec(ctx, e, b.runArgs(e, netw, "--rm", "true")...)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				k := key{e.name, netw}
				if err != nil {
					failures[k]++
					if failures[k] == 1 {
						fmt.Fprintf(os.Stderr, "%s --network %s: %v\n", e.name, netw, err)
					}
					continue
				}
				times[k] = append(times[k], d)
			}
		}
	}
	fmt.Printf("\n`run --rm IMAGE true`, %d runs each, interleaved\n", n)
	fmt.Printf("%-14s %-8s %8s %8s %6s\n", "engine", "network", "p50 ms", "p90 ms", "fails")
	for _, netw := range networks {
		for _, e := range engines {
			k := key{e.name, netw}
			fmt.Printf("%-14s %-8s %8.1f %8.1f %6d\n", e.name, netw, ms(percentile(times[k], 50)), ms(percentile(times[k], 90)), failures[k])
		}
	}
	for _, netw := range networks {
		base := times[key{"berth", netw}]
		for _, e := range engines[1:] {
			other := times[key{e.name, netw}]
			if len(base) == 0 || len(other) == 0 {
				continue
			}
			fmt.Printf("berth/%s --network %s: p50 %.2fx, p90 %.2fx\n", e.name, netw,
				ms(percentile(base, 50))/ms(percentile(other, 50)), ms(percentile(base, 90))/ms(percentile(other, 90)))
		}
	}
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("load average after the latency runs: %s", load)
	if many <= 0 {
		return nil
	}
	return b.many(ctx, many, engines, withCtr)
}

// runArgs is `run <first> --network N [engine flags] IMAGE cmd...`.
func (b *bench) runArgs(e engine, netw, first string, cmd ...string) []string {
	args := []string{"run", first, "--network", netw}
	args = append(args, e.runFlags...)
	return append(append(args, b.image), cmd...)
}

func (b *bench) berthEngine() engine {
	root, run := filepath.Join(b.work, "b"), filepath.Join(b.work, "br")
	os.MkdirAll(root, 0o711)
	e := engine{
		name:   "berth",
		bin:    filepath.Join(b.binDir, "berth"),
		global: []string{"--root", root, "--runroot", run},
		env:    []string{"PATH=" + b.binDir + ":" + os.Getenv("PATH")},
		pull:   []string{"pull", b.image},
	}
	b.defer_(func() {
		ctx := context.Background()
		out, _, _ := b.exec(ctx, e, "ps", "-a", "-q", "--no-trunc")
		for _, id := range strings.Fields(out) {
			if _, _, err := b.exec(ctx, e, "rm", "-f", "-v", id); err != nil {
				fmt.Fprintln(os.Stderr, "cleanup:", err)
			}
		}
		killNaming(root, run)
		removeCgroups("berth", idsUnder(filepath.Join(root, "containers")))
	})
	return e
}

func (b *bench) podmanEngine(runtimeName string) engine {
	// Both Podman engines share one store (the image is pulled once per
	// engine but lands once) and differ in --runtime.
	dir := filepath.Join(b.work, "p")
	os.MkdirAll(dir, 0o755)
	conf := filepath.Join(dir, "containers.conf")
	os.WriteFile(conf, []byte("[engine]\nlock_type = \"file\"\n"), 0o644)
	parent := fmt.Sprintf("/brun-podman-%08x", rand.Uint32())
	e := engine{
		name: "podman-" + runtimeName,
		bin:  "podman",
		env:  []string{"CONTAINERS_CONF=" + conf},
		global: []string{
			"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--tmpdir", filepath.Join(dir, "tmp"), "--network-config-dir", filepath.Join(dir, "cni"),
			"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", runtimeName,
			"--storage-driver", "overlay",
		},
		// Podman's default rlimits exceed this host's hard limits.
		runFlags: []string{"--cgroup-parent", parent, "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"},
		pull:     []string{"pull", "--tls-verify=false", b.image},
	}
	if runtimeName == "crun" && isCgroup2(unifiedCgroup) {
		// crun refuses a hybrid cgroup host ("cgroups in hybrid mode not
		// supported, drop all controllers from cgroupv2"): Podman runs in
		// a private mount namespace without the cgroup2 mount, as
		// bench/lifecycle drives crun. It costs unshare+sh+umount per
		// command, a few ms.
		e.wrap = []string{"unshare", "-m", "sh", "-c", `umount -l ` + unifiedCgroup + ` && exec "$@"`, "sh"}
		fmt.Printf("note: podman-crun runs in a private mount namespace without %s (crun does not support hybrid cgroups); that adds unshare+sh+umount to each of its commands\n", unifiedCgroup)
	}
	b.defer_(func() {
		ctx := context.Background()
		b.exec(ctx, e, "rm", "-a", "-f")
		b.exec(ctx, e, "system", "reset", "-f")
		killNaming(dir)
		removeCgroupPath(parent)
	})
	return e
}

// many starts N detached sleep containers per engine, then measures the
// supervisors' memory and `ps`; each engine's containers are removed
// before the next engine's start.
func (b *bench) many(ctx context.Context, n int, engines []engine, withCtr bool) error {
	type row struct {
		name, super   string
		total         time.Duration
		rssKB, supers int
		ps            time.Duration
		psName        string
		failed        int
	}
	var rows []row
	for _, e := range engines {
		if e.name == "podman-runc" {
			continue // conmon is the same whichever runtime
		}
		r := row{name: e.name, super: "berth-monitor", psName: "berth ps"}
		marker := e.global[3] // berth-monitor's command line names the --runroot
		if e.name != "berth" {
			r.super, r.psName, marker = "conmon", "podman ps", filepath.Join(b.work, "p")
		}
		var err error
		r.total, r.failed, err = startMany(ctx, n, func(int) error {
			_, _, err := b.exec(ctx, e, b.runArgs(e, "none", "-d", "sleep", "3600")...)
			return err
		})
		if err != nil {
			return err
		}
		r.rssKB, r.supers = rssOf(r.super, marker)
		r.ps = b.medianOf(ctx, 5, func() (time.Duration, error) { _, d, err := b.exec(ctx, e, "ps"); return d, err })
		rows = append(rows, r)
		b.exec(ctx, e, "rm", "-f", "-a") // podman; berth below
		if e.name == "berth" {
			out, _, _ := b.exec(ctx, e, "ps", "-a", "-q", "--no-trunc")
			for _, id := range strings.Fields(out) {
				b.exec(ctx, e, "rm", "-f", id)
			}
		}
	}
	if withCtr {
		r := row{name: "containerd", super: "containerd-shim-runc-v2", psName: "ctr task ls"}
		c, err := b.startContainerd(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "containerd: skipped:", err)
		} else {
			if _, _, err := c.ctr(ctx, "image", "pull", "--plain-http", b.image); err != nil {
				return err
			}
			r.total, r.failed, err = startMany(ctx, n, func(i int) error {
				_, _, err := c.ctr(ctx, "run", "-d", "--runc-root", c.runcRoot, "--fifo-dir", c.fifo, b.image, fmt.Sprintf("s%d", i), "sleep", "3600")
				return err
			})
			if err != nil {
				return err
			}
			r.rssKB, r.supers = rssOf("containerd-shim", c.sock)
			r.ps = b.medianOf(ctx, 5, func() (time.Duration, error) { _, d, err := c.ctr(ctx, "task", "ls"); return d, err })
			rows = append(rows, r)
		}
	}
	fmt.Printf("\n%d detached `sleep 3600` containers (--network none), one engine at a time\n", n)
	fmt.Printf("%-12s %9s %9s %-24s %7s %9s %-12s %8s\n", "engine", "total s", "per run", "supervisor", "procs", "RSS/ctr", "ps", "ps ms")
	for _, r := range rows {
		per := 0.0
		if r.supers > 0 {
			per = float64(r.rssKB) / float64(n) / 1024
		}
		fmt.Printf("%-12s %9.1f %8.0fms %-24s %7d %7.2fMiB %-12s %8.1f", r.name, r.total.Seconds(), ms(r.total)/float64(n), r.super, r.supers, per, r.psName, ms(r.ps))
		if r.failed > 0 {
			fmt.Printf("  (%d runs failed)", r.failed)
		}
		fmt.Println()
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("load average at the end: %s", load)
	return nil
}

// startMany calls start n times and returns the total time and the
// number of failures (the first is printed); it stops when ctx ends.
func startMany(ctx context.Context, n int, start func(i int) error) (time.Duration, int, error) {
	t0 := time.Now()
	failed := 0
	for i := range n {
		if err := start(i); err != nil {
			failed++
			if failed == 1 {
				fmt.Fprintln(os.Stderr, err)
			}
		}
		if ctx.Err() != nil {
			return 0, failed, ctx.Err()
		}
	}
	return time.Since(t0), failed, nil
}

func (b *bench) medianOf(ctx context.Context, k int, f func() (time.Duration, error)) time.Duration {
	var ds []time.Duration
	for range k {
		if d, err := f(); err == nil {
			ds = append(ds, d)
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	return percentile(ds, 50)
}

// rssOf sums VmRSS (kB) of the processes whose name starts with comm and
// whose command line names marker.
func rssOf(comm, marker string) (kb, procs int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		c, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		// berth-monitor re-executes itself through /proc/self/exe (comm
		// "exe"): its argv[0] names it.
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		named := strings.HasPrefix(strings.TrimSpace(string(c)), comm[:min(len(comm), 15)]) || strings.HasPrefix(filepath.Base(string(argv0)), comm)
		if !named || !bytes.Contains(cmdline, []byte(marker)) {
			continue
		}
		status, _ := os.ReadFile("/proc/" + e.Name() + "/status")
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					n, _ := strconv.Atoi(f[0])
					kb += n
					procs++
				}
			}
		}
	}
	return kb, procs
}

// containerd is a private containerd with its own root, state and socket.
type ctrd struct {
	b                             *bench
	sock, runcRoot, fifo, ns, dir string
}

func (c *ctrd) ctr(ctx context.Context, args ...string) (string, time.Duration, error) {
	return c.b.command(ctx, nil, "ctr", append([]string{"--address", c.sock, "--namespace", c.ns}, args...)...)
}

func (b *bench) startContainerd(ctx context.Context) (*ctrd, error) {
	if _, err := exec.LookPath("containerd"); err != nil {
		return nil, err
	}
	c := &ctrd{b: b, dir: filepath.Join(b.work, "c"), ns: fmt.Sprintf("brun-%08x", rand.Uint32())}
	c.sock = filepath.Join(c.dir, "containerd.sock")
	c.runcRoot = filepath.Join(c.dir, "state", "runc")
	c.fifo = filepath.Join(c.dir, "fifo")
	os.MkdirAll(c.dir, 0o700)
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = %q
`, filepath.Join(c.dir, "root"), filepath.Join(c.dir, "state"), c.sock)
	os.WriteFile(filepath.Join(c.dir, "config.toml"), []byte(cfg), 0o600)
	logf, err := os.Create(filepath.Join(c.dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("containerd", "--config", filepath.Join(c.dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	b.defer_(func() {
		ctx := context.Background()
		out, _, _ := c.ctr(ctx, "task", "ls", "-q")
		for _, id := range strings.Fields(out) {
			c.ctr(ctx, "task", "kill", "-s", "KILL", id)
			for range 50 {
				if _, _, err := c.ctr(ctx, "task", "rm", "-f", id); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		out, _, _ = c.ctr(ctx, "container", "ls", "-q")
		for _, id := range strings.Fields(out) {
			c.ctr(ctx, "container", "rm", id)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		killNaming(c.sock)
		removeCgroupPath("/" + c.ns)
	})
	for i := 0; ; i++ {
		if conn, err := net.Dial("unix", c.sock); err == nil {
			conn.Close()
			return c, nil
		}
		select {
		case <-exited:
			return nil, errors.New("containerd exited at start; see its log")
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if i > 600 {
			return nil, errors.New("containerd did not listen within 30 s")
		}
	}
}

// startRegistry starts Debian's docker-registry on 127.0.0.1 with blobs in
// memory; it dies with the benchmark.
func (b *bench) startRegistry() (string, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return "", errors.New("needs Debian's docker-registry")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(b.work, "registry.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  inmemory: {}\nhttp:\n  addr: %s\n", addr)), 0o600)
	cmd := exec.Command(bin, "serve", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	b.defer_(func() { cmd.Process.Kill(); cmd.Wait() })
	client := &http.Client{Timeout: 2 * time.Second}
	for i := 0; ; i++ {
		if resp, err := client.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return strings.Replace(addr, "127.0.0.1", "localhost", 1), nil
		}
		if i == 200 {
			return "", errors.New("docker-registry did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pushImage builds busybox with its applets linked and pushes it to ref.
func pushImage(ctx context.Context, ref string) error {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("needs Debian's busybox-static: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	for _, a := range []string{"sh", "true", "sleep", "cat", "echo"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\n"
	tw.WriteHeader(&tar.Header{Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))})
	tw.Write([]byte(passwd))
	tw.Close()
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return remote.Write(r, img, remote.WithContext(ctx))
}

// killNaming kills (SIGKILL) every process whose command line names one
// of markers: what the engines' supervisors left.
func killNaming(markers ...string) {
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		for _, m := range markers {
			if bytes.Contains(cmdline, []byte(m)) {
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
		}
	}
}

// unmountUnder lazily unmounts every mount under dir, deepest first.
func unmountUnder(dir string) {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var ms []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			ms = append(ms, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ms)))
	for _, m := range ms {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// idsUnder lists the container directories under dir.
func idsUnder(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.Name())
	}
	return ids
}

// removeCgroups removes /parent/<id> on every hierarchy.
func removeCgroups(parent string, ids []string) {
	for _, id := range ids {
		removeCgroupPath("/" + parent + "/" + id)
	}
}

// removeCgroupPath removes a cgroup directory (and its children) on every
// hierarchy under /sys/fs/cgroup.
func removeCgroupPath(p string) {
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	hs = append(hs, "/sys/fs/cgroup")
	for _, h := range hs {
		d := filepath.Join(h, p)
		if _, err := os.Stat(d); err != nil {
			continue
		}
		var dirs []string
		filepath.WalkDir(d, func(q string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				dirs = append(dirs, q)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			os.Remove(dirs[i])
		}
	}
}

// unifiedCgroup is where a hybrid cgroup host mounts cgroup2.
const unifiedCgroup = "/sys/fs/cgroup/unified"

// isCgroup2 reports whether path is a cgroup2 mount.
func isCgroup2(path string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(path, &st) == nil && st.Type == 0x63677270
}

// interfaces is the set of the host's interface names.
func interfaces() map[string]bool {
	ifs, _ := net.Interfaces()
	m := map[string]bool{}
	for _, i := range ifs {
		m[i.Name] = true
	}
	return m
}
