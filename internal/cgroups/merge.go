package cgroups

import (
	"maps"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Merge returns base with the limits that upd sets, for `update`. As in
// runc, a field that upd leaves out or sets to zero keeps its value (zero
// is how runc's flags say "not given"); devices are not updatable, and
// unified keys are merged key by key. base is not modified.
func Merge(base, upd *specs.LinuxResources) *specs.LinuxResources {
	out := &specs.LinuxResources{}
	if base != nil {
		c := *base
		out = &c
		if base.Memory != nil {
			m := *base.Memory
			out.Memory = &m
		}
		if base.CPU != nil {
			c := *base.CPU
			out.CPU = &c
		}
		if base.Pids != nil {
			p := *base.Pids
			out.Pids = &p
		}
		if base.BlockIO != nil {
			b := *base.BlockIO
			out.BlockIO = &b
		}
		if base.Network != nil {
			n := *base.Network
			out.Network = &n
		}
		out.Unified = maps.Clone(base.Unified)
	}
	if upd == nil {
		return out
	}
	if m := upd.Memory; m != nil {
		if out.Memory == nil {
			out.Memory = &specs.LinuxMemory{}
		}
		setI64(&out.Memory.Limit, m.Limit)
		setI64(&out.Memory.Reservation, m.Reservation)
		setI64(&out.Memory.Swap, m.Swap)
		setU64(&out.Memory.Swappiness, m.Swappiness)
		if m.CheckBeforeUpdate != nil {
			out.Memory.CheckBeforeUpdate = m.CheckBeforeUpdate
		}
		if m.DisableOOMKiller != nil {
			out.Memory.DisableOOMKiller = m.DisableOOMKiller
		}
	}
	if c := upd.CPU; c != nil {
		if out.CPU == nil {
			out.CPU = &specs.LinuxCPU{}
		}
		setU64(&out.CPU.Shares, c.Shares)
		setI64(&out.CPU.Quota, c.Quota)
		if c.Burst != nil {
			// 0 is a burst too (none), unlike the fields above.
			b := *c.Burst
			out.CPU.Burst = &b
		}
		setU64(&out.CPU.Period, c.Period)
		setI64(&out.CPU.RealtimeRuntime, c.RealtimeRuntime)
		setU64(&out.CPU.RealtimePeriod, c.RealtimePeriod)
		if c.Cpus != "" {
			out.CPU.Cpus = c.Cpus
		}
		if c.Mems != "" {
			out.CPU.Mems = c.Mems
		}
		if c.Idle != nil {
			out.CPU.Idle = c.Idle
		}
	}
	if p := upd.Pids; p != nil && p.Limit != nil && *p.Limit != 0 {
		l := *p.Limit
		out.Pids = &specs.LinuxPids{Limit: &l}
	}
	if b := upd.BlockIO; b != nil {
		if out.BlockIO == nil {
			out.BlockIO = &specs.LinuxBlockIO{}
		}
		if b.Weight != nil && *b.Weight != 0 {
			w := *b.Weight
			out.BlockIO.Weight = &w
		}
		if b.LeafWeight != nil && *b.LeafWeight != 0 {
			w := *b.LeafWeight
			out.BlockIO.LeafWeight = &w
		}
		if b.WeightDevice != nil {
			out.BlockIO.WeightDevice = b.WeightDevice
		}
		if b.ThrottleReadBpsDevice != nil {
			out.BlockIO.ThrottleReadBpsDevice = b.ThrottleReadBpsDevice
		}
		if b.ThrottleWriteBpsDevice != nil {
			out.BlockIO.ThrottleWriteBpsDevice = b.ThrottleWriteBpsDevice
		}
		if b.ThrottleReadIOPSDevice != nil {
			out.BlockIO.ThrottleReadIOPSDevice = b.ThrottleReadIOPSDevice
		}
		if b.ThrottleWriteIOPSDevice != nil {
			out.BlockIO.ThrottleWriteIOPSDevice = b.ThrottleWriteIOPSDevice
		}
	}
	if upd.HugepageLimits != nil {
		out.HugepageLimits = upd.HugepageLimits
	}
	if n := upd.Network; n != nil {
		if out.Network == nil {
			out.Network = &specs.LinuxNetwork{}
		}
		if n.ClassID != nil {
			out.Network.ClassID = n.ClassID
		}
		if n.Priorities != nil {
			out.Network.Priorities = n.Priorities
		}
	}
	if len(upd.Unified) > 0 {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		maps.Copy(out.Unified, upd.Unified)
	}
	return out
}

func setI64(dst **int64, v *int64) {
	if v != nil && *v != 0 {
		x := *v
		*dst = &x
	}
}

func setU64(dst **uint64, v *uint64) {
	if v != nil && *v != 0 {
		x := *v
		*dst = &x
	}
}
