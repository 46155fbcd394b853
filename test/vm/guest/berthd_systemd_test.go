//go:build berthvm

package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
)

// TestSystemdBerthd runs berthd with --cgroup-driver systemd in the VM
// booted with systemd and drives it with crictl as kubelet with
// cgroupDriver systemd would: RuntimeConfig says systemd; a pod whose
// cgroup parent is kubelet's kubepods-burstable-pod<uid>.slice gets its
// containers in the scopes cri-berth-<id>.scope of that slice, with their
// memory limit as MemoryMax and in memory.max; exec joins the scope;
// `crictl update --memory` changes both; `crictl stats` and `statsp` read
// the scope's usage; a container over its limit is OOMKilled (the monitor
// reads the scope's memory.events); `crictl rmp -f` leaves no scope. A
// cgroupfs-style parent is refused. BERTH_VM_BERTHD names the directory
// holding berthd, berth, berth-monitor, berth-runtime and crictl.
func TestSystemdBerthd(t *testing.T) {
	requireSystemd(t)
	bin := os.Getenv("BERTH_VM_BERTHD")
	if bin == "" {
		t.Skip("needs berthd and crictl in the VM: TestSystemdVM copies them (set BERTH_VM_BERTHD to their directory)")
	}
	dir := t.TempDir()
	root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
	socket := filepath.Join(state, "berth.sock")
	cni := filepath.Join(dir, "cni")
	if err := os.MkdirAll(cni, 0o700); err != nil {
		t.Fatal(err)
	}
	// Stopped last (cleanups run in reverse): after the pods are gone.
	stopSliceAtEnd(t, "kubepods.slice")

	// The image: busybox as localhost/bb:1 in berthd's store.
	b := testutil.NewBundle(t)
	tarball := filepath.Join(dir, "rootfs.tar")
	mustRun(t, nil, "tar", "-C", b.Rootfs, "-cf", tarball, ".")
	mustRun(t, nil, filepath.Join(bin, "berth"), "--root", root, "--runroot", state, "import", tarball, "localhost/bb:1")

	// crictl's stdout, or an error with its stderr (where it also warns
	// that it has no /etc/crictl.yaml).
	crictl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		full := append([]string{"--runtime-endpoint", "unix://" + socket, "--image-endpoint", "unix://" + socket, "--timeout", "2m"}, args...)
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "crictl"), full...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return strings.TrimSpace(stdout.String()), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(stdout.String()), nil
	}
	mustCrictl := func(args ...string) string {
		t.Helper()
		out, err := crictl(args...)
		if err != nil {
			t.Fatalf("crictl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	logPath := filepath.Join(dir, "berthd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	daemon := exec.Command(filepath.Join(bin, "berthd"), "--root", root, "--state", state, "--socket", socket,
		"--cni-conf-dir", cni, "--cgroup-driver", "systemd", "--log-level", "debug")
	daemon.Stdout, daemon.Stderr = logf, logf
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { daemon.Wait(); close(exited) }()
	t.Cleanup(func() {
		pods, _ := crictl("pods", "-q")
		for _, p := range strings.Fields(pods) {
			if out, err := crictl("rmp", "-f", p); err != nil {
				t.Errorf("cleanup: crictl rmp -f %s: %v\n%s", p, err, out)
			}
		}
		daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			t.Errorf("berthd did not stop within a minute of SIGTERM")
			daemon.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("berthd's log:\n%s", lastLines(string(b), 60))
		}
	})
	for deadline := time.Now().Add(cmdTimeout); ; time.Sleep(300 * time.Millisecond) {
		if _, err := crictl("version"); err == nil {
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("berthd exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("berthd did not answer within %v", cmdTimeout)
		}
	}

	if out := mustCrictl("runtime-config"); !strings.Contains(strings.ToLower(out), "systemd") {
		t.Errorf("crictl runtime-config: %s; want the systemd cgroup driver", out)
	}

	writeJSON := func(name string, v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	podConfig := func(name, parent string) string {
		return writeJSON(name+"-pod.json", map[string]any{
			"metadata":      map[string]any{"name": name, "namespace": "vm", "uid": randomHex(t, 8)},
			"log_directory": filepath.Join(dir, "logs", name),
			"linux": map[string]any{
				"cgroup_parent": parent,
				// The host's network: no CNI in this test.
				"security_context": map[string]any{"namespace_options": map[string]any{"network": 2, "pid": 1}},
			},
		})
	}
	ctrConfig := func(name string, memory int64, cmd ...string) string {
		return writeJSON(name+"-ctr.json", map[string]any{
			"metadata": map[string]any{"name": name},
			"image":    map[string]any{"image": "localhost/bb:1"},
			"command":  cmd,
			"log_path": name + ".log",
			"linux":    map[string]any{"resources": map[string]any{"memory_limit_in_bytes": memory}},
		})
	}

	// A kubelet with the cgroupfs driver sends a path: refused.
	if _, err := crictl("runp", podConfig("wrong", "/kubepods/burstable/pod"+randomHex(t, 8))); err == nil || !strings.Contains(err.Error(), "cgroup parent") {
		t.Errorf("a pod with a cgroupfs parent under the systemd driver: %v; want a refusal naming the cgroup parent", err)
	}
	if out := mustCrictl("pods", "-q"); out != "" {
		t.Errorf("the refused pod left pods behind: %s", out)
	}

	slice := "kubepods-burstable-pod" + randomHex(t, 8) + ".slice"
	sliceDir := cgroupRoot + "/kubepods.slice/kubepods-burstable.slice/" + slice
	podCfg := podConfig("sd", slice)
	pod := mustCrictl("runp", podCfg)
	id := mustCrictl("create", pod, ctrConfig("sleeper", 64<<20, "sleep", "1000"), podCfg)
	mustCrictl("start", id)
	scope := "cri-berth-" + id + ".scope"
	cg := sliceDir + "/" + scope
	checkProps(t, "after start", scope, map[string]string{
		"ActiveState": "active", "Slice": slice, "Delegate": "yes", "MemoryMax": fmt.Sprint(64 << 20),
	})
	checkFiles(t, "after start", cg, map[string]string{"memory.max": fmt.Sprint(64 << 20)})
	if procs := strings.TrimSpace(readFile(t, cg+"/cgroup.procs")); procs == "" {
		t.Errorf("%s/cgroup.procs is empty: the container runs elsewhere", cg)
	}
	// ExecSync runs the runtime's exec with --systemd-cgroup: the process
	// joins the scope (its root, in the container's cgroup namespace).
	if out := mustCrictl("exec", id, "cat", "/proc/self/cgroup"); out != "0::/" && !strings.HasSuffix(out, "/"+scope) {
		t.Errorf("crictl exec: the process is in cgroup %q, want the scope", out)
	}

	mustCrictl("update", "--memory", fmt.Sprint(128<<20), id)
	checkProps(t, "after crictl update", scope, map[string]string{"MemoryMax": fmt.Sprint(128 << 20)})
	checkFiles(t, "after crictl update", cg, map[string]string{"memory.max": fmt.Sprint(128 << 20)})

	var stats struct {
		Stats []struct {
			CPU struct {
				UsageCoreNanoSeconds struct{ Value any } `json:"usageCoreNanoSeconds"`
			} `json:"cpu"`
			Memory struct {
				WorkingSetBytes struct{ Value any } `json:"workingSetBytes"`
			} `json:"memory"`
		} `json:"stats"`
	}
	out := mustCrictl("stats", "-o", "json", "--id", id)
	if err := json.Unmarshal([]byte(out), &stats); err != nil || len(stats.Stats) != 1 {
		t.Fatalf("crictl stats: %v\n%s", err, out)
	}
	if mem := jsonUint(stats.Stats[0].Memory.WorkingSetBytes.Value); mem == 0 {
		t.Errorf("crictl stats: working set 0; want the scope's usage\n%s", out)
	}
	if cpu := jsonUint(stats.Stats[0].CPU.UsageCoreNanoSeconds.Value); cpu == 0 {
		t.Errorf("crictl stats: CPU usage 0; want the scope's\n%s", out)
	}
	out = mustCrictl("statsp", "-o", "json", "--id", pod)
	var pstats struct {
		Stats []struct {
			Linux struct {
				Memory struct {
					WorkingSetBytes struct{ Value any } `json:"workingSetBytes"`
				} `json:"memory"`
			} `json:"linux"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(out), &pstats); err != nil || len(pstats.Stats) != 1 || jsonUint(pstats.Stats[0].Linux.Memory.WorkingSetBytes.Value) == 0 {
		t.Errorf("crictl statsp: %v; want the pod's working set\n%s", err, out)
	}

	// Over its limit: OOMKilled, read from the scope's memory.events.
	hog := mustCrictl("create", pod, ctrConfig("hog", 16<<20, "tail", "/dev/zero"), podCfg)
	mustCrictl("start", hog)
	var st struct {
		Status struct {
			State    string `json:"state"`
			Reason   string `json:"reason"`
			ExitCode int    `json:"exitCode"`
		} `json:"status"`
	}
	for deadline := time.Now().Add(cmdTimeout); ; time.Sleep(500 * time.Millisecond) {
		out := mustCrictl("inspect", "-o", "json", hog)
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("crictl inspect: %v\n%s", err, out)
		}
		if st.Status.State == "CONTAINER_EXITED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the memory hog still runs after %v:\n%s", cmdTimeout, out)
		}
	}
	if st.Status.Reason != "OOMKilled" || st.Status.ExitCode != 137 {
		mon, _ := os.ReadFile(filepath.Join(state, "containers", hog, "monitor.json"))
		events, _ := os.ReadFile(sliceDir + "/memory.events")
		journal, _ := run(t, nil, "journalctl", "--no-pager", "-n", "30", "-u", "cri-berth-"+hog+".scope")
		t.Errorf("the memory hog ended with reason %q, exit code %d; want OOMKilled, 137\nits monitor.json: %s\nthe pod slice's memory.events:\n%s\njournal:\n%s",
			st.Status.Reason, st.Status.ExitCode, mon, events, journal)
	}

	mustCrictl("rmp", "-f", pod)
	checkScopeGone(t, "after crictl rmp -f", scope, cg)
	checkScopeGone(t, "after crictl rmp -f", "cri-berth-"+hog+".scope", sliceDir+"/cri-berth-"+hog+".scope")

	// runc and crun as RuntimeClass handlers under the same driver:
	// berthd passes them --systemd-cgroup and kubelet's slice, and their
	// own systemd code makes the scope.
	info := mustCrictl("info")
	for _, h := range []string{"runc", "crun"} {
		if !strings.Contains(info, `"name": "`+h+`"`) {
			t.Errorf("crictl info lists no %s handler (the guest image has Debian's %s)", h, h)
			continue
		}
		slice := "kubepods-burstable-pod" + randomHex(t, 8) + ".slice"
		sliceDir := cgroupRoot + "/kubepods.slice/kubepods-burstable.slice/" + slice
		podCfg := podConfig("sd-"+h, slice)
		pod := mustCrictl("runp", "--runtime", h, podCfg)
		id := mustCrictl("create", pod, ctrConfig("sleeper-"+h, 48<<20, "sleep", "1000"), podCfg)
		mustCrictl("start", id)
		scope := "cri-berth-" + id + ".scope"
		cg := sliceDir + "/" + scope
		checkProps(t, h+" after start", scope, map[string]string{"ActiveState": "active", "Slice": slice})
		// runc puts the limits on the scope (unit properties and
		// files); crun on cgroup v2 puts the container in a child
		// cgroup "container" of the scope (its run.oci.systemd.subgroup
		// default) and writes the limits there.
		limits := cg
		if h == "crun" {
			limits = cg + "/container"
		} else {
			checkProps(t, h+" after start", scope, map[string]string{"MemoryMax": fmt.Sprint(48 << 20)})
		}
		checkFiles(t, h+" after start", limits, map[string]string{"memory.max": fmt.Sprint(48 << 20)})
		if procs := strings.TrimSpace(readFile(t, limits+"/cgroup.procs")); procs == "" {
			t.Errorf("%s: %s/cgroup.procs is empty: the container runs elsewhere", h, limits)
		}
		if out := mustCrictl("exec", id, "echo", "under-"+h); out != "under-"+h {
			t.Errorf("crictl exec under %s: %q", h, out)
		}
		mustCrictl("update", "--memory", fmt.Sprint(96<<20), id)
		checkFiles(t, h+" after crictl update", limits, map[string]string{"memory.max": fmt.Sprint(96 << 20)})
		out := mustCrictl("stats", "-o", "json", "--id", id)
		if err := json.Unmarshal([]byte(out), &stats); err != nil || len(stats.Stats) != 1 || jsonUint(stats.Stats[0].Memory.WorkingSetBytes.Value) == 0 {
			t.Errorf("crictl stats under %s: %v; want the container's working set\n%s", h, err, out)
		}
		mustCrictl("rmp", "-f", pod)
		checkScopeGone(t, h+" after crictl rmp -f", scope, cg)
	}
}

// jsonUint reads a protobuf JSON uint64 (a string, or a number).
func jsonUint(v any) uint64 {
	switch x := v.(type) {
	case string:
		n, _ := strconv.ParseUint(x, 10, 64)
		return n
	case float64:
		return uint64(x)
	}
	return 0
}

// TestSystemdBerthCLI: `berth --cgroup-manager systemd` (Podman's flag)
// runs a container in the scope berth-ID.scope of system.slice with its
// memory limit; later commands without the flag find it (the record keeps
// its driver): `berth exec` joins the scope, `berth rm -f` stops it.
func TestSystemdBerthCLI(t *testing.T) {
	requireSystemd(t)
	bin := os.Getenv("BERTH_VM_BERTHD")
	if bin == "" {
		t.Skip("needs berth in the VM: TestSystemdVM copies it (set BERTH_VM_BERTHD to its directory)")
	}
	dir := t.TempDir()
	berth := func(args ...string) string {
		t.Helper()
		full := append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run")}, args...)
		return strings.TrimSpace(mustRun(t, nil, filepath.Join(bin, "berth"), full...))
	}
	b := testutil.NewBundle(t)
	tarball := filepath.Join(dir, "rootfs.tar")
	mustRun(t, nil, "tar", "-C", b.Rootfs, "-cf", tarball, ".")
	berth("import", tarball, "localhost/bb:1")
	out := berth("--cgroup-manager", "systemd", "run", "-d", "--network", "none", "-m", "48m", "localhost/bb:1", "sleep", "1000")
	id := out[strings.LastIndexAny(out, "\n")+1:]
	t.Cleanup(func() {
		run(t, nil, filepath.Join(bin, "berth"), "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "rm", "-f", id)
	})
	scope := "berth-" + id + ".scope"
	cg := cgroupRoot + "/system.slice/" + scope
	checkProps(t, "berth run", scope, map[string]string{"ActiveState": "active", "Slice": "system.slice", "MemoryMax": fmt.Sprint(48 << 20)})
	checkFiles(t, "berth run", cg, map[string]string{"memory.max": fmt.Sprint(48 << 20)})
	if got := berth("info", "--format", "{{.CgroupDriver}}"); got != "cgroupfs" {
		t.Errorf("berth info without --cgroup-manager: driver %q, want cgroupfs (for new containers)", got)
	}
	// exec finds the scope without the flag: the record says systemd.
	if got := berth("exec", id, "cat", "/proc/self/cgroup"); got != "0::/" && !strings.HasSuffix(got, "/"+scope) {
		t.Errorf("berth exec: the process is in cgroup %q, want the scope", got)
	}
	berth("rm", "-f", id)
	checkScopeGone(t, "berth rm -f", scope, cg)
}
