package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupDir returns the host directory of the v1 cgroup of pid on the
// hierarchy mounted at /sys/fs/cgroup/<hierarchy>, read from the host's view
// of /proc/PID/cgroup: it holds whatever path the runtime chose (its default
// or linux.cgroupsPath).
func cgroupDir(t *testing.T, pid int, hierarchy string) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatalf("cgroups of %d: %v", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == hierarchy {
				return filepath.Join("/sys/fs/cgroup", hierarchy, parts[2])
			}
		}
	}
	t.Fatalf("process %d is in no cgroup of the %s hierarchy", pid, hierarchy)
	return ""
}

// cgroupFile returns the trimmed content of a file of pid's cgroup.
func cgroupFile(t *testing.T, pid int, hierarchy, file string) string {
	t.Helper()
	p := filepath.Join(cgroupDir(t, pid, hierarchy), file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return strings.TrimSpace(string(b))
}

// keyedValue returns the number after key in a "key value" per line file
// (memory.oom_control, pids.events), or -1.
func keyedValue(text, key string) int64 {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// requireV1Cgroups skips a test that reads cgroup v1 files (memory.limit_in_bytes,
// cpu.shares, freezer.state...) on a cgroup v2 host, naming what it needs;
// test/vm runs the runtime on cgroup v2.
func requireV1Cgroups(t *testing.T) {
	t.Helper()
	if fileExists("/sys/fs/cgroup/cgroup.controllers") {
		t.Skip("requires cgroup v1 controllers (a v1 or hybrid host): this test reads v1 files, and this host has cgroup v2 only")
	}
}

func ptrTo[T any](v T) *T { return &v }

// withResources sets linux.resources fields, keeping the default device
// rules.
func withResources(f func(r *specs.LinuxResources)) testutil.BundleOption {
	return testutil.WithSpec(func(s *specs.Spec) { f(s.Linux.Resources) })
}

func TestCgroupMemoryOOM(t *testing.T) {
	requireV1Cgroups(t)
	rt := newRuntime(t)
	const limit = 32 << 20
	// tail keeps the whole "line" it reads from /dev/zero in memory: it grows
	// until the cgroup's OOM killer ends it.
	b := testutil.NewBundle(t, testutil.WithWritableRoot(),
		testutil.WithShell(`touch /tmp/started; while [ ! -e /tmp/go ]; do sleep 0.05; done; exec tail /dev/zero`),
		withResources(func(r *specs.LinuxResources) {
			r.Memory = &specs.LinuxMemory{Limit: ptrTo(int64(limit))}
		}))
	id := rt.NewID("oom")
	rt.Run(id, b.Dir, "-d").OK(t)
	waitFor(t, "the container to start", func() bool { return fileExists(b.Path("tmp/started")) })
	pid := rt.Pid(id)
	if got := cgroupFile(t, pid, "memory", "memory.limit_in_bytes"); got != strconv.Itoa(limit) {
		// Fatal: without the limit, the hog would eat the host's memory.
		t.Fatalf("memory.limit_in_bytes = %s, want %d", got, limit)
	}
	oomControl := filepath.Join(cgroupDir(t, pid, "memory"), "memory.oom_control")
	if err := os.WriteFile(b.Path("tmp/go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := rt.Wait(id); code != 137 {
		t.Fatalf("exit status of a container that outgrew its 32MiB limit = %d, want 137 (SIGKILL by the OOM killer)", code)
	}
	// The cgroup stays until delete.
	ctl, err := os.ReadFile(oomControl)
	if err != nil {
		t.Fatalf("read %s after the OOM kill: %v", oomControl, err)
	}
	if n := keyedValue(string(ctl), "oom_kill"); n < 1 {
		t.Errorf("%s after the container died = %q, want oom_kill >= 1", oomControl, ctl)
	}
	rt.Delete(id).OK(t)
}

func TestCgroupCPU(t *testing.T) {
	requireV1Cgroups(t)
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"),
		withResources(func(r *specs.LinuxResources) {
			r.CPU = &specs.LinuxCPU{
				Shares: ptrTo(uint64(512)),
				Quota:  ptrTo(int64(50000)),
				Period: ptrTo(uint64(200000)),
				Cpus:   "0",
			}
		}))
	id := rt.NewID("cpu")
	rt.Run(id, b.Dir, "-d").OK(t)
	pid := rt.Pid(id)
	for _, c := range []struct{ hierarchy, file, want string }{
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "200000"},
		{"cpuset", "cpuset.cpus", "0"},
	} {
		if got := cgroupFile(t, pid, c.hierarchy, c.file); got != c.want {
			t.Errorf("%s = %q, want %q", c.file, got, c.want)
		}
	}
	// What the container sees: it may run on cpu 0 only.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if got := statusField(string(status), "Cpus_allowed_list"); got != "0" {
		t.Errorf("Cpus_allowed_list of the container's process = %q, want \"0\"", got)
	}
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
	rt.Delete(id).OK(t)
}

func TestPidsLimit(t *testing.T) {
	requireV1Cgroups(t)
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithWritableRoot(),
		// The shell that meets "can't fork" gives up, so the loop runs in a
		// subshell.
		testutil.WithShell(`(i=0; while [ $i -lt 20 ]; do sleep 1000 & i=$((i+1)); done); echo started > /tmp/started; exec sleep 1000`),
		withResources(func(r *specs.LinuxResources) { r.Pids = &specs.LinuxPids{Limit: ptrTo(int64(8))} }))
	id := rt.NewID("pids")
	rt.Run(id, b.Dir, "-d").OK(t)
	waitFor(t, "the fork loop to end", func() bool { return fileExists(b.Path("tmp/started")) })
	pid := rt.Pid(id)
	if got := cgroupFile(t, pid, "pids", "pids.max"); got != "8" {
		t.Errorf("pids.max = %q, want 8", got)
	}
	cur, _ := strconv.Atoi(cgroupFile(t, pid, "pids", "pids.current"))
	if cur < 1 || cur > 8 {
		t.Errorf("pids.current = %d, want 1..8", cur)
	}
	if n := keyedValue(cgroupFile(t, pid, "pids", "pids.events"), "max"); n < 1 {
		t.Errorf("pids.events shows %d refused forks, want >= 1 (the loop asked for 20 processes)", n)
	}
	_, stderr := rt.Output(id)
	if !strings.Contains(stderr, "can't fork") {
		t.Errorf("container stderr %q, want the shell's \"can't fork\"", stderr)
	}
	rt.Kill(id, "KILL", "--all").OK(t)
	rt.Wait(id)
	rt.Delete(id).OK(t)
}

func TestPauseResume(t *testing.T) {
	requireV1Cgroups(t)
	rt := newRuntime(t)
	data := hostDir(t)
	counter := filepath.Join(data, "count")
	b := testutil.NewBundle(t,
		testutil.WithShell(`while :; do echo x >> /data/count; sleep 0.05; done`),
		testutil.WithMounts(specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "rw"}}))
	id := rt.NewID("pause")
	rt.Run(id, b.Dir, "-d").OK(t)
	size := func() int64 {
		fi, err := os.Stat(counter)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	waitFor(t, "the counter to advance", func() bool { return size() > 0 })

	rt.Do("pause", id).OK(t)
	if s := rt.State(id); s.Status != "paused" {
		t.Fatalf("state after pause = %+v, want paused", s)
	}
	if got := cgroupFile(t, rt.Pid(id), "freezer", "freezer.state"); got != "FROZEN" {
		t.Errorf("freezer.state after pause = %q, want FROZEN", got)
	}
	before := size()
	// Forty of the loop's iterations; a running loop would have written.
	time.Sleep(2 * time.Second)
	if after := size(); after != before {
		t.Fatalf("the counter grew from %d to %d bytes while the container was paused", before, after)
	}

	rt.Do("resume", id).OK(t)
	if s := rt.State(id); s.Status != "running" {
		t.Fatalf("state after resume = %+v, want running", s)
	}
	waitFor(t, "the counter to advance after resume", func() bool { return size() > before })
	rt.Kill(id, "KILL").OK(t)
	if code := rt.Wait(id); code != 137 {
		t.Fatalf("exit status after resume and kill KILL = %d, want 137", code)
	}
	rt.Delete(id).OK(t)

	// A paused container goes away with delete --force; the leak check of
	// the cleanup sees that nothing (frozen processes, cgroup) remains.
	id2 := rt.NewID("pausedel")
	rt.Run(id2, b.Dir, "-d").OK(t)
	rt.Do("pause", id2).OK(t)
	rt.Delete(id2, "--force").OK(t)
	if code, err := testutil.WaitPid(rt.Pid(id2), testutil.CallTimeout); err != nil || code != 137 {
		t.Errorf("init of a paused container after delete --force: status %d (%v), want killed by SIGKILL", code, err)
	}
}

func TestCgroupBadLimits(t *testing.T) {
	requireV1Cgroups(t)
	rt := newRuntime(t)
	weightDevice := func(major, minor int64, weight uint16) specs.LinuxWeightDevice {
		var wd specs.LinuxWeightDevice
		wd.Major, wd.Minor, wd.Weight = major, minor, &weight
		return wd
	}
	for _, tc := range []struct {
		name string
		set  func(r *specs.LinuxResources)
		want []string // one of these must appear in stderr (case-insensitive)
		// field is the config.json path of the value at fault, which
		// berth-runtime's error names (runc names the cgroup file).
		field string
		// runc says how runc 1.1.5 deviates: it accepts the bundle.
		runc string
	}{
		{name: "cpus 999", set: func(r *specs.LinuxResources) { r.CPU = &specs.LinuxCPU{Cpus: "999"} },
			want: []string{"cpus"}, field: "linux.resources.cpu.cpus"},
		{name: "mems 5", set: func(r *specs.LinuxResources) { r.CPU = &specs.LinuxCPU{Mems: "5"} },
			want: []string{"mems"}, field: "linux.resources.cpu.mems"},
		{name: "weight of a nonexistent device", set: func(r *specs.LinuxResources) {
			r.BlockIO = &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{weightDevice(250, 250, 100)}}
		}, want: []string{"weightDevice", "weight_device"}, field: "linux.resources.blockIO.weightDevice"},
		{name: "blockIO weight 5", set: func(r *specs.LinuxResources) {
			r.BlockIO = &specs.LinuxBlockIO{Weight: ptrTo(uint16(5))}
		}, want: []string{"weight"}, field: "linux.resources.blockIO.weight",
			runc: "ignores blockIO.weight where the kernel has no blkio.weight file (no CFQ/BFQ weight, as here)"},
		{name: "swap below the memory limit", set: func(r *specs.LinuxResources) {
			r.Memory = &specs.LinuxMemory{Limit: ptrTo(int64(64 << 20)), Swap: ptrTo(int64(32 << 20))}
		}, want: []string{"swap", "memsw"}, field: "linux.resources.memory.swap"},
		{name: "cpu shares 1", set: func(r *specs.LinuxResources) { r.CPU = &specs.LinuxCPU{Shares: ptrTo(uint64(1))} },
			want: []string{"shares"}, field: "linux.resources.cpu.shares"},
		{name: "swappiness 200", set: func(r *specs.LinuxResources) { r.Memory = &specs.LinuxMemory{Swappiness: ptrTo(uint64(200))} },
			want: []string{"swappiness"}, field: "linux.resources.memory.swappiness"},
		{name: "unified on cgroup v1", set: func(r *specs.LinuxResources) { r.Unified = map[string]string{"memory.max": "1000000"} },
			want: []string{"unified"}, field: "linux.resources.unified"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			b := testutil.NewBundle(t, testutil.WithArgs("true"), withResources(tc.set))
			id := rt.NewID("badcg")
			res := rt.Create(id, b.Dir)
			if isRunc(t) && tc.runc != "" && res.ExitCode == 0 {
				t.Skipf("runc 1.1.5 deviation: it %s", tc.runc)
			}
			if res.ExitCode == 0 {
				t.Errorf("create with %s succeeded: %s", tc.name, res)
			} else {
				stderr := strings.ToLower(res.Stderr)
				named := false
				for _, w := range tc.want {
					named = named || strings.Contains(stderr, strings.ToLower(w))
				}
				if !named {
					t.Errorf("create with %s failed without naming the field (any of %q): %s", tc.name, tc.want, res)
				}
				if !isRunc(t) && !strings.Contains(stderr, strings.ToLower(tc.field)) {
					t.Errorf("create with %s failed without naming %s: %s", tc.name, tc.field, res)
				}
			}
			checkCreateLeftNothing(t, rt, id, b)
		})
	}
}

// TestCgroupsPath: linux.cgroupsPath puts the container's cgroup exactly
// there, on every hierarchy, with the limits; delete removes it.
func TestCgroupsPath(t *testing.T) {
	requireV1Cgroups(t)
	rt := newRuntime(t)
	id := rt.NewID("cgpath")
	parent := "berth-e2e-parent-" + strings.TrimPrefix(id, "berth-e2e-cgpath-")
	// Runtimes (runc too) create the parents of cgroupsPath and leave them.
	t.Cleanup(func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
		for _, d := range dirs {
			os.Remove(filepath.Join(d, id))
			if err := os.Remove(d); err != nil {
				t.Errorf("remove parent cgroup %s: %v", d, err)
			}
		}
	})
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.CgroupsPath = "/" + parent + "/" + id
		s.Linux.Resources.Memory = &specs.LinuxMemory{
			Limit:       ptrTo(int64(64 << 20)),
			Reservation: ptrTo(int64(32 << 20)),
			Swap:        ptrTo(int64(64 << 20)),
		}
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: ptrTo(int64(100))}
	}))
	rt.Run(id, b.Dir, "-d").OK(t)
	pid := rt.Pid(id)
	for _, h := range []string{"memory", "pids", "cpu", "freezer", "devices"} {
		if got, want := cgroupDir(t, pid, h), filepath.Join("/sys/fs/cgroup", h, parent, id); got != want {
			t.Errorf("%s cgroup of the container = %s, want %s (from linux.cgroupsPath)", h, got, want)
		}
	}
	for _, c := range []struct{ hierarchy, file, want string }{
		{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"memory", "memory.soft_limit_in_bytes", strconv.Itoa(32 << 20)},
		{"memory", "memory.memsw.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"pids", "pids.max", "100"},
	} {
		if got := cgroupFile(t, pid, c.hierarchy, c.file); got != c.want {
			t.Errorf("%s = %q, want %q", c.file, got, c.want)
		}
	}
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
	rt.Delete(id).OK(t)
	if left := testutil.FindCgroups(id); len(left) != 0 {
		t.Errorf("delete left the container's cgroups %v", left)
	}
}

// TestPauseKillPaused: kill KILL of a paused container ends it, as runc's
// does (it thaws the cgroup after sending SIGKILL): a frozen process cannot
// die, and a manager that kills a paused container must not need to resume
// it first.
func TestPauseKillPaused(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("killpaused")
	rt.Run(id, b.Dir, "-d").OK(t)
	rt.Do("pause", id).OK(t)
	rt.Kill(id, "KILL").OK(t)
	waitFor(t, "the killed paused container to exit", func() bool {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", rt.Pid(id)))
		return len(st) == 0 || strings.Contains(string(st), ") Z ")
	})
	if code := rt.Wait(id); code != 137 {
		t.Fatalf("exit status of a paused container after kill KILL = %d, want 137", code)
	}
	if s := rt.State(id); s.Status != "stopped" {
		t.Errorf("state of a paused container after kill KILL = %q, want stopped", s.Status)
	}
	rt.Delete(id).OK(t)
}

// TestCgroupUpdate: runc's `update` changes the limits of a running
// container (containerd's shim calls it for `ctr task update` and the CRI's
// UpdateContainerResources).
func TestCgroupUpdate(t *testing.T) {
	requireV1Cgroups(t)
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"),
		withResources(func(r *specs.LinuxResources) {
			r.Memory = &specs.LinuxMemory{Limit: ptrTo(int64(32 << 20))}
			r.Pids = &specs.LinuxPids{Limit: ptrTo(int64(8))}
		}))
	id := rt.NewID("update")
	rt.Run(id, b.Dir, "-d").OK(t)
	rt.Do("update", "--memory", "64M", "--pids-limit", "20", "--cpu-share", "256", id).OK(t)
	pid := rt.Pid(id)
	for _, c := range []struct{ hierarchy, file, want string }{
		{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"pids", "pids.max", "20"},
		{"cpu", "cpu.shares", "256"},
	} {
		if got := cgroupFile(t, pid, c.hierarchy, c.file); got != c.want {
			t.Errorf("after update, %s = %q, want %q", c.file, got, c.want)
		}
	}
}

// TestUpdateIdleContainer: a container made SCHED_IDLE (cpu.idle 1) with
// cpu.shares in its config can still be updated, back to cpu.idle 0 too
// (runc update.bats "update cgroup cpu.idle"): the kernel refuses writes of
// cpu.shares to an idle group, so update must not write them again.
func TestUpdateIdleContainer(t *testing.T) {
	requireV1Cgroups(t)
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.idle"); err != nil {
		t.Skip("needs cpu.idle in the v1 cpu controller (Linux 5.15 or later)")
	}
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"),
		withResources(func(r *specs.LinuxResources) { r.CPU = &specs.LinuxCPU{Shares: ptrTo(uint64(100))} }))
	id := rt.NewID("idle")
	rt.Run(id, b.Dir, "-d").OK(t)
	pid := rt.Pid(id)
	for _, v := range []string{"1", "0", "1"} {
		rt.Do("update", "--cpu-idle", v, id).OK(t)
		if got := cgroupFile(t, pid, "cpu", "cpu.idle"); got != v {
			t.Errorf("cpu.idle after update --cpu-idle %s = %q", v, got)
		}
	}
	rt.Do("update", "--pids-limit", "30", id).OK(t)
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
	rt.Delete(id).OK(t)
}

// TestExecSubCgroup: exec --cgroup puts the process in an existing cgroup
// below the container's, per controller or on every hierarchy, and refuses
// a path outside it, a missing one and an unknown controller (runc
// exec.bats "runc exec --cgroup sub-cgroups [v1]").
func TestExecSubCgroup(t *testing.T) {
	requireV1Cgroups(t)
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("execsubcg")
	rt.Run(id, b.Dir, "-d").OK(t)
	pid := rt.Pid(id)
	mem, cpu, cpuacct := cgroupDir(t, pid, "memory"), cgroupDir(t, pid, "cpu"), cgroupDir(t, pid, "cpuacct")
	// cpu and cpuacct may share a hierarchy.
	for _, d := range []string{filepath.Join(mem, "submem"), filepath.Join(cpu, "subcpu"), filepath.Join(cpuacct, "subcpu")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ arg, want string }{
		{"..", ".. is not a sub cgroup path"},
		{"nonexistent", "/nonexistent/cgroup.procs: no such file"},
		{"cpu:nonexistent", "/nonexistent/cgroup.procs: no such file"},
		{"whaaat:/", "unknown controller whaaat"},
	} {
		res := rt.Exec(id, []string{"--cgroup", c.arg}, "true")
		if res.ExitCode == 0 || !strings.Contains(res.Stderr, c.want) {
			t.Errorf("exec --cgroup %s: %s, want a failure saying %q", c.arg, res, c.want)
		}
	}
	out := rt.Exec(id, []string{"--cgroup", "memory:submem", "--cgroup", "cpu,cpuacct:subcpu"}, "cat", "/proc/self/cgroup").OK(t).Stdout
	// The container's cgroup namespace is rooted at its own cgroup.
	if !strings.Contains(out, ":memory:/submem\n") || !strings.Contains(out, ":cpu:/subcpu\n") || !strings.Contains(out, ":pids:/\n") {
		t.Errorf("exec --cgroup memory:submem --cgroup cpu,cpuacct:subcpu: /proc/self/cgroup is\n%s\nwant memory in submem, cpu in subcpu, the rest in the container's", out)
	}
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
	rt.Delete(id).OK(t)
	for _, d := range []string{mem, cpu, cpuacct} {
		if fileExists(d) {
			t.Errorf("%s is left after delete", d)
		}
	}
}
