package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
)

// unifiedMount is where hybrid hosts mount the v2 hierarchy beside the v1
// controllers.
const unifiedMount = "/sys/fs/cgroup/unified"

// hybridHugetlb says whether hugepage limits must go to the v2 hierarchy:
// a hybrid host whose hugetlb controller is bound to v2, not v1 (as on
// this project's CI machine). opencontainers/cgroups' v1 manager joins the
// v2 cgroup there but drives no controller in it, so this package does.
func hybridHugetlb() bool {
	if !cgroups.IsCgroup2HybridMode() {
		return false
	}
	if _, err := cgroups.FindCgroupMountpoint("", "hugetlb"); err == nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(unifiedMount, "cgroup.controllers"))
	return err == nil && slices.Contains(strings.Fields(string(b)), "hugetlb")
}

// setHybridHugetlb writes the hugepage limits into the container's v2
// cgroup dir, first enabling hugetlb in the subtree_control of each
// ancestor from the v2 root down (as runc does for every controller on a
// v2 host), since a v2 controller reaches a cgroup only that way.
func setHybridHugetlb(dir string, limits []*cgroups.HugepageLimit) error {
	if len(limits) == 0 {
		return nil
	}
	if dir == "" || !strings.HasPrefix(dir, unifiedMount+"/") {
		return fmt.Errorf("linux.resources.hugepageLimits: the container has no cgroup on the v2 hierarchy (%s) that holds hugetlb", unifiedMount)
	}
	rel := strings.Split(strings.TrimPrefix(dir, unifiedMount+"/"), "/")
	cur := unifiedMount
	for _, e := range rel {
		if err := enableController(cur, "hugetlb"); err != nil {
			return fmt.Errorf("linux.resources.hugepageLimits: %w", err)
		}
		cur = filepath.Join(cur, e)
	}
	for i, l := range limits {
		val := strconv.FormatUint(l.Limit, 10)
		file := "hugetlb." + l.Pagesize + ".max"
		if err := cgroups.WriteFile(dir, file, val); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("linux.resources.hugepageLimits[%d].pageSize: %q is not a huge page size of this host (%s): %w", i, l.Pagesize, strings.Join(cgroups.HugePageSizes(), ", "), err)
			}
			return fmt.Errorf("linux.resources.hugepageLimits[%d]: %w", i, err)
		}
		// The reservation limit is newer (Linux 5.7); keep it in step
		// where it exists, as runc does.
		if err := cgroups.WriteFile(dir, "hugetlb."+l.Pagesize+".rsvd.max", val); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("linux.resources.hugepageLimits[%d]: %w", i, err)
		}
	}
	return nil
}

func enableController(dir, name string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	if slices.Contains(strings.Fields(string(b)), name) {
		return nil
	}
	if err := cgroups.WriteFile(dir, "cgroup.subtree_control", "+"+name); err != nil {
		return fmt.Errorf("enable the %s controller below %s: %w", name, dir, err)
	}
	return nil
}
