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
	if err := cg.Set(withoutKeptShares(merged, upd)); err != nil {
		// The kernel may have taken some values before refusing one:
		// put the old limits back, as runc does.
		if rerr := cg.Set(withoutKeptShares(p.Spec.Linux.Resources, upd)); rerr != nil {
			return fmt.Errorf("update container %s: %w (and restoring the previous limits failed: %v)", id, err, rerr)
		}
		return fmt.Errorf("update container %s: %w", id, err)
	}
	p.Spec.Linux.Resources = merged
	return r.save(p)
}

// withoutKeptShares is res without cpu.shares unless upd gives them. The
// cgroup keeps the shares it has, and the kernel refuses any write of them
// while the group is SCHED_IDLE (cpu.idle 1): writing them again would make
// every update of an idle container fail, the one that clears cpu.idle
// included (runc update.bats "update cgroup cpu.idle").
func withoutKeptShares(res, upd *specs.LinuxResources) *specs.LinuxResources {
	if res == nil || res.CPU == nil || res.CPU.Shares == nil || (upd != nil && upd.CPU != nil && upd.CPU.Shares != nil) {
		return res
	}
	out, cpu := *res, *res.CPU
	cpu.Shares = nil
	out.CPU = &cpu
	return &out
}
