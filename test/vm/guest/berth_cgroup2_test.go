//go:build berthvm

package guest

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// These tests drive berth-runtime on the VM's cgroup v2 hierarchy the way
// containerd's shim does: create, start, wait4 the container's init as its
// child subreaper, read the container's cgroup files from outside, delete.
// Each reads back the value a limit must produce in the kernel's files, so a
// runtime that ignored the limit fails them.

// berthParent is the engine's shared parent (/berth/<id>): berth-runtime
// puts a container without linux.cgroupsPath at /<id>, as runc does, and
// makes no parent for it.
const berthParent = cgroupRoot + "/berth"

// newBerth returns a driver for berth-runtime in the VM. The test process
// becomes a child subreaper (idempotent, per process) so it can wait for a
// container's init after the runtime that forked it has exited.
func newBerth(t *testing.T) *testutil.Runtime {
	t.Helper()
	bin := berthRuntime(t)
	if err := testutil.SetChildSubreaper(); err != nil {
		t.Fatal(err)
	}
	return testutil.NewRuntime(t, bin)
}

// withResources sets linux.resources, keeping the default spec's device
// rules (deny all; the runtime adds runc's default allows).
func withResources(f func(*specs.LinuxResources)) testutil.BundleOption {
	return testutil.WithSpec(func(s *specs.Spec) {
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		f(s.Linux.Resources)
	})
}

// containerCgroup is where the container id's cgroup must be.
func containerCgroup(id string) string {
	return filepath.Join(cgroupRoot, id)
}

// cgroupValue reads a cgroup file of the container, trimmed.
func cgroupValue(t *testing.T, id, file string) string {
	t.Helper()
	return strings.TrimSpace(readFile(t, filepath.Join(containerCgroup(id), file)))
}

// createSleeper creates (not starts) a container that sleeps, with
// resources set by res (if not nil), and returns its id.
func createSleeper(t *testing.T, rt *testutil.Runtime, short string, res func(*specs.LinuxResources)) string {
	t.Helper()
	opts := []testutil.BundleOption{testutil.WithArgs("sleep", "1000")}
	if res != nil {
		opts = append(opts, withResources(res))
	}
	b := testutil.NewBundle(t, opts...)
	id := rt.NewID(short)
	createOK(t, rt, id, b)
	return id
}

// createOK creates the container and checks its cgroup exists.
func createOK(t *testing.T, rt *testutil.Runtime, id string, b *testutil.Bundle) {
	t.Helper()
	rt.Create(id, b.Dir).OK(t)
	if _, err := os.Stat(containerCgroup(id)); err != nil {
		t.Fatalf("after create, the container's cgroup: %v", err)
	}
}

// deleteGone deletes the container and checks that its cgroup is gone and
// that no /berth parent was left (or made).
func deleteGone(t *testing.T, rt *testutil.Runtime, id string, flags ...string) {
	t.Helper()
	rt.Delete(id, flags...).OK(t)
	if _, err := os.Stat(containerCgroup(id)); !os.IsNotExist(err) {
		t.Errorf("after delete, %s: want it gone, stat says %v", containerCgroup(id), err)
	}
	if _, err := os.Stat(berthParent); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(berthParent)
		var sub []string
		for _, e := range entries {
			if e.IsDir() {
				sub = append(sub, e.Name())
			}
		}
		t.Errorf("after delete, %s: want no such parent, stat says %v (subdirectories %q)", berthParent, err, sub)
	}
	if _, err := os.Stat(filepath.Join(rt.Root, id)); !os.IsNotExist(err) {
		t.Errorf("after delete, state directory %s: want it gone, stat says %v", filepath.Join(rt.Root, id), err)
	}
}

func TestBerthCgroup2MemoryLimitOOMKills(t *testing.T) {
	rt := newBerth(t)
	const limit = 32 << 20
	// The shell itself holds the 64 MB the pipe delivers: it, the
	// container's init, is what the OOM killer picks. Twice the limit, not
	// more: under TCG on a busy host tr moves only a few MB/s, and the wait
	// for the container is bounded.
	b := testutil.NewBundle(t,
		testutil.WithShell(`x=$(head -c 64000000 /dev/zero | tr "\0" a); echo "survived ${#x}"`),
		withResources(func(r *specs.LinuxResources) {
			l := int64(limit)
			r.Memory = &specs.LinuxMemory{Limit: &l}
		}))
	id := rt.NewID("oom")
	createOK(t, rt, id, b)
	if got := cgroupValue(t, id, "memory.max"); got != strconv.Itoa(limit) {
		t.Fatalf("memory.max of %s is %q, want %d (linux.resources.memory.limit)", id, got, limit)
	}
	if n := eventCount(t, containerCgroup(id), "memory.events", "oom_kill"); n != 0 {
		t.Fatalf("new container %s already has oom_kill %d", id, n)
	}
	rt.Start(id).OK(t)
	status := rt.Wait(id)
	stdout, stderr := rt.Output(id)
	if status != 128+int(unix.SIGKILL) {
		t.Fatalf("memory hog under memory.limit 32MiB exited %d, want 137 (OOM kill); stdout %q stderr %q", status, stdout, stderr)
	}
	// Read from outside, before delete removes the cgroup.
	if n := eventCount(t, containerCgroup(id), "memory.events", "oom_kill"); n < 1 {
		t.Errorf("%s/memory.events oom_kill = %d after the hog died, want >= 1", containerCgroup(id), n)
	}
	if s := rt.State(id).Status; s != "stopped" {
		t.Errorf("state of the OOM-killed container is %q, want stopped", s)
	}
	deleteGone(t, rt, id)
}

func TestBerthCgroup2CPUMax(t *testing.T) {
	rt := newBerth(t)
	id := createSleeper(t, rt, "cpu", func(r *specs.LinuxResources) {
		quota, period := int64(50000), uint64(100000)
		r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	})
	if got := cgroupValue(t, id, "cpu.max"); got != "50000 100000" {
		t.Errorf("cpu.max for quota 50000 period 100000 is %q, want \"50000 100000\"", got)
	}
	deleteGone(t, rt, id, "--force")
}

func TestBerthCgroup2PidsLimitStopsForkLoop(t *testing.T) {
	rt := newBerth(t)
	const limit = 8
	// Reaching 100 means pids.max was not enforced.
	b := testutil.NewBundle(t,
		testutil.WithShell(`i=0; while [ $i -lt 100 ]; do sleep 1000 >/dev/null 2>&1 & i=$((i+1)); done; echo "forked $i"`),
		withResources(func(r *specs.LinuxResources) {
			l := int64(limit)
			r.Pids = &specs.LinuxPids{Limit: &l}
		}))
	id := rt.NewID("pids")
	createOK(t, rt, id, b)
	if got := cgroupValue(t, id, "pids.max"); got != strconv.Itoa(limit) {
		t.Fatalf("pids.max of %s is %q, want %d", id, got, limit)
	}
	rt.Start(id).OK(t)
	status := rt.Wait(id)
	stdout, stderr := rt.Output(id)
	if status == 0 || strings.Contains(stdout, "forked 100") {
		t.Fatalf("fork loop under pids.limit %d exited %d; stdout %q stderr %q", limit, status, stdout, stderr)
	}
	if !strings.Contains(stdout+stderr, "can't fork") {
		t.Errorf("fork loop under pids.limit %d: want the shell's \"can't fork\"; exit %d, stdout %q stderr %q", limit, status, stdout, stderr)
	}
	if n := eventCount(t, containerCgroup(id), "pids.events", "max"); n < 1 {
		t.Errorf("%s/pids.events max = %d after refused forks, want >= 1", containerCgroup(id), n)
	}
	deleteGone(t, rt, id)
}

func TestBerthCgroup2BlockIOWeight(t *testing.T) {
	controllers := strings.Fields(readFile(t, filepath.Join(cgroupRoot, "cgroup.controllers")))
	if !slices.Contains(controllers, "io") {
		t.Skipf("needs the cgroup v2 io controller; the VM's root offers only %q", controllers)
	}
	rt := newBerth(t)
	const weight = 500
	id := createSleeper(t, rt, "io", func(r *specs.LinuxResources) {
		w := uint16(weight)
		r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	})
	// With BFQ the weight goes to io.bfq.weight as is; otherwise to
	// io.weight converted as runc does: 1 + (500-10)*9999/990 = 4950.
	if _, err := os.Stat(filepath.Join(containerCgroup(id), "io.bfq.weight")); err == nil {
		if got := cgroupValue(t, id, "io.bfq.weight"); !strings.HasPrefix(got, "default 500") && got != "500" {
			t.Errorf("io.bfq.weight for blockIO.weight 500 is %q, want default 500", got)
		}
	} else {
		want := "default " + strconv.Itoa(1+(weight-10)*9999/990)
		if got := cgroupValue(t, id, "io.weight"); got != want {
			t.Errorf("io.weight for blockIO.weight 500 is %q, want %q", got, want)
		}
	}
	deleteGone(t, rt, id, "--force")
}

func TestBerthCgroup2DevicesDenyBlockDevice(t *testing.T) {
	rt := newBerth(t)
	mode := os.FileMode(0o666)
	zero := uint32(0)
	// linux.devices makes the node; resources.devices (deny all, from the
	// default spec) must still refuse opening it: creating a node is not
	// permission to use it. An allowed 8:0 with no disk behind it would
	// fail with ENXIO, not EPERM.
	b := testutil.NewBundle(t,
		testutil.WithShell(`head -c1 /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null && echo zero-ok; head -c1 /dev/sda; echo "sda-status $?"`),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{
				Path: "/dev/sda", Type: "b", Major: 8, Minor: 0, FileMode: &mode, UID: &zero, GID: &zero,
			})
			s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
		}))
	id := rt.NewID("dev")
	createOK(t, rt, id, b)
	rt.Start(id).OK(t)
	status := rt.Wait(id)
	stdout, stderr := rt.Output(id)
	if status != 0 {
		t.Fatalf("device script exited %d; stdout %q stderr %q", status, stdout, stderr)
	}
	for _, want := range []string{"null-ok", "zero-ok"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("default-allowed device not usable: no %q in stdout %q (stderr %q)", want, stdout, stderr)
		}
	}
	if strings.Contains(stdout, "sda-status 0") || !strings.Contains(stderr, "Operation not permitted") {
		t.Errorf("opening block device 8:0 under deny-all: want EPERM (\"Operation not permitted\"); stdout %q stderr %q", stdout, stderr)
	}
	deleteGone(t, rt, id)
}

func TestBerthCgroup2PauseResume(t *testing.T) {
	rt := newBerth(t)
	id := createSleeper(t, rt, "pause", nil)
	rt.Start(id).OK(t)
	cg := containerCgroup(id)

	rt.Do("pause", id).OK(t)
	if got := cgroupValue(t, id, "cgroup.freeze"); got != "1" {
		t.Errorf("after pause, cgroup.freeze is %q, want 1", got)
	}
	waitEvent(t, cg, "frozen", 1)
	if s := rt.State(id).Status; s != "paused" {
		t.Errorf("after pause, state is %q, want paused", s)
	}

	rt.Do("resume", id).OK(t)
	if got := cgroupValue(t, id, "cgroup.freeze"); got != "0" {
		t.Errorf("after resume, cgroup.freeze is %q, want 0", got)
	}
	waitEvent(t, cg, "frozen", 0)
	if s := rt.State(id).Status; s != "running" {
		t.Errorf("after resume, state is %q, want running", s)
	}

	rt.Kill(id, "KILL").OK(t)
	if status := rt.Wait(id); status != 128+int(unix.SIGKILL) {
		t.Errorf("killed container exited %d, want 137", status)
	}
	deleteGone(t, rt, id)
}

// TestBerthCgroup2DeleteAfterCrash kills the init behind the runtime's back
// (as a crash or the OOM killer would): delete must still remove its cgroup.
func TestBerthCgroup2DeleteAfterCrash(t *testing.T) {
	rt := newBerth(t)
	id := createSleeper(t, rt, "crash", nil)
	rt.Start(id).OK(t)
	if err := unix.Kill(rt.Pid(id), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if status := rt.Wait(id); status != 128+int(unix.SIGKILL) {
		t.Errorf("init killed with SIGKILL exited %d, want 137", status)
	}
	if s := rt.State(id).Status; s != "stopped" {
		t.Errorf("state after the init died is %q, want stopped", s)
	}
	if _, err := os.Stat(containerCgroup(id)); err != nil {
		t.Errorf("before delete, the dead container's cgroup: %v", err)
	}
	deleteGone(t, rt, id)
}

func TestBerthCgroup2BadCpusFailsCreate(t *testing.T) {
	rt := newBerth(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"),
		withResources(func(r *specs.LinuxResources) {
			r.CPU = &specs.LinuxCPU{Cpus: "999"}
		}))
	id := rt.NewID("badcpus")
	res := rt.Create(id, b.Dir).Fails(t)
	msg := res.Stdout + res.Stderr
	if !strings.Contains(msg, "cpus") && !strings.Contains(msg, "cpuset") {
		t.Errorf("create with cpu.cpus 999: want an error naming cpus or cpuset, got %s", res)
	}
	if _, err := os.Stat(containerCgroup(id)); !os.IsNotExist(err) {
		t.Errorf("failed create left cgroup %s (stat: %v)", containerCgroup(id), err)
	}
	if _, err := os.Stat(berthParent); !os.IsNotExist(err) {
		t.Errorf("failed create left %s (stat: %v)", berthParent, err)
	}
	if _, err := os.Stat(filepath.Join(rt.Root, id)); !os.IsNotExist(err) {
		t.Errorf("failed create left state directory %s (stat: %v)", filepath.Join(rt.Root, id), err)
	}
}

// TestBerthCgroup2MemorySwapAndUnified checks the v1→v2 memory conversions:
// the spec's swap is memory+swap, v2's memory.swap.max is swap alone;
// reservation is memory.low; linux.resources.unified is written as is.
func TestBerthCgroup2MemorySwapAndUnified(t *testing.T) {
	rt := newBerth(t)
	const limit, swap, reservation = 32 << 20, 96 << 20, 16 << 20
	id := createSleeper(t, rt, "swap", func(r *specs.LinuxResources) {
		l, s, res := int64(limit), int64(swap), int64(reservation)
		r.Memory = &specs.LinuxMemory{Limit: &l, Swap: &s, Reservation: &res}
		r.Unified = map[string]string{"memory.high": strconv.Itoa(24 << 20)}
	})
	for file, want := range map[string]int{
		"memory.max":      limit,
		"memory.swap.max": swap - limit,
		"memory.low":      reservation,
		"memory.high":     24 << 20,
	} {
		if got := cgroupValue(t, id, file); got != strconv.Itoa(want) {
			t.Errorf("%s of %s is %q, want %d", file, id, got, want)
		}
	}
	deleteGone(t, rt, id, "--force")
}

// TestBerthCgroup2ContainerView checks what a process in the container sees
// of cgroup v2: with a cgroup namespace, /proc/self/cgroup is "0::/" and
// /sys/fs/cgroup is its own cgroup, limits included; a process started by
// exec joins that cgroup too.
func TestBerthCgroup2ContainerView(t *testing.T) {
	rt := newBerth(t)
	const limit = 20
	id := createSleeper(t, rt, "view", func(r *specs.LinuxResources) {
		l := int64(limit)
		r.Pids = &specs.LinuxPids{Limit: &l}
	})
	rt.Start(id).OK(t)

	res := rt.Exec(id, nil, "sh", "-c", `cat /proc/self/cgroup; cat /sys/fs/cgroup/pids.max; echo "self $$"; cat /sys/fs/cgroup/cgroup.procs`).OK(t)
	lines := strings.Fields(res.Stdout)
	if len(lines) < 4 || lines[0] != "0::/" || lines[1] != strconv.Itoa(limit) || lines[2] != "self" {
		t.Fatalf("in the container, want /proc/self/cgroup 0::/ and /sys/fs/cgroup/pids.max %d; exec printed %q", limit, res.Stdout)
	}
	if procs := lines[4:]; !slices.Contains(procs, lines[3]) || !slices.Contains(procs, "1") {
		t.Errorf("the exec'd shell (pid %s) and the init (pid 1) should both be in the container's cgroup.procs %q", lines[3], procs)
	}
	deleteGone(t, rt, id, "--force")
}

// TestBerthCgroup2CgroupsPath checks that linux.cgroupsPath places the
// container's cgroup, with its limits, and delete removes it.
func TestBerthCgroup2CgroupsPath(t *testing.T) {
	rt := newBerth(t)
	parent := filepath.Join(cgroupRoot, "berth-guest-path")
	t.Cleanup(func() {
		if err := os.Remove(parent); err != nil && !os.IsNotExist(err) {
			t.Errorf("remove %s: %v", parent, err)
		}
	})
	id := rt.NewID("path")
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.CgroupsPath = "/berth-guest-path/" + id
			l := int64(16)
			s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &l}
		}))
	rt.Create(id, b.Dir).OK(t)
	cg := filepath.Join(parent, id)
	if got := strings.TrimSpace(readFile(t, filepath.Join(cg, "pids.max"))); got != "16" {
		t.Errorf("%s/pids.max is %q, want 16", cg, got)
	}
	if procs := cgroupProcs(t, cg); !slices.Contains(procs, strconv.Itoa(rt.Pid(id))) {
		t.Errorf("%s holds %q, want the container's init %d", cg, procs, rt.Pid(id))
	}
	if _, err := os.Stat(berthParent); !os.IsNotExist(err) {
		t.Errorf("with linux.cgroupsPath set, %s exists (stat: %v)", berthParent, err)
	}
	rt.Delete(id, "--force").OK(t)
	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Errorf("after delete, %s: want it gone, stat says %v", cg, err)
	}
}
