package cgroups

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/cgroups"
)

// fileFields maps the cgroup files the library writes (v1 and v2) to the
// config.json fields they come from, so that a limit the kernel refuses is
// reported against what the user wrote, not a file they never named.
// Longer names come first where one is a prefix of another.
var fileFields = []struct{ file, field string }{
	{"cpuset.cpus", "linux.resources.cpu.cpus"},
	{"cpuset.mems", "linux.resources.cpu.mems"},
	{"cpu.shares", "linux.resources.cpu.shares"},
	{"cpu.weight", "linux.resources.cpu.shares"},
	{"cpu.cfs_quota_us", "linux.resources.cpu.quota"},
	{"cpu.cfs_period_us", "linux.resources.cpu.period"},
	{"cpu.cfs_burst_us", "linux.resources.cpu.burst"},
	{"cpu.max.burst", "linux.resources.cpu.burst"},
	{"cpu.max", "linux.resources.cpu.quota/period"},
	{"cpu.rt_runtime_us", "linux.resources.cpu.realtimeRuntime"},
	{"cpu.rt_period_us", "linux.resources.cpu.realtimePeriod"},
	{"cpu.idle", "linux.resources.cpu.idle"},
	{"memory.memsw.limit_in_bytes", "linux.resources.memory.swap"},
	{"memory.swap.max", "linux.resources.memory.swap"},
	{"memory.limit_in_bytes", "linux.resources.memory.limit"},
	{"memory.max", "linux.resources.memory.limit"},
	{"memory.soft_limit_in_bytes", "linux.resources.memory.reservation"},
	{"memory.low", "linux.resources.memory.reservation"},
	{"memory.swappiness", "linux.resources.memory.swappiness"},
	{"memory.oom_control", "linux.resources.memory.disableOOMKiller"},
	{"pids.max", "linux.resources.pids.limit"},
	{"blkio.weight_device", "linux.resources.blockIO.weightDevice"},
	{"blkio.bfq.weight_device", "linux.resources.blockIO.weightDevice"},
	{"blkio.leaf_weight_device", "linux.resources.blockIO.weightDevice"},
	{"blkio.leaf_weight", "linux.resources.blockIO.leafWeight"},
	{"blkio.bfq.weight", "linux.resources.blockIO.weight"},
	{"blkio.weight", "linux.resources.blockIO.weight"},
	{"blkio.throttle.read_bps_device", "linux.resources.blockIO.throttleReadBpsDevice"},
	{"blkio.throttle.write_bps_device", "linux.resources.blockIO.throttleWriteBpsDevice"},
	{"blkio.throttle.read_iops_device", "linux.resources.blockIO.throttleReadIOPSDevice"},
	{"blkio.throttle.write_iops_device", "linux.resources.blockIO.throttleWriteIOPSDevice"},
	{"io.bfq.weight", "linux.resources.blockIO.weight/weightDevice"},
	{"io.weight", "linux.resources.blockIO.weight/weightDevice"},
	{"io.max", "linux.resources.blockIO.throttle*"},
	{"hugetlb.", "linux.resources.hugepageLimits"},
	{"net_cls.classid", "linux.resources.network.classID"},
	{"net_prio.ifpriomap", "linux.resources.network.priorities"},
	{"devices.", "linux.resources.devices"},
	{"rdma.", "linux.resources.rdma"},
	// Checks the library makes before writing.
	{"swap limit", "linux.resources.memory.swap"},
	{"memory limit", "linux.resources.memory.limit"},
}

// missingController finds the library's error for a limit on a controller
// that the host does not mount, "cannot set NAME limit: container could not
// join or create cgroup", and returns NAME. It is plain string matching (the
// regexp `cannot set (\S+) limit: ...` it replaces kept package regexp, and
// its compile at start, in every berth-runtime process).
func missingController(msg string) (string, bool) {
	const pre, post = "cannot set ", " limit: container could not join or create cgroup"
	for i := strings.Index(msg, pre); i >= 0; {
		rest := msg[i+len(pre):]
		n := strings.IndexFunc(rest, isRE2Space)
		if n > 0 && strings.HasPrefix(rest[n:], post) {
			return rest[:n], true
		}
		next := strings.Index(rest, pre)
		if next < 0 {
			break
		}
		i += len(pre) + next
	}
	return "", false
}

// isRE2Space is RE2's \s: ASCII space, \t, \n, \f, \r.
func isRE2Space(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\f' || r == '\r'
}

var controllerFields = map[string]string{
	"net_cls": "linux.resources.network.classID", "net_prio": "linux.resources.network.priorities",
	"hugetlb": "linux.resources.hugepageLimits", "rdma": "linux.resources.rdma",
	"blkio": "linux.resources.blockIO", "memory": "linux.resources.memory", "pids": "linux.resources.pids",
	"cpu": "linux.resources.cpu", "cpuset": "linux.resources.cpu.cpus/mems", "devices": "linux.resources.devices",
}

// fieldError names the config.json field behind a failed cgroup write.
func fieldError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, cgroups.ErrV1NoUnified) {
		return fmt.Errorf("linux.resources.unified: this host has no cgroup v2 hierarchy for its controllers (cgroup v1), so raw v2 keys cannot be applied: %w", err)
	}
	msg := err.Error()
	if name, ok := missingController(msg); ok {
		field := controllerFields[name]
		if field == "" {
			field = "linux.resources"
		}
		return fmt.Errorf("%s: this host has no %s cgroup controller to apply it with: %w", field, name, err)
	}
	for _, f := range fileFields {
		if strings.Contains(msg, "/"+f.file) || strings.Contains(msg, " "+f.file) || strings.HasPrefix(msg, f.file) {
			return fmt.Errorf("%s: the kernel refused the value: %w", f.field, err)
		}
	}
	return err
}
