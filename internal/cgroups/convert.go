package cgroups

import (
	"fmt"
	"strings"

	"github.com/opencontainers/cgroups"
	devices "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// allowedDevices are always reachable in a container, after the spec's own
// rules, as runc and Docker allow them: the standard /dev nodes, ptys, and
// mknod (but not use) of any device.
var allowedDevices = []devices.Rule{
	{Type: devices.CharDevice, Major: devices.Wildcard, Minor: devices.Wildcard, Permissions: "m", Allow: true},
	{Type: devices.BlockDevice, Major: devices.Wildcard, Minor: devices.Wildcard, Permissions: "m", Allow: true},
	{Type: devices.CharDevice, Major: 1, Minor: 3, Permissions: "rwm", Allow: true},                  // null
	{Type: devices.CharDevice, Major: 1, Minor: 8, Permissions: "rwm", Allow: true},                  // random
	{Type: devices.CharDevice, Major: 1, Minor: 7, Permissions: "rwm", Allow: true},                  // full
	{Type: devices.CharDevice, Major: 5, Minor: 0, Permissions: "rwm", Allow: true},                  // tty
	{Type: devices.CharDevice, Major: 1, Minor: 5, Permissions: "rwm", Allow: true},                  // zero
	{Type: devices.CharDevice, Major: 1, Minor: 9, Permissions: "rwm", Allow: true},                  // urandom
	{Type: devices.CharDevice, Major: 136, Minor: devices.Wildcard, Permissions: "rwm", Allow: true}, // pts
	{Type: devices.CharDevice, Major: 5, Minor: 2, Permissions: "rwm", Allow: true},                  // ptmx
}

// ConvertResources turns spec resources into the cgroup library's form. A
// nil spec gives the default device rules only. The library converts blkio
// weights and swap itself when it writes a v2 hierarchy, but not cpu
// shares ("conversion is the caller's responsibility"): like runc's
// specconv, CpuWeight is set from shares here, and v1 ignores it.
func ConvertResources(r *specs.LinuxResources) (*cgroups.Resources, error) {
	res := &cgroups.Resources{}
	if r == nil {
		r = &specs.LinuxResources{}
	}
	for i, d := range r.Devices {
		rule, err := deviceRule(d)
		if err != nil {
			return nil, fmt.Errorf("linux.resources.devices[%d]: %w", i, err)
		}
		res.Devices = append(res.Devices, rule)
	}
	for i := range allowedDevices {
		rule := allowedDevices[i]
		res.Devices = append(res.Devices, &rule)
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			res.Memory = *m.Limit
		}
		if m.Reservation != nil {
			res.MemoryReservation = *m.Reservation
		}
		if m.Swap != nil {
			res.MemorySwap = *m.Swap
		}
		if m.Swappiness != nil {
			if *m.Swappiness > 100 {
				return nil, fmt.Errorf("linux.resources.memory.swappiness: %d is above 100", *m.Swappiness)
			}
			res.MemorySwappiness = m.Swappiness
		}
		if m.DisableOOMKiller != nil {
			res.OomKillDisable = *m.DisableOOMKiller
		}
		if m.CheckBeforeUpdate != nil {
			res.MemoryCheckBeforeUpdate = *m.CheckBeforeUpdate
		}
		if m.Kernel != nil || m.KernelTCP != nil {
			// Deprecated in the spec and gone from recent kernels; runc ignores them too.
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			if *c.Shares != 0 && (*c.Shares < 2 || *c.Shares > 262144) {
				return nil, fmt.Errorf("linux.resources.cpu.shares: %d is outside 2..262144", *c.Shares)
			}
			res.CpuShares = *c.Shares
			res.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(*c.Shares)
		}
		if c.Quota != nil {
			res.CpuQuota = *c.Quota
		}
		if c.Burst != nil {
			res.CpuBurst = c.Burst
		}
		if c.Period != nil {
			res.CpuPeriod = *c.Period
		}
		if c.RealtimeRuntime != nil {
			res.CpuRtRuntime = *c.RealtimeRuntime
		}
		if c.RealtimePeriod != nil {
			res.CpuRtPeriod = *c.RealtimePeriod
		}
		res.CpusetCpus = c.Cpus
		res.CpusetMems = c.Mems
		if c.Idle != nil {
			res.CPUIdle = c.Idle
		}
	}
	if p := r.Pids; p != nil {
		if p.Limit != nil {
			l := *p.Limit
			res.PidsLimit = &l
		}
	}
	if b := r.BlockIO; b != nil {
		if b.Weight != nil {
			if *b.Weight != 0 && (*b.Weight < 10 || *b.Weight > 1000) {
				return nil, fmt.Errorf("linux.resources.blockIO.weight: %d is outside 10..1000", *b.Weight)
			}
			res.BlkioWeight = *b.Weight
		}
		if b.LeafWeight != nil {
			res.BlkioLeafWeight = *b.LeafWeight
		}
		for i, wd := range b.WeightDevice {
			var w, lw uint16
			if wd.Weight != nil {
				w = *wd.Weight
			}
			if wd.LeafWeight != nil {
				lw = *wd.LeafWeight
			}
			if w != 0 && (w < 10 || w > 1000) {
				return nil, fmt.Errorf("linux.resources.blockIO.weightDevice[%d].weight: %d is outside 10..1000", i, w)
			}
			res.BlkioWeightDevice = append(res.BlkioWeightDevice, cgroups.NewWeightDevice(wd.Major, wd.Minor, w, lw))
		}
		res.BlkioThrottleReadBpsDevice = throttle(b.ThrottleReadBpsDevice)
		res.BlkioThrottleWriteBpsDevice = throttle(b.ThrottleWriteBpsDevice)
		res.BlkioThrottleReadIOPSDevice = throttle(b.ThrottleReadIOPSDevice)
		res.BlkioThrottleWriteIOPSDevice = throttle(b.ThrottleWriteIOPSDevice)
	}
	for _, h := range r.HugepageLimits {
		res.HugetlbLimit = append(res.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.Pagesize, Limit: h.Limit})
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			res.NetClsClassid = *n.ClassID
		}
		for _, p := range n.Priorities {
			res.NetPrioIfpriomap = append(res.NetPrioIfpriomap, &cgroups.IfPrioMap{Interface: p.Name, Priority: int64(p.Priority)})
		}
	}
	if len(r.Rdma) > 0 {
		res.Rdma = map[string]cgroups.LinuxRdma{}
		for k, v := range r.Rdma {
			res.Rdma[k] = cgroups.LinuxRdma{HcaHandles: v.HcaHandles, HcaObjects: v.HcaObjects}
		}
	}
	if len(r.Unified) > 0 {
		res.Unified = r.Unified
	}
	return res, nil
}

func throttle(in []specs.LinuxThrottleDevice) []*cgroups.ThrottleDevice {
	var out []*cgroups.ThrottleDevice
	for _, t := range in {
		out = append(out, cgroups.NewThrottleDevice(t.Major, t.Minor, t.Rate))
	}
	return out
}

func deviceRule(d specs.LinuxDeviceCgroup) (*devices.Rule, error) {
	t := devices.WildcardDevice
	switch d.Type {
	case "", "a":
	case "c":
		t = devices.CharDevice
	case "b":
		t = devices.BlockDevice
	default:
		return nil, fmt.Errorf("type: unknown device type %q (want a, c or b)", d.Type)
	}
	major, minor := int64(devices.Wildcard), int64(devices.Wildcard)
	if d.Major != nil {
		major = *d.Major
	}
	if d.Minor != nil {
		minor = *d.Minor
	}
	access := d.Access
	if access == "" {
		access = "rwm"
	}
	// Letters other than r, w and m mean nothing and are dropped, as runc
	// does (its own tests deny "rwa"); an access with none of the three
	// is refused, since the rule would say nothing.
	access = strings.Map(func(r rune) rune {
		if strings.ContainsRune("rwm", r) {
			return r
		}
		return -1
	}, access)
	if access == "" {
		return nil, fmt.Errorf("access: %q names none of r, w and m", d.Access)
	}
	perms := devices.Permissions(access)
	return &devices.Rule{Type: t, Major: major, Minor: minor, Permissions: perms, Allow: d.Allow}, nil
}
