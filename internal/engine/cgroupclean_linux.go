package engine

import (
	"errors"
	"path"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/cgroups"
)

// removeCgroupLeftovers removes what is left of r's own cgroup (its
// directory and any below it, such as crun's "container" subgroup) in every
// cgroup hierarchy the host mounts, once the runtime has deleted the
// container after a failed start. berth-runtime and runc remove their cgroups themselves; a
// runtime that fails inside create may not, and then has no state for its
// delete to find: Debian's runsc 0.0~20221219 makes the container's cgroups
// and then refuses every networked sandbox on Linux 6.x (its root-netns
// test reads /proc/sys/net/core/rmem_default, which newer kernels show in
// every network namespace).
//
// Only the cgroupfs driver's paths are touched (a systemd scope is
// systemd's to remove), only a path whose last element is r's ID (never a
// parent, such as kubelet's pod cgroup), and only through rmdir, which
// fails on a cgroup that still holds a process: nothing alive is killed or
// moved.
func removeCgroupLeftovers(r *record) error {
	if r.SystemdCgroup || r.ID == "" {
		return nil
	}
	rel := cgroupRelOf(r)
	if !path.IsAbs(rel) || path.Base(rel) != r.ID {
		return nil
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		// A hierarchy mounted from below its root (a cgroup namespace's
		// view) does not hold rel at mountpoint+rel.
		return (m.FSType != "cgroup" && m.FSType != "cgroup2") || m.Root != "/", false
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		if err := cgroups.RemovePath(filepath.Join(m.Mountpoint, rel)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
