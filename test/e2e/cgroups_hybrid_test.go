package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// requireHybridHugetlb: these tests are about hosts like this project's CI
// machine, with v1 controllers and hugetlb bound to the v2 hierarchy.
func requireHybridHugetlb(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	if err != nil || !strings.Contains(string(b), "hugetlb") {
		t.Skip("requires a hybrid cgroup host with hugetlb on /sys/fs/cgroup/unified (this project's CI machine)")
	}
	if _, err := os.Stat("/sys/fs/cgroup/hugetlb"); err == nil {
		t.Skip("requires hugetlb on the v2 hierarchy, not on v1")
	}
	skipIfRunc(t, "runc 1.1.5 fails any hugepageLimits on a hybrid host: `cannot set hugetlb limit: container could not join or create cgroup`")
}

// unifiedDir is pid's cgroup on the v2 hierarchy of a hybrid host.
func unifiedDir(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return filepath.Join("/sys/fs/cgroup/unified", p)
		}
	}
	t.Fatalf("process %d has no v2 cgroup: %s", pid, b)
	return ""
}

// TestCgroupHybridHugetlb: on a hybrid host each controller is driven where
// it lives: linux.resources.hugepageLimits reach the container's cgroup on
// the v2 hierarchy, while memory goes to v1.
func TestCgroupHybridHugetlb(t *testing.T) {
	requireHybridHugetlb(t)
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), withResources(func(r *specs.LinuxResources) {
		r.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}
		r.Memory = &specs.LinuxMemory{Limit: ptrTo(int64(64 << 20))}
	}))
	id := rt.NewID("hugetlb")
	rt.Run(id, b.Dir, "-d").OK(t)
	pid := rt.Pid(id)
	dir := unifiedDir(t, pid)
	got, err := os.ReadFile(filepath.Join(dir, "hugetlb.2MB.max"))
	if err != nil || strings.TrimSpace(string(got)) != fmt.Sprint(4<<20) {
		t.Errorf("hugetlb.2MB.max in the container's v2 cgroup %s = %q (%v), want %d", dir, got, err, 4<<20)
	}
	if got := cgroupFile(t, pid, "memory", "memory.limit_in_bytes"); got != fmt.Sprint(64<<20) {
		t.Errorf("memory.limit_in_bytes = %s, want %d (v1)", got, 64<<20)
	}
	rt.Delete(id, "--force").OK(t)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("delete left the container's v2 cgroup %s (%v)", dir, err)
	}

	// A page size the host does not have names the field and leaves
	// nothing behind.
	bad := testutil.NewBundle(t, testutil.WithArgs("true"), withResources(func(r *specs.LinuxResources) {
		r.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "3MB", Limit: 4 << 20}}
	}))
	badID := rt.NewID("hugetlbbad")
	res := rt.Create(badID, bad.Dir)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "linux.resources.hugepageLimits[0].pageSize") {
		t.Errorf("create with hugepage size 3MB: want a failure naming linux.resources.hugepageLimits[0].pageSize: %s", res)
	}
	checkCreateLeftNothing(t, rt, badID, bad)
}

// TestCgroupMissingController: a limit for a controller the host does not
// mount (net_cls and net_prio are absent on this project's CI machine)
// fails the create, naming the field and the controller, and leaves
// nothing behind.
func TestCgroupMissingController(t *testing.T) {
	rt := newRuntime(t)
	for _, tc := range []struct {
		controller, field string
		set               func(r *specs.LinuxResources)
	}{
		{"net_cls", "linux.resources.network.classID", func(r *specs.LinuxResources) {
			r.Network = &specs.LinuxNetwork{ClassID: ptrTo(uint32(0x100001))}
		}},
		{"net_prio", "linux.resources.network.priorities", func(r *specs.LinuxResources) {
			r.Network = &specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: "lo", Priority: 5}}}
		}},
	} {
		t.Run(tc.controller, func(t *testing.T) {
			if _, err := os.Stat("/sys/fs/cgroup/" + tc.controller); err == nil {
				t.Skipf("requires a host without the %s controller (this one mounts it)", tc.controller)
			}
			b := testutil.NewBundle(t, testutil.WithArgs("true"), withResources(tc.set))
			id := rt.NewID("nocontroller")
			res := rt.Create(id, b.Dir)
			if res.ExitCode == 0 {
				t.Fatalf("create with a %s limit on a host without %s succeeded", tc.controller, tc.controller)
			}
			if !strings.Contains(res.Stderr, tc.controller) || (!isRunc(t) && !strings.Contains(res.Stderr, tc.field)) {
				t.Errorf("create with a %s limit: want an error naming %s and %s: %s", tc.controller, tc.field, tc.controller, res)
			}
			checkCreateLeftNothing(t, rt, id, b)
		})
	}
}
