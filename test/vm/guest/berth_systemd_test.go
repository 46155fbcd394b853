//go:build berthvm

package guest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// These tests run in the VM booted with systemd as PID 1 (run.sh --systemd,
// TestSystemdVM in test/vm) and drive berth-runtime's systemd cgroup
// driver (--systemd-cgroup): directly as containerd's shim would, then
// through containerd's runc shim (SystemdCgroup) and Podman
// (--cgroup-manager systemd). Each checks the scope unit systemd reports
// and the cgroup files the kernel enforces, then that delete leaves neither.

// cmdTimeout bounds every command the tests run; generous, for TCG.
const cmdTimeout = 3 * time.Minute

// requireSystemd skips the test outside the systemd VM.
func requireSystemd(t *testing.T) {
	t.Helper()
	if os.Getenv("BERTH_VM_SYSTEMD") != "1" {
		t.Skip("needs the VM booted with systemd as PID 1 (TestSystemdVM in test/vm)")
	}
}

// systemdBerth returns a driver for berth-runtime --systemd-cgroup: a
// wrapper script adds the global flag to every call, cleanup's included.
func systemdBerth(t *testing.T) *testutil.Runtime {
	t.Helper()
	requireSystemd(t)
	bin := berthRuntime(t)
	wrapper := filepath.Join(t.TempDir(), "berth-runtime-systemd")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --systemd-cgroup \"$@\"\n", bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := testutil.SetChildSubreaper(); err != nil {
		t.Fatal(err)
	}
	return testutil.NewRuntime(t, wrapper)
}

// run runs a command with cmdTimeout and returns its combined output.
func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", cmdTimeout, err)
	}
	return string(out), err
}

// mustRun is run that fails the test on an error.
func mustRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// unitProps returns the properties systemctl show reports for unit.
func unitProps(t *testing.T, unit string, names ...string) map[string]string {
	t.Helper()
	args := []string{"show", unit}
	for _, n := range names {
		args = append(args, "-p", n)
	}
	props := map[string]string{}
	for _, line := range strings.Split(mustRun(t, nil, "systemctl", args...), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	return props
}

// checkProps fails the test for each property of unit not as wanted.
func checkProps(t *testing.T, when, unit string, want map[string]string) {
	t.Helper()
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	got := unitProps(t, unit, names...)
	for n, v := range want {
		if got[n] != v {
			t.Errorf("%s: %s of %s is %q, want %q", when, n, unit, got[n], v)
		}
	}
}

// checkFiles fails the test for each cgroup file in dir not as wanted.
func checkFiles(t *testing.T, when, dir string, want map[string]string) {
	t.Helper()
	for f, v := range want {
		if got := strings.TrimSpace(readFile(t, filepath.Join(dir, f))); got != v {
			t.Errorf("%s: %s/%s is %q, want %q", when, dir, f, got, v)
		}
	}
}

// checkScopeGone fails the test unless systemd no longer knows the scope
// and its cgroup directory is gone.
func checkScopeGone(t *testing.T, when, unit, dir string) {
	t.Helper()
	if s := unitProps(t, unit, "LoadState", "ActiveState"); s["LoadState"] != "not-found" {
		t.Errorf("%s: %s is still known to systemd (LoadState=%s ActiveState=%s), want it gone", when, unit, s["LoadState"], s["ActiveState"])
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s: %s: want it gone, stat says %v", when, dir, err)
	}
}

// stopSliceAtEnd stops the slice unit when the test ends (its child slices
// and scopes with it), and checks it is gone.
func stopSliceAtEnd(t *testing.T, slice string) {
	t.Cleanup(func() {
		if out, err := run(t, nil, "systemctl", "stop", slice); err != nil {
			t.Errorf("systemctl stop %s: %v\n%s", slice, err, out)
		}
	})
}

// randomHex returns n random bytes in hex, for unique names.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// initCgroup returns the cgroup of pid as /proc/PID/cgroup names it on v2.
func initCgroup(t *testing.T, pid int) string {
	t.Helper()
	return strings.TrimPrefix(strings.TrimSpace(readFile(t, fmt.Sprintf("/proc/%d/cgroup", pid))), "0::")
}

// TestSystemdScopeLimitsUpdateDelete: a container with kubelet's systemd
// cgroupsPath for a Burstable pod runs in the scope cri-berth-ID.scope in
// the nested pod slice, with Delegate=yes, its limits both as unit
// properties and in the cgroup files, and the properties its
// org.systemd.property.* annotations set; exec joins the scope; update
// changes both; delete stops the scope.
func TestSystemdScopeLimitsUpdateDelete(t *testing.T) {
	rt := systemdBerth(t)
	id := rt.NewID("sd")
	pod := "kubepods-burstable-pod" + randomHex(t, 8) + ".slice"
	stopSliceAtEnd(t, "kubepods.slice")
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"),
		withResources(func(r *specs.LinuxResources) {
			mem, pids, quota, period := int64(32<<20), int64(16), int64(50000), uint64(100000)
			r.Memory = &specs.LinuxMemory{Limit: &mem}
			r.Pids = &specs.LinuxPids{Limit: &pids}
			r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
		}),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.CgroupsPath = pod + ":cri-berth:" + id
			s.Annotations = map[string]string{
				"org.systemd.property.TimeoutStopUSec": "uint64 123456789",
				"org.systemd.property.CollectMode":     "'inactive-or-failed'",
			}
		}))
	rt.Create(id, b.Dir).OK(t)

	scope := "cri-berth-" + id + ".scope"
	rel := "/kubepods.slice/kubepods-burstable.slice/" + pod + "/" + scope
	dir := cgroupRoot + rel
	checkProps(t, "after create", scope, map[string]string{
		"ActiveState": "active", "Delegate": "yes", "Slice": pod,
		"MemoryMax": fmt.Sprint(32 << 20), "TasksMax": "16", "CPUQuotaPerSecUSec": "500ms",
		// From the org.systemd.property.* annotations, as with runc.
		"TimeoutStopUSec": "2min 3.456789s", "CollectMode": "inactive-or-failed",
	})
	checkFiles(t, "after create", dir, map[string]string{
		"memory.max": fmt.Sprint(32 << 20), "pids.max": "16", "cpu.max": "50000 100000",
	})
	if got := initCgroup(t, rt.State(id).Pid); got != rel {
		t.Errorf("the container's init is in cgroup %s, want %s", got, rel)
	}

	rt.Start(id).OK(t)
	// exec joins the scope through systemd (AttachProcessesToUnit); in a
	// cgroup namespace the scope is the process's root.
	out := rt.Exec(id, nil, "cat", "/proc/self/cgroup").OK(t).Stdout
	if got := strings.TrimSpace(out); got != "0::/" && got != "0::"+rel {
		t.Errorf("exec'd process is in cgroup %q, want the scope (0::/ in a cgroup namespace, else 0::%s)", got, rel)
	}
	rt.Do("update", "--memory", "64M", "--pids-limit", "20", "--cpu-quota", "20000", "--cpu-period", "100000", id).OK(t)
	checkProps(t, "after update", scope, map[string]string{
		"MemoryMax": fmt.Sprint(64 << 20), "TasksMax": "20", "CPUQuotaPerSecUSec": "200ms",
	})
	checkFiles(t, "after update", dir, map[string]string{
		"memory.max": fmt.Sprint(64 << 20), "pids.max": "20", "cpu.max": "20000 100000",
	})

	rt.Delete(id, "--force").OK(t)
	checkScopeGone(t, "after delete", scope, dir)
}

// TestSystemdCgroupsPathForms: no cgroupsPath gives berth-ID.scope in
// system.slice; Docker's form system.slice:docker:ID gives docker-ID.scope.
func TestSystemdCgroupsPathForms(t *testing.T) {
	rt := systemdBerth(t)
	for _, tc := range []struct{ prefix, slicePart string }{{"berth", ""}, {"docker", "system.slice:docker:"}} {
		id := rt.NewID(tc.prefix)
		b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"),
			testutil.WithSpec(func(s *specs.Spec) {
				if tc.slicePart != "" {
					s.Linux.CgroupsPath = tc.slicePart + id
				}
			}))
		rt.Create(id, b.Dir).OK(t)
		scope := tc.prefix + "-" + id + ".scope"
		dir := cgroupRoot + "/system.slice/" + scope
		checkProps(t, "cgroupsPath "+tc.slicePart+"ID", scope, map[string]string{"ActiveState": "active", "Delegate": "yes", "Slice": "system.slice"})
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("cgroupsPath %q: the scope's cgroup: %v", tc.slicePart+id, err)
		}
		rt.Delete(id, "--force").OK(t)
		checkScopeGone(t, "after delete", scope, dir)
	}
}

// TestSystemdRefuses: a cgroupsPath that would climb out of its slice, and
// a limit the kernel refuses, fail the create with an error naming the
// field; no scope is left, running or failed.
func TestSystemdRefuses(t *testing.T) {
	rt := systemdBerth(t)
	id := rt.NewID("bad")
	b := testutil.NewBundle(t, testutil.WithArgs("true"),
		testutil.WithSpec(func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:x:../../init" }))
	res := rt.Create(id, b.Dir).Fails(t)
	if !strings.Contains(res.Stderr, "linux.cgroupsPath") {
		t.Errorf("cgroupsPath with ..: want an error naming linux.cgroupsPath: %s", res)
	}

	id = rt.NewID("cpus")
	b = testutil.NewBundle(t, testutil.WithArgs("true"),
		withResources(func(r *specs.LinuxResources) { r.CPU = &specs.LinuxCPU{Cpus: "999"} }))
	res = rt.Create(id, b.Dir).Fails(t)
	if !strings.Contains(res.Stderr, "linux.resources.cpu.cpus") {
		t.Errorf("cpus 999: want an error naming linux.resources.cpu.cpus: %s", res)
	}
	checkScopeGone(t, "after the failed create", "berth-"+id+".scope", cgroupRoot+"/system.slice/berth-"+id+".scope")
}

// TestSystemdContainerd: containerd's runc shim with SystemdCgroup (ctr's
// --runc-systemd-cgroup) and BinaryName berth-runtime (--runc-binary) runs
// a container in the systemd scope its cgroupsPath names, with its memory
// limit; removing the task stops the scope.
func TestSystemdContainerd(t *testing.T) {
	requireSystemd(t)
	bin := berthRuntime(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	daemon := exec.Command("containerd", "--config", cfg)
	daemon.Stdout, daemon.Stderr = logf, logf
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { daemon.Wait(); close(exited) }()
	logTail := func() string { b, _ := os.ReadFile(logf.Name()); return lastLines(string(b), 30) }
	defer func() {
		daemon.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			daemon.Process.Kill()
			<-exited
		}
	}()
	for deadline := time.Now().Add(cmdTimeout); ; time.Sleep(200 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("containerd exited at start:\n%s", logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not listen on %s within %v:\n%s", sock, cmdTimeout, logTail())
		}
	}
	ctr := func(args ...string) (string, error) {
		return run(t, nil, "ctr", append([]string{"--address", sock, "--namespace", "berth"}, args...)...)
	}

	id := "berth-vm-ctr-" + randomHex(t, 4)
	pod := "kubepods-besteffort-pod" + randomHex(t, 8) + ".slice"
	stopSliceAtEnd(t, "kubepods.slice")
	b := testutil.NewBundle(t)
	if out, err := ctr("run", "-d", "--rootfs", "--runc-binary", bin, "--runc-systemd-cgroup",
		"--runc-root", filepath.Join(dir, "runc"), "--cgroup", pod+":cri-containerd:"+id,
		"--memory-limit", fmt.Sprint(48<<20), b.Rootfs, id, "sleep", "1000"); err != nil {
		t.Fatalf("ctr run: %v\n%s\ncontainerd log:\n%s", err, out, logTail())
	}
	defer func() {
		ctr("task", "kill", "-s", "KILL", id)
		ctr("task", "rm", "-f", id)
		ctr("container", "rm", id)
	}()
	scope := "cri-containerd-" + id + ".scope"
	cg := cgroupRoot + "/kubepods.slice/kubepods-besteffort.slice/" + pod + "/" + scope
	checkProps(t, "containerd's container", scope, map[string]string{"ActiveState": "active", "Delegate": "yes", "MemoryMax": fmt.Sprint(48 << 20)})
	checkFiles(t, "containerd's container", cg, map[string]string{"memory.max": fmt.Sprint(48 << 20)})
	if out, err := ctr("task", "ls"); err != nil || !strings.Contains(out, "RUNNING") {
		t.Errorf("ctr task ls: %v\n%s", err, out)
	}

	if out, err := ctr("task", "kill", "-s", "KILL", id); err != nil {
		t.Fatalf("ctr task kill: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(cmdTimeout); ; time.Sleep(200 * time.Millisecond) {
		out, _ := ctr("task", "ls")
		if !strings.Contains(out, "RUNNING") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task still runs %v after SIGKILL:\n%s", cmdTimeout, out)
		}
	}
	if out, err := ctr("task", "rm", id); err != nil {
		t.Fatalf("ctr task rm: %v\n%s\ncontainerd log:\n%s", err, out, logTail())
	}
	checkScopeGone(t, "after ctr task rm", scope, cg)
}

// TestSystemdPodman: Podman with --cgroup-manager systemd and
// --runtime berth-runtime runs a container in machine.slice's
// libpod-ID.scope with its limits; podman exec joins it; podman update
// changes them (and keeps
// the others); podman rm stops the scope, and that of its conmon.
func TestSystemdPodman(t *testing.T) {
	requireSystemd(t)
	bin := berthRuntime(t)
	dir := t.TempDir()
	global := []string{
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"), "--cgroup-manager", "systemd",
		"--events-backend", "file", "--runtime", bin,
	}
	podman := func(args ...string) (string, error) {
		return run(t, nil, "podman", append(append([]string{}, global...), args...)...)
	}
	defer func() {
		if out, err := podman("rm", "-a", "-f"); err != nil {
			t.Errorf("podman rm -a -f: %v\n%s", err, out)
		}
		if out, err := podman("system", "reset", "-f"); err != nil {
			t.Errorf("podman system reset: %v\n%s", err, out)
		}
	}()
	b := testutil.NewBundle(t)
	tarball := filepath.Join(dir, "rootfs.tar")
	mustRun(t, nil, "tar", "-C", b.Rootfs, "-cf", tarball, ".")
	if out, err := podman("import", tarball, "localhost/bb:1"); err != nil {
		t.Fatalf("podman import: %v\n%s", err, out)
	}
	out, err := podman("run", "-d", "--network", "none", "--memory", "64m", "--pids-limit", "50", "localhost/bb:1", "sleep", "1000")
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	lines := strings.Fields(out)
	if len(lines) == 0 {
		t.Fatalf("podman run -d printed no container id")
	}
	cid := lines[len(lines)-1]
	scope := "libpod-" + cid + ".scope"
	cg := cgroupRoot + "/machine.slice/" + scope
	checkProps(t, "podman's container", scope, map[string]string{
		"ActiveState": "active", "Delegate": "yes", "MemoryMax": fmt.Sprint(64 << 20), "TasksMax": "50",
	})
	checkFiles(t, "podman's container", cg, map[string]string{"memory.max": fmt.Sprint(64 << 20), "pids.max": "50"})

	if out, err := podman("exec", cid, "cat", "/proc/self/cgroup"); err != nil {
		t.Errorf("podman exec: %v\n%s", err, out)
	} else if got := strings.TrimSpace(out); got != "0::/" && got != "0::/machine.slice/"+scope {
		t.Errorf("podman exec: the process is in cgroup %q, want the scope", got)
	}
	// Podman 4.3's update has no --pids-limit.
	if out, err := podman("update", "--memory", "128m", "--cpus", "0.5", cid); err != nil {
		t.Errorf("podman update: %v\n%s", err, out)
	} else {
		checkProps(t, "after podman update", scope, map[string]string{"MemoryMax": fmt.Sprint(128 << 20), "CPUQuotaPerSecUSec": "500ms", "TasksMax": "50"})
		checkFiles(t, "after podman update", cg, map[string]string{"memory.max": fmt.Sprint(128 << 20), "cpu.max": "50000 100000", "pids.max": "50"})
	}

	if out, err := podman("rm", "-f", cid); err != nil {
		t.Fatalf("podman rm -f: %v\n%s", err, out)
	}
	checkScopeGone(t, "after podman rm", scope, cg)
	checkScopeGone(t, "after podman rm", "libpod-conmon-"+cid+".scope", cgroupRoot+"/machine.slice/libpod-conmon-"+cid+".scope")
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
