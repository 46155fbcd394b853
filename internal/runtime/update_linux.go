package runtime

import (
	"context"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/cgroups"
)

// Update changes the cgroup limits of a container that has not stopped:
// the limits in upd are merged into the container's (see cgroups.Merge),
// written to its cgroup, and kept in its state so that later updates and
// `events` see them. Nothing is saved if the kernel refuses a value.
func (r *Runtime) Update(ctx context.Context, id string, upd *specs.LinuxResources) error {
	p, err := r.load(id)
	if err != nil {
		return err
	}
	unlock, err := lockDir(r.dir(id))
	if err != nil {
		return err
	}
	defer unlock()
	if st := r.status(p); st == specs.StateStopped {
		return fmt.Errorf("cannot update container %s: it is stopped", id)
	}
	if p.Spec.Linux == nil {
		p.Spec.Linux = &specs.Linux{}
	}
	merged := cgroups.Merge(p.Spec.Linux.Resources, upd)
	cg, err := r.cgroupOf(p)
	if err != nil {
		return err
	}
	if err := cg.Set(merged); err != nil {
		// The kernel may have taken some values before refusing one:
		// put the old limits back, as runc does.
		if rerr := cg.Set(p.Spec.Linux.Resources); rerr != nil {
			return fmt.Errorf("update container %s: %w (and restoring the previous limits failed: %v)", id, err, rerr)
		}
		return fmt.Errorf("update container %s: %w", id, err)
	}
	p.Spec.Linux.Resources = merged
	return r.save(p)
}
