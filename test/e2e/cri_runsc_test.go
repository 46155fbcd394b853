package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// gVisor's runsc as a RuntimeClass handler of berthd: pods of a handler
// with --sandbox-mode infra get an infra container (the pod's gVisor
// sandbox) and their containers run inside it.

// runscPath finds runsc. .ci/run does not install it: its build from the
// Go module proxy takes longer than CI can spare (README, runtime
// handlers), so the test says how to get it and skips, in CI too.
func runscPath(t *testing.T) string {
	t.Helper()
	p := goInstalled("runsc")
	if p == "" {
		t.Skip("runsc not installed (CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@latest; .ci/run does not install it: the build is too long for CI)")
	}
	return p
}

// goInstalled finds a tool on PATH or where `go install` puts it
// ($HOME/go/bin); "" when it is in neither.
func goInstalled(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	p := filepath.Join(home, "go", "bin", name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// A pod under the runsc handler runs in gVisor: its containers see
// gVisor's kernel (dmesg, uname), exit with their own codes, log through
// crictl logs, answer exec, and serve on the pod IP; stopping and removing
// the pod leaves nothing on the host (the leak check at cleanup counts
// every process and mount naming the test's roots).
func TestCRIRunscPod(t *testing.T) {
	runsc := runscPath(t)
	metricsPort := freePort(t)
	c := newCRIWith(t, func(c *criT, args []string) []string {
		// runsc pins one empty network namespace for all its gofers at
		// ROOT/null-netns (its --gofer-network-namespace=null default),
		// kept as long as its root directory: berthd's run root, not a
		// pod's. Registered here, this runs after berthd's cleanup and
		// before the leak check, which counts everything else.
		t.Cleanup(func() { unmountNullNetNS(c) })
		// No --sandbox-mode: a handler whose binary is runsc is in infra
		// mode by default.
		return append(args, "--runtime", "runsc="+runsc, "--metrics-address", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	})
	pod, _ := c.podConfig("gvisor")
	p := c.crictl("runp", "--runtime", "runsc", pod)
	c.mu.Lock()
	c.ids[p] = true
	c.mu.Unlock()
	st := c.inspectp(p)
	if st.Status.State != "SANDBOX_READY" {
		t.Fatalf("pod status = %+v, want ready", st.Status)
	}
	c.recordIPs(p)
	// The infra container is the pod's gVisor sandbox: a runsc-sandbox
	// process under the test's run root, and not one of kubelet's
	// containers.
	if pids := enginePidsNaming([]string{filepath.Join(c.runroot, "runtime", "runsc")}); len(pids) == 0 {
		t.Errorf("no runsc process names the run root %s after runp", c.runroot)
	}
	if out := c.crictl("ps", "-a", "-q", "--pod", p); out != "" {
		t.Errorf("crictl ps -a lists %q in a pod without containers, want nothing (the infra container is berthd's)", out)
	}

	// A container that prints gVisor's kernel log and exits with a code
	// of its own: the exit comes from `runsc wait`, not a host process.
	kernel := c.ctrConfig("kernel", []string{"sh", "-c", "dmesg; uname -a; echo kernel-done; exit 3"}, nil)
	kid := c.crictl("create", p, kernel, pod)
	c.crictl("start", kid)
	ks := c.waitState(kid, "CONTAINER_EXITED")
	if ks.Status.ExitCode != 3 {
		t.Errorf("exit code = %d, want 3", ks.Status.ExitCode)
	}
	logs := c.crictl("logs", kid)
	if !strings.Contains(logs, "Starting gVisor") || !strings.Contains(logs, "kernel-done") {
		t.Errorf("crictl logs = %q, want gVisor's dmesg and kernel-done", logs)
	}
	// Containers that exit at once: their start and exit race the
	// monitor's first `runsc wait`, refused before start.
	for i := range 3 {
		quick := c.ctrConfig(fmt.Sprintf("quick%d", i), []string{"sh", "-c", "exit 5"}, nil)
		qid := c.crictl("create", p, quick, pod)
		c.crictl("start", qid)
		if st := c.waitState(qid, "CONTAINER_EXITED"); st.Status.ExitCode != 5 {
			t.Errorf("quick container %d: exit code %d, want 5", i, st.Status.ExitCode)
		}
	}

	// A server in the same sandbox: exec, and the pod IP from the host.
	web := c.ctrConfig("web", []string{"sh", "-c", "echo gvisor-page > /index.html; echo serving; exec httpd -f -p 80 -h /"}, nil)
	wid := c.crictl("create", p, web, pod)
	c.crictl("start", wid)
	c.waitState(wid, "CONTAINER_RUNNING")
	// The spec runsc got says where the container runs (containerd's
	// annotations; the bundle is there while it runs).
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	b, err := os.ReadFile(filepath.Join(c.runroot, "containers", wid, "config.json"))
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil {
		t.Errorf("the container's spec: %v", err)
	} else if a := spec.Annotations; a["io.kubernetes.cri.container-type"] != "container" || !engineIsID(a["io.kubernetes.cri.sandbox-id"]) || a["io.kubernetes.cri.sandbox-name"] != "gvisor" {
		t.Errorf("the container's annotations = %v, want container-type container, the infra's sandbox-id and the pod's name", a)
	}

	if out := c.crictl("exec", "-s", wid, "cat", "/proc/version"); !strings.Contains(out, "gVisor") && !strings.Contains(out, "gvisor") {
		t.Errorf("exec cat /proc/version = %q, want gVisor's kernel", out)
	}
	// crictl exits 1 and names the command's code.
	if r := c.crictlRun("exec", "-s", wid, "sh", "-c", "exit 7"); r.code == 0 || !strings.Contains(r.stderr, "exited with 7") {
		t.Errorf("exec exit 7: %s", r)
	}
	if ip := c.inspectp(p).Status.Network.IP; ip == "" {
		t.Errorf("the pod has no IP")
	} else {
		waitForOut(t, "the pod IP to serve from gVisor's netstack", 30*time.Second, func() (bool, string) {
			body, ok := httpGet("http://" + ip + "/index.html")
			return ok && strings.Contains(body, "gvisor-page"), body
		})
	}
	// The infra container is berthd's, not one of kubelet's containers.
	if body, ok := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)); !ok || !strings.Contains(body, `berth_cri_containers{state="running"} 1`) {
		t.Errorf("metrics with one running container: want berth_cri_containers{state=\"running\"} 1, got %v:\n%s", ok, grepLines(body, "berth_cri_containers"))
	}
	// ExecSync's timeout ends the command inside the sandbox too.
	if r := c.crictlRun("exec", "-s", "--timeout", "2", wid, "sleep", "60"); r.code == 0 {
		t.Errorf("exec with a 2s timeout of sleep 60 succeeded: %s", r)
	}
	waitForOut(t, "the timed-out exec's sleep to end in the sandbox", 20*time.Second, func() (bool, string) {
		out := c.crictl("exec", "-s", wid, "ps")
		return !strings.Contains(out, "sleep 60"), out
	})
	// berthd killed and started again finds the pod, its infra sandbox
	// and the server running in it.
	c.kill9()
	c.start()
	if st := c.inspectp(p); st.Status.State != "SANDBOX_READY" {
		t.Errorf("after berthd's restart: pod %+v", st.Status)
	}
	if out := c.crictl("exec", "-s", wid, "echo", "still-here"); out != "still-here" {
		t.Errorf("exec after berthd's restart = %q", out)
	}
	sleeper := c.ctrConfig("sleeper", []string{"sleep", "3600"}, nil)
	sid := c.crictl("create", p, sleeper, pod)
	c.crictl("start", sid)
	c.crictl("stop", "--timeout", "2", sid)
	if st := c.inspect(sid); st.Status.State != "CONTAINER_EXITED" {
		t.Errorf("after stop: %+v", st.Status)
	}
	// The sandbox dies (gVisor's kernel killed): its containers exit and
	// the pod is not ready, so kubelet would make it anew.
	var sandboxes []int
	for _, pid := range enginePidsNaming([]string{filepath.Join(c.runroot, "runtime", "runsc")}) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.HasPrefix(string(b), "runsc-sandbox\x00") {
			sandboxes = append(sandboxes, pid)
		}
	}
	if len(sandboxes) != 1 {
		t.Fatalf("runsc-sandbox processes of the test: %v, want one", sandboxes)
	}
	if err := unix.Kill(sandboxes[0], unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.waitState(wid, "CONTAINER_EXITED")
	waitForOut(t, "the pod to be not ready once its sandbox died", 30*time.Second, func() (bool, string) {
		st := c.inspectp(p).Status.State
		return st == "SANDBOX_NOTREADY", st
	})
	if r := c.crictlRun("create", p, sleeper, pod); r.code == 0 {
		t.Errorf("create in a pod whose sandbox died: %s, want a refusal", r)
	}

	c.crictl("stopp", p)
	c.crictl("stopp", p) // idempotent
	if pids := enginePidsNaming([]string{filepath.Join(c.runroot, "runtime", "runsc")}); len(pids) != 0 {
		waitForOut(t, "runsc's processes to end after stopp", 20*time.Second, func() (bool, string) {
			pids := enginePidsNaming([]string{filepath.Join(c.runroot, "runtime", "runsc")})
			return len(pids) == 0, fmt.Sprint(pids)
		})
	}
	c.crictl("rmp", p)
	if out := c.crictl("pods", "-q"); out != "" {
		t.Errorf("pods after rmp: %q", out)
	}
}

// A handler in infra mode whose runtime fails: RunPodSandbox says so and
// leaves no pod behind (the leak check at cleanup counts namespaces,
// mounts, processes); the pause image berthd made stays, pinned. Pods of
// the default handler in the same berthd have no infra container. And
// berthd refuses a sandbox mode it does not know or for a handler it does
// not have, naming it. Needs no runsc.
func TestCRIInfraSandboxBadInput(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken-runtime")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'broken-runtime: cannot make a sandbox' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := newCRIWith(t, func(c *criT, args []string) []string {
		return append(args, "--runtime", "broken="+broken, "--sandbox-mode", "broken=infra")
	})
	pod, _ := c.podConfig("broken")
	r := c.crictlRun("runp", "--runtime", "broken", pod)
	if r.code == 0 || !strings.Contains(r.stderr, "infra container") {
		t.Errorf("runp under a failing infra handler: %s, want an error naming the infra container", r)
	}
	if out := c.crictl("pods", "-q"); out != "" {
		t.Errorf("pods after a failed runp: %q, want none", out)
	}
	var imgs struct {
		Images []struct {
			RepoTags []string `json:"repoTags"`
			Pinned   bool     `json:"pinned"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(c.crictl("images", "-o", "json")), &imgs); err != nil {
		t.Fatal(err)
	}
	pause := false
	for _, img := range imgs.Images {
		if len(img.RepoTags) > 0 && strings.HasPrefix(img.RepoTags[0], "localhost/berth/pause:") {
			pause = img.Pinned
		}
	}
	if !pause {
		t.Errorf("crictl images = %+v, want berthd's pause image, pinned", imgs.Images)
	}
	// The default handler's pods are as before: no process at all.
	plain, _ := c.podConfig("plain")
	p := c.crictl("runp", plain)
	c.mu.Lock()
	c.ids[p] = true
	c.mu.Unlock()
	if pids := enginePidsNaming([]string{p}); len(pids) != 0 {
		t.Errorf("a pod of the default handler has processes %v, want none", pids)
	}
	c.crictl("rmp", "-f", p)

	for _, tc := range []struct{ args, want string }{
		{"--sandbox-mode broken=vm", `sandbox mode "vm": want pinned or infra`},
		{"--sandbox-mode nosuch=infra", `runtime handler "nosuch" has a sandbox mode but is not configured`},
		{"--sandbox-mode broken", `--sandbox-mode "broken": want NAME=MODE`},
	} {
		args := append(append([]string{}, c.args...), "--runtime", "broken="+broken)
		args = append(args, strings.Fields(tc.args)...)
		args[slices.Index(args, "--socket")+1] = filepath.Join(t.TempDir(), "other.sock")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, filepath.Join(c.binDir, "berthd"), args...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("berthd %s: %v, %s; want an error saying %q", tc.args, err, out, tc.want)
		}
	}
}

// unmountNullNetNS unmounts runsc's shared gofer network namespace in the
// test's run root (stacked mounts included).
func unmountNullNetNS(c *criT) {
	for unix.Unmount(filepath.Join(c.runroot, "runtime", "runsc", "null-netns"), unix.MNT_DETACH) == nil {
	}
}

// grepLines are the lines of s that hold sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
