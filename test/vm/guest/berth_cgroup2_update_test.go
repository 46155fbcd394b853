//go:build berthvm

package guest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestBerthCgroup2CPUSharesToWeight: linux.resources.cpu.shares becomes
// cpu.weight on v2 with runc's mapping, so one config.json gives the same
// relative weight on either host.
func TestBerthCgroup2CPUSharesToWeight(t *testing.T) {
	rt := newBerth(t)
	id := createSleeper(t, rt, "shares", func(r *specs.LinuxResources) {
		shares := uint64(512)
		r.CPU = &specs.LinuxCPU{Shares: &shares}
	})
	// opencontainers/cgroups v0.1.0 (and runc since 1.3.2) maps v1 shares
	// to v2 weight with a quadratic fit through (2,1), (1024,100),
	// (262144,10000): 512 -> ceil(10^((81+1125)/612 - 7/34)) = 59.
	if got := cgroupValue(t, id, "cpu.weight"); got != "59" {
		t.Errorf("cpu.weight for linux.resources.cpu.shares 512 is %q, want 59", got)
	}
	deleteGone(t, rt, id, "--force")
}

// TestBerthCgroup2Update: `update` rewrites the limits of a running
// container on v2, from flags and from a --resources file, keeping what it
// is not told to change.
func TestBerthCgroup2Update(t *testing.T) {
	rt := newBerth(t)
	id := createSleeper(t, rt, "update", func(r *specs.LinuxResources) {
		limit, pids := int64(32<<20), int64(8)
		r.Memory = &specs.LinuxMemory{Limit: &limit}
		r.Pids = &specs.LinuxPids{Limit: &pids}
	})
	rt.Do("start", id).OK(t)
	rt.Do("update", "--memory", "64M", "--pids-limit", "20", "--cpu-share", "1024", "--cpu-quota", "20000", "--cpu-period", "100000", id).OK(t)
	for file, want := range map[string]string{
		"memory.max": fmt.Sprint(64 << 20), "pids.max": "20", "cpu.weight": "100", "cpu.max": "20000 100000",
	} {
		if got := cgroupValue(t, id, file); got != want {
			t.Errorf("after update, %s = %q, want %q", file, got, want)
		}
	}
	res := t.TempDir() + "/res.json"
	if err := os.WriteFile(res, []byte(`{"pids":{"limit":30},"unified":{"memory.high":"50331648"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	rt.Do("update", "--resources", res, id).OK(t)
	for file, want := range map[string]string{"pids.max": "30", "memory.high": "50331648", "memory.max": fmt.Sprint(64 << 20)} {
		if got := cgroupValue(t, id, file); got != want {
			t.Errorf("after update --resources, %s = %q, want %q", file, got, want)
		}
	}
	// A value the kernel refuses fails the update, names the field and
	// leaves the limits as they were.
	bad := rt.Do("update", "--cpuset-cpus", "999", id)
	if bad.ExitCode == 0 || !strings.Contains(bad.Stderr, "linux.resources.cpu.cpus") {
		t.Errorf("update --cpuset-cpus 999: want a failure naming linux.resources.cpu.cpus, got %s", bad)
	}
	if got := cgroupValue(t, id, "pids.max"); got != "30" {
		t.Errorf("after a failed update, pids.max = %q, want 30 still", got)
	}
	deleteGone(t, rt, id, "--force")
}

// TestBerthCgroup2KillPaused: SIGKILL ends a paused (cgroup.freeze=1)
// container without a resume, as with runc.
func TestBerthCgroup2KillPaused(t *testing.T) {
	rt := newBerth(t)
	id := createSleeper(t, rt, "killpaused", nil)
	rt.Do("start", id).OK(t)
	rt.Do("pause", id).OK(t)
	rt.Do("kill", id, "KILL").OK(t)
	deadline := time.Now().Add(30 * time.Second)
	for rt.State(id).Status != "stopped" {
		if time.Now().After(deadline) {
			t.Fatalf("a paused container after kill KILL is %q, want stopped (cgroup.freeze %s)", rt.State(id).Status, cgroupValue(t, id, "cgroup.freeze"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	deleteGone(t, rt, id)
}
