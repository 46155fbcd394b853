//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/secmon"
)

var (
	flagN    = flag.Int("n", 10000, "execs and connects per run")
	flagReps = flag.Int("reps", 3, "runs per mode (the median is shown)")
	flagLat  = flag.Int("latency-execs", 1000, "execs matching an alert rule, for the latency (0: none)")
	flagBin  = flag.String("bin", "bin", "directory of berth, berth-secmon, berth-monitor, berth-runtime")
	flagMode = flag.String("modes", "none,bystander,alert,deny,exit", "modes to run, comma-separated (none is the reference)")
	flagWork = flag.String("work", "exec,connect", "workloads to run, comma-separated")
)

const (
	alertRules = `rules:
- name: drift
  event: exec
  condition: exec.drift && exec.path.startsWith("/tmp/")
  action: alert
- name: odd-port
  event: connect
  condition: connect.port == 1
  action: alert
`
	denyRules = `rules:
- name: drift
  event: exec
  condition: exec.drift
  action: kill
- name: egress
  event: connect
  condition: '!inCIDR(connect.address, "127.0.0.0/8")'
  action: deny
`
	// exitRules: the exit program runs at every process exit of the
	// container; the condition is a kernel rule, so only the exits it
	// matches (none here) go up to the agent.
	exitRules = `rules:
- name: crashed
  event: exit
  condition: exit.signal == 11
  action: alert
`
	latencyRules = `rules:
- name: true-exec
  event: exec
  condition: exec.path == "/bin/true"
  action: alert
`
)

type bench struct {
	berth  string
	root   string
	run    string
	worker string
	image  string
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/secmon:", err)
		os.Exit(1)
	}
}

func run() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root")
	}
	bin, err := filepath.Abs(*flagBin)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "secmon-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{berth: filepath.Join(bin, "berth"), root: filepath.Join(tmp, "root"), run: filepath.Join(tmp, "run"), image: "secmon-bench:latest"}
	defer b.cmd(2*time.Minute, "rm", "-f", "-a") // best effort; below
	defer func() {
		out, _ := b.cmd(time.Minute, "ps", "-a", "-q")
		for _, id := range strings.Fields(out) {
			b.cmd(time.Minute, "rm", "-f", id)
		}
	}()

	b.worker = filepath.Join(tmp, "worker")
	build := exec.Command("go", "build", "-trimpath", "-o", b.worker, "./bench/secmon/worker")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the worker: %v: %s", err, out)
	}
	if err := b.importImage(tmp); err != nil {
		return err
	}
	rules := map[string]string{}
	// The bystander's neighbour has exec, connect and exit rules: the
	// host-wide exec and exit programs are attached.
	for name, body := range map[string]string{"alert": alertRules, "deny": denyRules, "exit": exitRules, "latency": latencyRules,
		"neighbour": alertRules + strings.TrimPrefix(exitRules, "rules:\n")} {
		p := filepath.Join(tmp, name+".yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			return err
		}
		rules[name] = p
	}

	// The agent's RSS, sampled while it runs (it exits a moment after
	// its last container).
	rssDone := make(chan struct{})
	rssMax := make(chan int, 1)
	go func() {
		max := 0
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-rssDone:
				rssMax <- max
				return
			case <-t.C:
				if r := agentRSSKiB(); r > max {
					max = r
				}
			}
		}
	}()

	// bystander: a container without rules while another one has rules
	// (the agent and its host-wide programs loaded), the issue's "containers
	// without rules pay nothing"; none: no agent at all.
	modes := strings.Split(*flagMode, ",")
	if !slices.Contains(modes, "none") {
		modes = append([]string{"none"}, modes...)
	}
	for _, m := range modes {
		if _, ok := rules[m]; !ok && m != "none" && m != "bystander" && m != "bystander0" {
			return fmt.Errorf("-modes: %q is not none, bystander, bystander0, alert, deny or exit", m)
		}
	}
	works := strings.Split(*flagWork, ",")
	for _, w := range works {
		if w != "exec" && w != "connect" {
			return fmt.Errorf("-work: %q is not exec or connect", w)
		}
	}
	res := map[string]map[string][]float64{}
	for rep := 0; rep < *flagReps; rep++ {
		for _, m := range modes {
			var sidecar string
			if m == "bystander" || m == "bystander0" {
				// bystander0: the neighbour has no exit rule (the
				// exit program is not attached), to tell its cost.
				nr := rules["neighbour"]
				if m == "bystander0" {
					nr = rules["alert"]
				}
				out, err := b.cmd(time.Minute, "run", "-d", "--network", "none", "--security-opt", "monitor="+nr, b.image, "sleep", "3600")
				if err != nil {
					return fmt.Errorf("bystander's neighbour: %v: %s", err, out)
				}
				sidecar = strings.TrimSpace(lastLine(out))
			}
			for _, w := range works {
				args := []string{"run", "--rm", "--network", "none", "-v", b.worker + ":/worker:ro"}
				if m != "none" && !strings.HasPrefix(m, "bystander") {
					args = append(args, "--security-opt", "monitor="+rules[m])
				}
				args = append(args, b.image, "/worker", w, strconv.Itoa(*flagN))
				if w == "exec" {
					args = append(args, "/bin/true")
				}
				out, err := b.cmd(10*time.Minute, args...)
				if err != nil {
					b.removeContainer(sidecar)
					return fmt.Errorf("%s %s: %v: %s", m, w, err, out)
				}
				ns, err := strconv.ParseFloat(strings.TrimSpace(lastLine(out)), 64)
				if err != nil {
					b.removeContainer(sidecar)
					return fmt.Errorf("%s %s: worker said %q", m, w, out)
				}
				if res[m] == nil {
					res[m] = map[string][]float64{}
				}
				res[m][w] = append(res[m][w], ns/float64(*flagN)/1e3)
			}
			if err := b.removeContainer(sidecar); err != nil {
				return err
			}
		}
	}

	fmt.Printf("%d execs / %d connect+close per run, median of %d runs, µs per operation\n", *flagN, *flagN, *flagReps)
	fmt.Printf("%-10s %12s %8s %12s %8s\n", "rules", "exec µs", "ratio", "connect µs", "ratio")
	for _, m := range modes {
		fmt.Printf("%-10s", m)
		for _, w := range []string{"exec", "connect"} {
			if !slices.Contains(works, w) {
				fmt.Printf(" %12s %8s", "-", "-")
				continue
			}
			v := median(res[m][w])
			fmt.Printf(" %12.1f %7.3fx", v, v/median(res["none"][w]))
		}
		fmt.Println()
	}

	if *flagLat <= 0 {
		return nil
	}
	// Latency: every exec of /bin/true matches an alert rule.
	os.Remove(secmon.AlertsPath(b.root))
	out, err := b.cmd(10*time.Minute, "run", "--rm", "--network", "none", "-v", b.worker+":/worker:ro", "--security-opt", "monitor="+rules["latency"],
		b.image, "/worker", "exec", strconv.Itoa(*flagLat), "/bin/true")
	if err != nil {
		return fmt.Errorf("latency run: %v: %s", err, out)
	}
	var delays []float64
	deadline := time.Now().Add(time.Minute)
	for len(delays) < *flagLat && time.Now().Before(deadline) {
		delays = delays[:0]
		data, _ := os.ReadFile(secmon.AlertsPath(b.root))
		for _, l := range bytes.Split(data, []byte("\n")) {
			var a secmon.Alert
			if json.Unmarshal(l, &a) == nil && a.Rule == "true-exec" {
				delays = append(delays, float64(a.DelayMicros))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	sort.Float64s(delays)
	if len(delays) > 0 {
		fmt.Printf("exec → alert line: %d alerts, median %.0f µs, p99 %.0f µs\n", len(delays), delays[len(delays)/2], delays[len(delays)*99/100])
	}
	close(rssDone)
	if max := <-rssMax; max > 0 {
		fmt.Printf("agent RSS: %.1f MiB at most, sampled every 100 ms\n", float64(max)/1024)
	}
	return nil
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// agentRSSKiB reads the agent's VmRSS, 0 when none runs.
func agentRSSKiB() int {
	b, err := os.ReadFile(filepath.Join(secmon.DefaultAgentDir, "agent.pid"))
	if err != nil {
		return 0
	}
	st, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// removeContainer removes a container the benchmark started ("": none).
func (b *bench) removeContainer(id string) error {
	if id == "" {
		return nil
	}
	if out, err := b.cmd(time.Minute, "rm", "-f", id); err != nil {
		return fmt.Errorf("remove container %s: %v: %s", id, err, out)
	}
	return nil
}

func (b *bench) cmd(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, b.berth, append([]string{"--root", b.root, "--runroot", b.run}, args...)...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	return out.String(), err
}

// importImage makes a busybox image (every applet a link) and imports it.
func (b *bench) importImage(tmp string) error {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("needs Debian's busybox-static: %w", err)
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	for _, a := range strings.Fields(string(list)) {
		if a != "busybox" {
			tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox"})
		}
	}
	tw.Close()
	p := filepath.Join(tmp, "rootfs.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		return err
	}
	if out, err := b.cmd(2*time.Minute, "import", p, b.image); err != nil {
		return fmt.Errorf("import: %v: %s", err, out)
	}
	return nil
}
