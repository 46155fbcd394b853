package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
)

// CRI-O drives the runtime under test as its default OCI runtime (through
// conmon), driven by crictl as kubelet would: a pod, a container, its logs,
// exec, stop and removal. CRI-O is not packaged in Debian 12 and its build
// takes long, so .ci/run does not install it: the test runs where a crio
// binary (and CRI-O's pinns) is found, in $BERTH_CRIO_DIR, on $PATH or in
// ~/.cache/berth/crio (test/crio/build.sh builds them). Its state,
// socket, namespaces and logs are the test's; the pod uses the host's
// network (no CNI: the runtime is what is under test).
func TestCRIODrivesRuntime(t *testing.T) {
	testutil.RequiresRoot(t)
	bin := runtimeBin(t)
	crio, pinns := crioBinaries(t)
	crictl := crictlPath(t)
	conmon := testutil.RequiresBinary(t, "conmon", "conmon")
	skopeo := testutil.RequiresBinary(t, "skopeo", "skopeo")
	dir := callersDir(t, "crio")
	parent := "/" + callersName(t, "crio")
	sock := filepath.Join(dir, "crio.sock")
	storage := fmt.Sprintf("overlay@%s+%s", filepath.Join(dir, "storage"), filepath.Join(dir, "storage-run"))
	for _, d := range []string{"cni", "logs", "ns", "exits", "attach", "runtime-root", "pods"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "crio.conf")
	p := func(s string) string { return filepath.Join(dir, s) }
	cfg := fmt.Sprintf(`[crio]
root = %q
runroot = %q
storage_driver = "overlay"
log_dir = %q
version_file = %q
version_file_persist = %q
clean_shutdown_file = %q
[crio.api]
listen = %q
stream_address = "127.0.0.1"
stream_port = "0"
[crio.runtime]
default_runtime = "berth"
cgroup_manager = "cgroupfs"
namespaces_dir = %q
pinns_path = %q
container_exits_dir = %q
container_attach_socket_dir = %q
drop_infra_ctr = true
default_ulimits = ["nofile=20000:20000"]
[crio.runtime.runtimes.berth]
runtime_path = %q
runtime_type = "oci"
runtime_root = %q
monitor_path = %q
monitor_cgroup = "pod"
[crio.image]
signature_policy = %q
signature_policy_dir = %q
# Looked up for every pod even where no infra container runs: the test's
# image stands in for registry.k8s.io/pause (unreachable here).
pause_image = "localhost/bb:1"
pause_command = "/bin/sleep"
[crio.network]
network_dir = %q
plugin_dirs = ["/usr/lib/cni"]
[crio.nri]
enable_nri = false
`, p("storage"), p("storage-run"), p("logs"), p("version"), p("version-persist"), p("clean.shutdown"),
		sock, p("ns"), pinns, p("exits"), p("attach"), bin, p("runtime-root"), conmon, policy, p("policies"), p("cni"))
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The image, into CRI-O's store before it starts.
	archive := callersOCIArchive(t, dir, "localhost/bb:1", callersRootfsTar(t))
	if out, stderr, code := callersCmd(t, nil, skopeo, "copy", "--insecure-policy", "oci-archive:"+archive,
		"containers-storage:["+storage+"]localhost/bb:1"); code != 0 {
		t.Fatalf("skopeo copy into CRI-O's store: %s %s", out, stderr)
	}
	log, err := os.Create(p("crio.log"))
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(crio, "--config", conf, "--config-dir", p("conf.d"), "--log-level", "info")
	daemon.Stdout, daemon.Stderr = log, log
	daemon.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	log.Close()
	exited := make(chan struct{})
	go func() { daemon.Wait(); close(exited) }()
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return callersCmd(t, nil, crictl, append([]string{"--runtime-endpoint", "unix://" + sock, "--image-endpoint", "unix://" + sock, "--timeout", "30s"}, args...)...)
	}
	ok := func(args ...string) string {
		t.Helper()
		out, stderr, code := run(args...)
		if code != 0 {
			t.Fatalf("crictl %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, stderr)
		}
		return strings.TrimSpace(out)
	}
	t.Cleanup(func() {
		if out, _, code := run("pods", "-q"); code == 0 {
			for _, id := range strings.Fields(out) {
				run("rmp", "-f", id)
			}
		}
		daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("crio did not stop within 30s of SIGTERM")
			daemon.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(p("crio.log"))
			t.Logf("crio's log:\n%s", lastLines(string(b), 40))
		}
		callersKillCmdline(t, dir)
		callersReapZombies("conmon", "crio")
		callersRemoveCgroups(t, parent)
		// CRI-O's storage leaves its overlay mounts; callersDir unmounts
		// what is left under dir.
	})
	waitForLong(t, "crio to answer", 60*time.Second, func() bool {
		select {
		case <-exited:
			b, _ := os.ReadFile(p("crio.log"))
			t.Fatalf("crio exited at start:\n%s", lastLines(string(b), 40))
		default:
		}
		_, _, code := run("version")
		return code == 0
	})

	writeJSON := func(name string, v any) string {
		b, _ := json.Marshal(v)
		f := p(name)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	pod := writeJSON("pod.json", map[string]any{
		"metadata":      map[string]any{"name": "crio-e2e", "namespace": "e2e", "uid": callersName(t, "uid")},
		"log_directory": p("pods"),
		"linux": map[string]any{
			"cgroup_parent":    parent,
			"security_context": map[string]any{"namespace_options": map[string]any{"network": 2, "pid": 1}},
		},
	})
	ctr := writeJSON("ctr.json", map[string]any{
		"metadata": map[string]any{"name": "sleeper"},
		"image":    map[string]any{"image": "localhost/bb:1"},
		"command":  []string{"sh", "-c", "echo hello from crio; exec sleep 1000"},
		"log_path": "sleeper.log",
		"linux": map[string]any{
			"resources":        map[string]any{"memory_limit_in_bytes": 64 << 20},
			"security_context": map[string]any{"namespace_options": map[string]any{"network": 2, "pid": 1}},
		},
	})
	podID := ok("runp", pod)
	id := ok("create", podID, ctr, pod)
	ok("start", id)
	waitForLong(t, "the container's first line", 30*time.Second, func() bool {
		out, _, _ := run("logs", id)
		return strings.Contains(out, "hello from crio")
	})
	if st, printed := callersRuntimeStatus(t, bin, p("runtime-root"), id); st != "running" {
		t.Errorf("the runtime's own state of %s: %s; want running (CRI-O ran another runtime?)", id, printed)
	}
	if out := ok("exec", "--sync", id, "sh", "-c", callersExecScript); out != strings.TrimSpace(callersExecOut) {
		t.Errorf("crictl exec --sync: %q, want %q", out, callersExecOut)
	}
	// crictl exits 1 whatever the command's status; it names the status.
	if _, stderr, code := run("exec", "--sync", id, "sh", "-c", "exit 4"); code == 0 || !strings.Contains(stderr, "exited with 4") {
		t.Errorf("crictl exec --sync of exit 4: exit %d, %s; want the status 4 named", code, stderr)
	}
	var insp struct {
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(ok("inspect", id)), &insp); err != nil || insp.Status.State != "CONTAINER_RUNNING" || insp.Info.Pid == 0 {
		t.Errorf("crictl inspect: %v %+v", err, insp)
	}
	ok("stop", "--timeout", "2", id)
	ok("rmp", "-f", podID)
	if out := ok("pods", "-q"); out != "" {
		t.Errorf("pods after rmp -f: %q", out)
	}
	if st, printed := callersRuntimeStatus(t, bin, p("runtime-root"), id); st != "" {
		t.Errorf("the runtime still has state of %s: %s", id, printed)
	}
	if insp.Info.Pid > 0 {
		waitFor(t, "the container's init to exit", func() bool { return callersGone(insp.Info.Pid) })
	}
	testutil.CheckNoLeaks(t, testutil.Leaks{ID: id})
}

// crioBinaries finds crio and pinns (CRI-O's namespace pinner).
func crioBinaries(t *testing.T) (crio, pinns string) {
	t.Helper()
	home, _ := os.UserHomeDir()
	dirs := []string{os.Getenv("BERTH_CRIO_DIR"), filepath.Join(home, ".cache", "berth", "crio")}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		c, p := filepath.Join(d, "crio"), filepath.Join(d, "pinns")
		if isExecutable(c) && isExecutable(p) {
			return c, p
		}
	}
	c, err1 := exec.LookPath("crio")
	p, err2 := exec.LookPath("pinns")
	if err1 != nil || err2 != nil {
		t.Skip("CRI-O not installed (not packaged in Debian 12, not built by .ci/run): test/crio/build.sh builds crio and pinns into ~/.cache/berth/crio (or set $BERTH_CRIO_DIR)")
	}
	return c, p
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
