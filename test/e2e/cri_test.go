package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
)

// These tests drive berthd as kubelet's operators do, with crictl (the
// CRI's own command line, v1.37.0): pods and containers through the CRI,
// checked from the host (pod IPs, published ports, log files), and the
// host checked clean afterwards by the engine tests' leak check.

// criT is one test's berthd: a private root (shared with an engineT for
// the image and the leak check), socket and pod subnet.
type criT struct {
	*engineT
	socket string
	subnet string
	cmd    *exec.Cmd
	logDir string
	args   []string
}

func newCRI(t *testing.T) *criT {
	return newCRIWith(t, nil)
}

// newCRIWith lets the test change berthd's arguments first.
func newCRIWith(t *testing.T, edit func(c *criT, args []string) []string) *criT {
	t.Helper()
	e := newEngine(t)
	crictlPath(t)
	c := &criT{engineT: e, socket: filepath.Join(e.runroot, "berth.sock"), subnet: e.subnet(), logDir: t.TempDir()}
	cni := t.TempDir()
	c.args = []string{"--root", e.root, "--state", e.runroot, "--socket", c.socket, "--cni-conf-dir", cni, "--pod-subnet", c.subnet, "--log-level", "debug"}
	if edit != nil {
		c.args = edit(c, c.args)
	}
	c.start()
	t.Cleanup(c.cleanup)
	return c
}

// withCNIConfList points berthd's args at a CNI configuration directory
// conf holding only list, with the plugins of bin besides Debian's.
func withCNIConfList(t *testing.T, args []string, conf, list, bin string) []string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(conf, "10-test.conflist"), []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, a := range args {
		if a == "--cni-conf-dir" {
			args[i+1] = conf
		}
	}
	return append(args, "--cni-bin-dir", "/usr/lib/cni,"+bin)
}

// crictlPath finds crictl, which .ci/run installs from the Go module proxy.
func crictlPath(t *testing.T) string {
	t.Helper()
	p := goInstalled("crictl")
	if p == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("crictl not found: .ci/run installs it (go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0)")
		}
		t.Skip("needs crictl: go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0")
	}
	return p
}

// start runs berthd and waits for its socket to answer.
func (c *criT) start() {
	t := c.t
	t.Helper()
	log, err := os.OpenFile(filepath.Join(c.logDir, "berthd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(filepath.Join(c.binDir, "berthd"), c.args...)
	c.cmd.Stdout, c.cmd.Stderr = log, log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log.Close()
	// On a timeout the failure shows what crictl said and how berthd's
	// log ends: berthd may have exited (a metrics port taken since
	// freePort let it go) or be stuck.
	waitForOut(t, "berthd to answer", 30*time.Second, func() (bool, string) {
		r := c.crictlRun("version")
		if r.code == 0 {
			return true, ""
		}
		data, _ := os.ReadFile(filepath.Join(c.logDir, "berthd.log"))
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		return false, fmt.Sprintf("crictl version: exit %d: %s\nberthd's log ends:\n%s", r.code, strings.TrimSpace(r.stderr), strings.Join(lines, "\n"))
	})
}

// kill9 kills berthd as a crash would.
func (c *criT) kill9() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

func (c *criT) stop() {
	if c.cmd == nil || c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		c.t.Errorf("berthd did not stop on SIGTERM within 20s")
		c.kill9()
	}
}

// cleanup removes every pod through the CRI, stops berthd, and has the
// engine tests' leak check count the pods' sandboxes too.
func (c *criT) cleanup() {
	if c.cmd.ProcessState != nil {
		c.start()
	}
	ids := strings.Fields(c.crictlRun("pods", "-q").stdout)
	for _, id := range ids {
		if r := c.crictlRun("rmp", "-f", id); r.code != 0 {
			c.t.Errorf("cleanup: %s", r)
		}
	}
	c.stop()
	c.mu.Lock()
	for _, id := range ids {
		if engineIsID(id) {
			c.ids[id] = true
		}
	}
	c.nets = append(c.nets, "berth-pods")
	c.mu.Unlock()
	if c.t.Failed() {
		b, _ := os.ReadFile(filepath.Join(c.logDir, "berthd.log"))
		c.t.Logf("berthd's log:\n%s", b)
	}
}

func (c *criT) crictlRun(args ...string) result {
	return c.crictlIn(nil, args...)
}

func (c *criT) crictlIn(stdin []byte, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), engineCmdTimeout)
	defer cancel()
	full := append([]string{"--runtime-endpoint", "unix://" + c.socket, "--image-endpoint", "unix://" + c.socket, "--timeout", "60s"}, args...)
	cmd := exec.CommandContext(ctx, crictlPath(c.t), full...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return result{args: append([]string{"crictl"}, args...), stdout: strings.TrimSpace(out.String()), stderr: strings.TrimSpace(errb.String()), code: code}
}

func (c *criT) crictl(args ...string) string {
	c.t.Helper()
	r := c.crictlRun(args...)
	if r.code != 0 {
		c.t.Fatalf("%s", r)
	}
	return r.stdout
}

// writeJSON writes v as a config file crictl reads.
func (c *criT) writeJSON(name string, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	p := filepath.Join(c.t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// podConfig is a pod sandbox config for crictl; ports are container:host.
func (c *criT) podConfig(name string, ports ...[2]int) (string, map[string]any) {
	return c.podConfigWith(name, nil, ports...)
}

// podConfigWith is podConfig with annotations.
func (c *criT) podConfigWith(name string, annotations map[string]string, ports ...[2]int) (string, map[string]any) {
	var pm []map[string]any
	for _, p := range ports {
		pm = append(pm, map[string]any{"container_port": p[0], "host_port": p[1]})
	}
	cfg := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "e2e", "uid": uniq("uid"), "attempt": 0},
		"hostname":      name,
		"log_directory": filepath.Join(c.logDir, name),
		"port_mappings": pm,
		"annotations":   annotations,
		"linux": map[string]any{"security_context": map[string]any{
			"namespace_options": map[string]any{"pid": 1}, // CONTAINER, as kubelet's default
		}},
	}
	return c.writeJSON(name+"-pod.json", cfg), cfg
}

// ctrConfig is a container config for crictl.
func (c *criT) ctrConfig(name string, cmd []string, extra map[string]any) string {
	cfg := map[string]any{
		"metadata": map[string]any{"name": name},
		"image":    map[string]any{"image": c.image},
		"command":  cmd,
		"log_path": name + ".log",
		"linux":    map[string]any{},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return c.writeJSON(name+"-ctr.json", cfg)
}

// runPod makes a pod and starts one container in it; it returns their IDs.
func (c *criT) runPod(pod, podName string, ctrs ...string) (string, []string) {
	c.t.Helper()
	p := c.crictl("runp", pod)
	var ids []string
	for _, ctr := range ctrs {
		id := c.crictl("create", p, ctr, pod)
		c.crictl("start", id)
		ids = append(ids, id)
	}
	return p, ids
}

type podStatus struct {
	Status struct {
		ID      string `json:"id"`
		State   string `json:"state"`
		Network struct {
			IP string `json:"ip"`
		} `json:"network"`
	} `json:"status"`
}

func (c *criT) inspectp(id string) podStatus {
	c.t.Helper()
	var st podStatus
	if err := json.Unmarshal([]byte(c.crictl("inspectp", "-o", "json", id)), &st); err != nil {
		c.t.Fatal(err)
	}
	return st
}

type ctrStatus struct {
	Status struct {
		State    string `json:"state"`
		ExitCode int    `json:"exitCode"`
		Reason   string `json:"reason"`
		LogPath  string `json:"logPath"`
	} `json:"status"`
}

func (c *criT) inspect(id string) ctrStatus {
	c.t.Helper()
	var st ctrStatus
	if err := json.Unmarshal([]byte(c.crictl("inspect", "-o", "json", id)), &st); err != nil {
		c.t.Fatal(err)
	}
	return st
}

func (c *criT) waitState(id, want string) ctrStatus {
	c.t.Helper()
	var st ctrStatus
	waitForOut(c.t, "container "+id[:12]+" "+want, 60*time.Second, func() (bool, string) {
		st = c.inspect(id)
		return st.Status.State == want, st.Status.State
	})
	return st
}

// A web server pod answers on its pod IP and on its published host port,
// its log is where kubelet reads it, and stopping and removing the pod
// leaves the host as it was (the leak check runs at cleanup).
func TestCRIWebPod(t *testing.T) {
	c := newCRI(t)
	hostPort := freePort(t)
	pod, _ := c.podConfig("web", [2]int{80, hostPort})
	ctr := c.ctrConfig("httpd", []string{"sh", "-c", "echo serving; echo pod-page > /index.html; exec httpd -f -vv -p 80 -h /"}, nil)
	p, ids := c.runPod(pod, "web", ctr)
	st := c.inspectp(p)
	if st.Status.State != "SANDBOX_READY" || net.ParseIP(st.Status.Network.IP) == nil {
		t.Fatalf("pod status = %+v, want ready with an IP", st.Status)
	}
	c.recordIPs(p)
	waitForOut(t, "the pod IP to serve", 30*time.Second, func() (bool, string) {
		body, ok := httpGet("http://" + st.Status.Network.IP + "/index.html")
		return ok && strings.Contains(body, "pod-page"), body
	})
	waitForOut(t, "the host port to serve", 30*time.Second, func() (bool, string) {
		body, ok := httpGet(fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort))
		return ok && strings.Contains(body, "pod-page"), body
	})
	if !strings.HasPrefix(st.Status.Network.IP, strings.TrimSuffix(strings.TrimSuffix(c.subnet, "0/24"), ".")) {
		t.Errorf("pod IP %s is not in --pod-subnet %s", st.Status.Network.IP, c.subnet)
	}
	cs := c.inspect(ids[0])
	if cs.Status.State != "CONTAINER_RUNNING" || cs.Status.LogPath != filepath.Join(c.logDir, "web", "httpd.log") {
		t.Errorf("container status = %+v", cs.Status)
	}
	if out := c.crictl("logs", ids[0]); !strings.Contains(out, "serving") {
		t.Errorf("crictl logs = %q, want the server's first line", out)
	}
	raw, _ := os.ReadFile(cs.Status.LogPath)
	if !strings.Contains(string(raw), " stdout F serving") {
		t.Errorf("log file %s = %q, want CRI format lines", cs.Status.LogPath, raw)
	}
	if out := c.crictl("pods", "--name", "web", "-q"); out != p {
		t.Errorf("crictl pods --name web = %q, want %s", out, p)
	}
	if out := c.crictl("ps", "--pod", p, "-q"); out != ids[0] {
		t.Errorf("crictl ps --pod = %q, want %s", out, ids[0])
	}
	c.crictl("stop", "--timeout", "2", ids[0])
	if st := c.inspect(ids[0]); st.Status.State != "CONTAINER_EXITED" {
		t.Errorf("after stop: %+v", st.Status)
	}
	c.crictl("stopp", p)
	c.crictl("stopp", p) // idempotent
	if st := c.inspectp(p); st.Status.State != "SANDBOX_NOTREADY" {
		t.Errorf("after stopp: %+v", st.Status)
	}
	if _, ok := httpGet(fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort)); ok {
		t.Errorf("the host port still answers after stopp")
	}
	c.crictl("rmp", p)
	if out := c.crictl("pods", "-q"); out != "" {
		t.Errorf("pods after rmp: %q", out)
	}
}

// Two containers of a pod share a volume (a host directory, as kubelet's
// emptyDir), the network (localhost) and the hostname.
func TestCRIPodSharesVolumeAndNetwork(t *testing.T) {
	c := newCRI(t)
	vol := t.TempDir()
	pod, _ := c.podConfig("pair")
	mounts := map[string]any{"mounts": []map[string]any{{"container_path": "/shared", "host_path": vol}}}
	writer := c.ctrConfig("writer", []string{"sh", "-c", "echo from-writer > /shared/note; hostname > /shared/host; echo hello-over-localhost > /shared/page; exec httpd -f -p 7070 -h /shared"}, mounts)
	// kubelet binds its own /etc/hosts: a mount there replaces the pod's.
	hosts := filepath.Join(t.TempDir(), "etc-hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n10.1.2.3 kubelet-managed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	readerMounts := map[string]any{"mounts": []map[string]any{{"container_path": "/shared", "host_path": vol}, {"container_path": "/etc/hosts", "host_path": hosts}}}
	// Debian's static busybox wget crashes when it cannot connect: retry.
	reader := c.ctrConfig("reader", []string{"sh", "-c", "grep kubelet-managed /etc/hosts; while [ ! -s /shared/note ]; do sleep 0.1; done; cat /shared/note; until wget -qO- http://127.0.0.1:7070/page 2>/dev/null; do sleep 0.2; done; sleep 3600"}, readerMounts)
	_, ids := c.runPod(pod, "pair", writer, reader)
	waitForOut(t, "the reader to see the writer's file and port", 30*time.Second, func() (bool, string) {
		out := c.crictl("logs", ids[1])
		return strings.Contains(out, "from-writer") && strings.Contains(out, "hello-over-localhost") && strings.Contains(out, "10.1.2.3 kubelet-managed"), out
	})
	if b, _ := os.ReadFile(filepath.Join(vol, "host")); strings.TrimSpace(string(b)) != "pair" {
		t.Errorf("hostname in the pod = %q, want pair", b)
	}
}

// A container over its memory limit is OOM-killed, and the CRI says so.
func TestCRIOOMKilled(t *testing.T) {
	c := newCRI(t)
	pod, _ := c.podConfig("oom")
	ctr := c.ctrConfig("hog", []string{"tail", "/dev/zero"}, map[string]any{
		"linux": map[string]any{"resources": map[string]any{"memory_limit_in_bytes": 16 << 20}},
	})
	_, ids := c.runPod(pod, "oom", ctr)
	st := c.waitState(ids[0], "CONTAINER_EXITED")
	if st.Status.Reason != "OOMKilled" || st.Status.ExitCode != 137 {
		t.Errorf("status = %+v, want reason OOMKilled, exit code 137", st.Status)
	}
}

// berthd killed with SIGKILL and started again finds its pods and
// containers; one that exited meanwhile reports its true exit code.
func TestCRIBerthdRestart(t *testing.T) {
	c := newCRI(t)
	hostPort := freePort(t)
	pod, _ := c.podConfig("keep", [2]int{80, hostPort})
	web := c.ctrConfig("web", []string{"sh", "-c", "echo up > /index.html; exec httpd -f -p 80 -h /"}, nil)
	p, ids := c.runPod(pod, "keep", web)
	pod2, _ := c.podConfig("quit")
	quitter := c.ctrConfig("quitter", []string{"sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.2; done"}, nil)
	_, qids := c.runPod(pod2, "quit", quitter)
	st := c.inspectp(p)
	c.recordIPs(p)

	c.kill9()
	// The quitter ends while berthd is down (signalled through the
	// engine's own CLI, as any outside event would end it).
	e := c.engineT
	e.ok("--namespace", "k8s.io", "kill", "-s", "TERM", qids[0])
	waitForOut(t, "the quitter to exit while berthd is down", 30*time.Second, func() (bool, string) {
		out := e.ok("--namespace", "k8s.io", "inspect", "-f", "{{.State.Status}}", qids[0])
		return out == "exited", out
	})
	if body, ok := httpGet("http://" + st.Status.Network.IP + "/index.html"); !ok || !strings.Contains(body, "up") {
		t.Errorf("the pod stopped serving while berthd was down: %q", body)
	}
	c.start()
	if got := c.inspectp(p).Status.State; got != "SANDBOX_READY" {
		t.Errorf("after the restart the pod is %s", got)
	}
	if got := c.inspect(ids[0]).Status.State; got != "CONTAINER_RUNNING" {
		t.Errorf("after the restart the web container is %s", got)
	}
	qs := c.inspect(qids[0])
	if qs.Status.State != "CONTAINER_EXITED" || qs.Status.ExitCode != 7 {
		t.Errorf("the container that ended while berthd was down: %+v, want exited with 7", qs.Status)
	}
	if body, ok := httpGet(fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort)); !ok || !strings.Contains(body, "up") {
		t.Errorf("the published port stopped answering across the restart: %q", body)
	}
}

// Bad requests get the right gRPC code, name what is wrong, and leave
// nothing behind (the leak check runs at cleanup).
func TestCRIBadInput(t *testing.T) {
	c := newCRI(t)
	wantErr := func(r result, code string, mentions ...string) {
		t.Helper()
		msg := r.stderr + r.stdout
		if r.code == 0 || !strings.Contains(msg, "code = "+code) {
			t.Errorf("%s: want gRPC code %s", r, code)
		}
		for _, m := range mentions {
			if !strings.Contains(msg, m) {
				t.Errorf("%s: the error does not mention %q", r, m)
			}
		}
	}
	wantErr(c.crictlRun("inspectp", strings.Repeat("ab", 32)), "NotFound")

	pod, _ := c.podConfig("bad")
	p := c.crictl("runp", pod)
	missing := c.writeJSON("missing.json", map[string]any{"metadata": map[string]any{"name": "m"}, "image": map[string]any{"image": "nosuch.example/none:1"}})
	wantErr(c.crictlRun("create", "--no-pull", p, missing, pod), "NotFound", "nosuch.example/none:1")
	escape := c.ctrConfig("escape", []string{"true"}, map[string]any{"mounts": []map[string]any{{"container_path": "/x", "host_path": "/tmp/../etc"}}})
	wantErr(c.crictlRun("create", "--no-pull", p, escape, pod), "InvalidArgument", "host_path")
	relative := c.ctrConfig("relative", []string{"true"}, map[string]any{"mounts": []map[string]any{{"container_path": "x", "host_path": "/tmp"}}})
	wantErr(c.crictlRun("create", "--no-pull", p, relative, pod), "InvalidArgument", "container_path")

	// A port another process holds: refused, and nothing is left.
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy, _ := c.podConfig("busy", [2]int{80, l.Addr().(*net.TCPAddr).Port})
	r := c.crictlRun("runp", busy)
	wantErr(r, "FailedPrecondition", fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	if out := c.crictl("pods", "--name", "busy", "-q"); out != "" {
		t.Errorf("a refused pod is listed: %q", out)
	}

	c.crictl("stopp", p)
	ok := c.ctrConfig("late", []string{"true"}, nil)
	wantErr(c.crictlRun("create", "--no-pull", p, ok, pod), "FailedPrecondition", "not ready")
}

// berthd reads its settings from a TOML file (flag names as keys, flags on
// the command line winning) and serves Prometheus metrics.
func TestCRIConfigFileAndMetrics(t *testing.T) {
	port := freePort(t)
	c := newCRIWith(t, func(c *criT, args []string) []string {
		// Everything but the root and socket comes from the file.
		conf := fmt.Sprintf("state = %q\ncni-conf-dir = %q\npod-subnet = %q\nmetrics-address = \"127.0.0.1:%d\"\nlog-level = \"debug\"\n[runtimes]\nalt-runc = %q\n",
			c.runroot, t.TempDir(), c.subnet, port, "/usr/sbin/runc")
		p := filepath.Join(t.TempDir(), "berthd.toml")
		if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"--config", p, "--root", c.root, "--socket", c.socket}
	})
	pod, _ := c.podConfig("metered")
	ctr := c.ctrConfig("sleeper", []string{"sleep", "3600"}, nil)
	p, _ := c.runPod(pod, "metered", ctr)
	if ip := c.inspectp(p).Status.Network.IP; !strings.HasPrefix(ip, strings.TrimSuffix(c.subnet, "0/24")) {
		t.Errorf("pod IP %s: the file's pod-subnet %s was not used", ip, c.subnet)
	}
	body, ok := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if !ok {
		t.Fatalf("metrics: %s", body)
	}
	for _, want := range []string{
		`berth_cri_request_duration_seconds_count{method="RunPodSandbox"} 1`,
		`berth_cri_pods{state="ready"} 1`,
		`berth_cri_containers{state="running"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	info := c.crictl("info")
	if !strings.Contains(info, `"alt-runc"`) {
		t.Errorf("crictl info does not list the file's runtime handler alt-runc:\n%s", info)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("no-such-setting = 1\n"), 0o600)
	out, err := exec.Command(filepath.Join(c.binDir, "berthd"), "--config", bad, "--socket", filepath.Join(t.TempDir(), "x.sock")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no-such-setting") {
		t.Errorf("berthd with an unknown setting: %v, %s; want a refusal naming it", err, out)
	}
}

// RuntimeClass handlers: a pod asks for runc by name and its containers
// run under runc; crun too where this host's cgroups let crun run.
func TestCRIRuntimeHandlers(t *testing.T) {
	c := newCRI(t)
	info := c.crictl("info")
	for _, h := range []string{"berth-runtime", "runc"} {
		if !strings.Contains(info, `"name": "`+h+`"`) {
			t.Errorf("crictl info does not list the handler %s:\n%s", h, info)
		}
	}
	handlers := []string{"runc"}
	if _, err := exec.LookPath("crun"); err == nil && cgroupV2Unified() {
		handlers = append(handlers, "crun")
	} else {
		t.Logf("crun not tried: this host's cgroups are hybrid (v1 controllers beside a v2 hierarchy), which crun 1.8 refuses; crun is tried on a cgroup v2 host")
	}
	for _, h := range handlers {
		pod, _ := c.podConfig("rc-" + h)
		p := c.crictl("runp", "--runtime", h, pod)
		ctr := c.ctrConfig("probe", []string{"sh", "-c", "echo under-" + h + "; sleep 3600"}, nil)
		id := c.crictl("create", p, ctr, pod)
		c.crictl("start", id)
		waitForOut(t, "the container's first line", 30*time.Second, func() (bool, string) {
			out := c.crictl("logs", id)
			return strings.Contains(out, "under-"+h), out
		})
		rt := c.ok("--namespace", "k8s.io", "inspect", "-f", "{{.Runtime}}", id)
		if filepath.Base(rt) != h {
			t.Errorf("handler %s: the container runs under %s", h, rt)
		}
		c.crictl("rmp", "-f", p)
	}
	pod, _ := c.podConfig("rc-none")
	r := c.crictlRun("runp", "--runtime", "no-such-handler", pod)
	if r.code == 0 || !strings.Contains(r.stderr, "no-such-handler") || !strings.Contains(r.stderr, "InvalidArgument") {
		t.Errorf("an unknown handler: %s", r)
	}
}

// cgroupV2Unified says whether the host runs cgroup v2 alone.
func cgroupV2Unified() bool {
	var st syscall.Statfs_t
	return syscall.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == 0x63677270
}

// A CNI plugin that fails, or hangs, fails the pod with the plugin's
// message and leaves nothing behind: no veth, lease, rule or namespace.
// (A fake plugin: a fault no real plugin can be made to cause on demand.)
func TestCRIFailingCNIPlugin(t *testing.T) {
	for _, mode := range []string{"fail", "hang"} {
		t.Run(mode, func(t *testing.T) {
			bin := t.TempDir()
			plugin := `#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
ADD) cat >/dev/null
     if [ "` + mode + `" = hang ]; then exec sleep 600; fi
     echo '{"cniVersion":"1.0.0","code":100,"msg":"the test plugin says no"}'; exit 1 ;;
*) cat >/dev/null; exit 0 ;;
esac
`
			if err := os.WriteFile(filepath.Join(bin, "berth-test-"+mode), []byte(plugin), 0o755); err != nil {
				t.Fatal(err)
			}
			leases := t.TempDir()
			c := newCRIWith(t, func(c *criT, args []string) []string {
				conf := t.TempDir()
				list := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"faulty-%s","plugins":[
{"type":"bridge","bridge":"bt%s","isGateway":true,"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
{"type":"berth-test-%s"}]}`, mode, c.subnet[7:10], c.subnet, leases, mode)
				return withCNIConfList(t, args, conf, list, bin)
			})
			pod, _ := c.podConfig("faulty")
			r := c.crictlRun("--timeout", "15s", "runp", pod)
			want := "the test plugin says no"
			if mode == "hang" {
				want = "deadline"
			}
			if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), want) {
				t.Errorf("runp with a plugin that does %s: %s; want a failure saying %q", mode, r, want)
			}
			// A hung plugin is killed when the request's deadline passes;
			// the clean-up that follows may outlast crictl's wait.
			waitForOut(t, "the failed pod to be gone", 90*time.Second, func() (bool, string) {
				out := c.crictl("pods", "-q")
				return out == "", out
			})
			waitForOut(t, "no lease left", 30*time.Second, func() (bool, string) {
				var left []string
				filepath.WalkDir(leases, func(p string, d os.DirEntry, err error) error {
					if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), "last_reserved_ip") && d.Name() != "lock" {
						left = append(left, p)
					}
					return nil
				})
				return len(left) == 0, strings.Join(left, " ")
			})
			if pids := enginePidsNaming([]string{"berth-test-" + mode}); len(pids) > 0 {
				t.Errorf("the plugin still runs: %v", pids)
			}
			// The bridge itself belongs to the operator's network, as
			// with any CNI runtime; the leak check sees its veths.
			t.Cleanup(func() { exec.Command("ip", "link", "del", "bt"+c.subnet[7:10]).Run() })
		})
	}
}

// The image is checked again at CreateContainer and StartContainer: an
// image pulled and run under a permissive policy is refused once the
// policy tightens, with nothing created, and allowed again when it
// relaxes; no restart of berthd is needed.
func TestCRITrustRecheck(t *testing.T) {
	c := newCRI(t)
	pod, _ := c.podConfig("trusted")
	p := c.crictl("runp", pod)
	first := c.ctrConfig("first", []string{"sleep", "3600"}, nil)
	id := c.crictl("create", "--no-pull", p, first, pod)
	c.crictl("start", id)

	repo := c.image[:strings.LastIndex(c.image, ":")]
	policy := fmt.Sprintf(`{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{%q:[{"type":"reject"}]}}}`, repo)
	polPath := filepath.Join(c.root, "policy.json")
	if err := os.WriteFile(polPath, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	second := c.ctrConfig("second", []string{"sleep", "3600"}, nil)
	r := c.crictlRun("create", "--no-pull", p, second, pod)
	if r.code == 0 || !strings.Contains(r.stderr, "FailedPrecondition") || !strings.Contains(r.stderr, "refused") {
		t.Errorf("create after the policy tightened: %s; want a FailedPrecondition refusal", r)
	}
	if out := c.crictl("ps", "-a", "-q", "--pod", p); out != id {
		t.Errorf("containers of the pod after the refusal: %q, want only %s", out, id)
	}
	audit, _ := os.ReadFile(filepath.Join(c.root, "trust-audit.jsonl"))
	if !strings.Contains(string(audit), `"allowed":false`) {
		t.Errorf("the audit log has no refusal:\n%s", audit)
	}
	os.Remove(polPath)
	c.crictl("create", "--no-pull", p, second, pod)
}

// A pod's berth.dev/secmon-rules annotation puts runtime monitoring rules
// on each of its containers: a drifted binary is killed before it prints,
// and the alert names the pod's container.
func TestCRIPodSecmonRules(t *testing.T) {
	port := freePort(t)
	c := newCRIWith(t, func(c *criT, args []string) []string {
		return append(args, "--metrics-address", fmt.Sprintf("127.0.0.1:%d", port))
	})
	rules := "rules:\n- name: no-drift\n  event: exec\n  condition: exec.drift\n  action: kill\n"
	pod, _ := c.podConfigWith("watched", map[string]string{"berth.dev/secmon-rules": rules})
	ctr := c.ctrConfig("drifter", []string{"sh", "-c", "cp /bin/busybox /tmp/busybox; /tmp/busybox echo DRIFTED; echo rc=$?; sleep 3600"}, nil)
	_, ids := c.runPod(pod, "watched", ctr)
	waitForOut(t, "the drifted binary's end", 60*time.Second, func() (bool, string) {
		out := c.crictl("logs", ids[0])
		return strings.Contains(out, "rc="), out
	})
	if out := c.crictl("logs", ids[0]); strings.Contains(out, "DRIFTED") || !strings.Contains(out, "rc=137") {
		t.Errorf("the drifted binary was not killed before it printed: %q", out)
	}
	alerts, _ := os.ReadFile(filepath.Join(c.root, "secmon", "alerts.jsonl"))
	if !strings.Contains(string(alerts), ids[0]) || !strings.Contains(string(alerts), "no-drift") {
		t.Errorf("no alert for the pod's container:\n%s", alerts)
	}
	// The agent's counters are in berthd's metrics.
	body, ok := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if !ok || !strings.Contains(body, `berth_secmon_alerts_total{action="kill",rule="no-drift"}`) || !strings.Contains(body, "berth_secmon_containers ") ||
		!strings.Contains(body, "berth_secmon_program_runs_skipped_total ") {
		t.Errorf("metrics lack the monitoring counters:\n%s", body)
	}
}

// A handler's configured global flags (TOML `args`, --runtime-arg) come
// before the command in every call berthd and the monitor make to that
// runtime for a container (Status's `features` probe goes without), and a container keeps those of its create. A flag for an
// unknown handler, or a word that is no flag, stops berthd at start.
func TestCRIRuntimeArgs(t *testing.T) {
	runc := testutil.RequiresBinary(t, "runc", "runc")
	dir := t.TempDir()
	wrapper, calls := loggingRuntime(t, runc)
	conf := filepath.Join(dir, "berthd.toml")
	toml := fmt.Sprintf("[runtimes]\nlogged = { path = %q, args = [\"--debug\"] }\n", wrapper)
	if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCRIWith(t, func(c *criT, args []string) []string { return append(args, "--config", conf) })
	pod, _ := c.podConfig("rargs")
	p := c.crictl("runp", "--runtime", "logged", pod)
	id := c.crictl("create", p, c.ctrConfig("probe", []string{"sh", "-c", "echo up; sleep 3600"}, nil), pod)
	c.crictl("start", id)
	waitForOut(t, "the container's first line", 30*time.Second, func() (bool, string) {
		out := c.crictl("logs", id)
		return strings.Contains(out, "up"), out
	})
	if out := c.crictl("exec", id, "echo", "in"); out != "in" {
		t.Errorf("crictl exec: %q", out)
	}
	c.crictl("rmp", "-f", p)
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		cmd := ""
		for i := 0; i < len(f); i++ {
			if !strings.HasPrefix(f[i], "-") {
				cmd = f[i]
				break
			}
			if f[i] == "--root" || f[i] == "--log" || f[i] == "--log-format" {
				i++ // the flag's value
			}
		}
		seen[cmd] = true
		if cmd == "features" {
			continue // Status's probe of what the binary supports: no container
		}
		if before, _, _ := strings.Cut(line, " "+cmd+" "); !strings.Contains(" "+before+" ", " --debug ") {
			t.Errorf("runtime call without the handler's flag before %q: %q", cmd, line)
		}
	}
	for _, want := range []string{"create", "start", "exec", "delete"} {
		if !seen[want] {
			t.Errorf("no %s call of the handler's runtime: %q", want, b)
		}
	}

	for _, bad := range []struct{ arg, want string }{
		{"nosuch=--debug", `no runtime handler "nosuch"`},
		{"runc=create", "the flag starting with -"},
	} {
		out, err := exec.Command(filepath.Join(c.binDir, "berthd"), "--runtime-arg", bad.arg, "--root", t.TempDir(),
			"--state", t.TempDir(), "--socket", filepath.Join(t.TempDir(), "x.sock")).CombinedOutput()
		if err == nil || !strings.Contains(string(out), bad.want) {
			t.Errorf("berthd --runtime-arg %s: %v, %s; want a refusal saying %q", bad.arg, err, out, bad.want)
		}
	}
}
