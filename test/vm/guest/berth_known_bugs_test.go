//go:build berthvm

package guest

import (
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Tests of berth-runtime behaviour that is wrong today. They assert the
// correct behaviour and so fail until the runtime is fixed; they run only
// with BERTH_VM_KNOWN_BUGS=1 (go test ./test/vm passes it into the VM), so
// that CI stays green meanwhile. Move a test out of here with its fix.

func requireKnownBugs(t *testing.T, bug string) {
	t.Helper()
	if os.Getenv("BERTH_VM_KNOWN_BUGS") != "1" {
		t.Skipf("known bug, not yet fixed: %s; set BERTH_VM_KNOWN_BUGS=1 to run", bug)
	}
}

// TestBerthKnownBugCgroup2CPUSharesToWeight: on cgroup v2 the runtime passes
// linux.resources.cpu.shares to opencontainers/cgroups as CpuShares only,
// but fs2 writes cpu.weight from CpuWeight alone ("Conversion is the
// caller's responsibility"), so shares are dropped and cpu.weight stays at
// the default 100. runc's specconv sets CpuWeight =
// cgroups.ConvertCPUSharesToCgroupV2Value(shares).
func TestBerthKnownBugCgroup2CPUSharesToWeight(t *testing.T) {
	requireKnownBugs(t, "cpu.shares is not converted to cpu.weight on cgroup v2")
	rt := newBerth(t)
	id := createSleeper(t, rt, "shares", func(r *specs.LinuxResources) {
		shares := uint64(512)
		r.CPU = &specs.LinuxCPU{Shares: &shares}
	})
	// opencontainers/cgroups v0.1.0 (and runc since 1.3.2) maps v1 shares
	// to v2 weight with a quadratic fit through (2,1), (1024,100),
	// (262144,10000): 512 -> ceil(10^((81+1125)/612 - 7/34)) = 59. The older
	// linear formula, 1 + ((shares-2)*9999)/262142, gave 20.
	if got := cgroupValue(t, id, "cpu.weight"); got != "59" {
		t.Errorf("cpu.weight for linux.resources.cpu.shares 512 is %q, want 59", got)
	}
	deleteGone(t, rt, id, "--force")
}
