package cgroups

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

func TestMergeKeepsWhatUpdateLeavesOut(t *testing.T) {
	base := &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: ptr(int64(32 << 20)), Swap: ptr(int64(64 << 20))},
		CPU:     &specs.LinuxCPU{Shares: ptr(uint64(512)), Cpus: "0"},
		Pids:    &specs.LinuxPids{Limit: ptr(int64(8))},
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Unified: map[string]string{"a": "1"},
	}
	upd := &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Swap: ptr(int64(0))},
		CPU:     &specs.LinuxCPU{Quota: ptr(int64(50000))},
		Pids:    &specs.LinuxPids{Limit: ptr(int64(20))},
		Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}},
		Unified: map[string]string{"b": "2"},
	}
	got := Merge(base, upd)
	if *got.Memory.Limit != 64<<20 || *got.Memory.Swap != 64<<20 {
		t.Errorf("memory = limit %d swap %d, want the new limit and the old swap (0 means unchanged)", *got.Memory.Limit, *got.Memory.Swap)
	}
	if *got.CPU.Shares != 512 || got.CPU.Cpus != "0" || *got.CPU.Quota != 50000 {
		t.Errorf("cpu = %+v, want shares and cpus kept, quota set", got.CPU)
	}
	if *got.Pids.Limit != 20 {
		t.Errorf("pids.limit = %d, want 20", *got.Pids.Limit)
	}
	if len(got.Devices) != 1 || got.Devices[0].Allow {
		t.Errorf("devices = %+v, want the original rules: update does not change devices", got.Devices)
	}
	if got.Unified["a"] != "1" || got.Unified["b"] != "2" {
		t.Errorf("unified = %v, want both keys", got.Unified)
	}
	if *base.Memory.Limit != 32<<20 || *base.Pids.Limit != 8 || len(base.Unified) != 1 {
		t.Errorf("Merge modified its base: %+v", base)
	}
}

func TestFieldErrorNamesTheConfigField(t *testing.T) {
	for _, tc := range []struct{ err, field string }{
		{`failed to write "999": write /sys/fs/cgroup/cpuset/x/cpuset.cpus: numerical result out of range`, "linux.resources.cpu.cpus"},
		{`failed to write "1": write /sys/fs/cgroup/x/memory.swap.max: invalid argument`, "linux.resources.memory.swap"},
		{`failed to write "1": write /sys/fs/cgroup/x/memory.max: device or resource busy`, "linux.resources.memory.limit"},
		{`failed to write "8:0 5": write /sys/fs/cgroup/blkio/x/blkio.weight_device: invalid argument`, "linux.resources.blockIO.weightDevice"},
		{`failed to write "5": write /sys/fs/cgroup/blkio/x/blkio.weight: invalid argument`, "linux.resources.blockIO.weight"},
		{`unable to set memory limit to 1 (current usage: 5)`, "linux.resources.memory.limit"},
		{`cannot set net_cls limit: container could not join or create cgroup`, "linux.resources.network.classID"},
		{`cannot set rdma limit: container could not join or create cgroup`, "linux.resources.rdma"},
	} {
		got := fieldError(errors.New(tc.err)).Error()
		if !strings.HasPrefix(got, tc.field+":") {
			t.Errorf("fieldError(%q) = %q, want it to start with %s", tc.err, got, tc.field)
		}
	}
	if got := fieldError(fmt.Errorf("new: %w", cgroups.ErrV1NoUnified)).Error(); !strings.HasPrefix(got, "linux.resources.unified:") {
		t.Errorf("unified on v1: %q", got)
	}
	if got := fieldError(errors.New("something else")).Error(); got != "something else" {
		t.Errorf("an unknown error was changed: %q", got)
	}
}

func TestSharesConvertToV2Weight(t *testing.T) {
	res, err := ConvertResources(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(512))}})
	if err != nil {
		t.Fatal(err)
	}
	// runc 1.3's quadratic mapping: 512 shares -> weight 59.
	if res.CpuShares != 512 || res.CpuWeight != 59 {
		t.Errorf("shares 512 -> CpuShares %d CpuWeight %d, want 512 and 59", res.CpuShares, res.CpuWeight)
	}
}

// A burst of 0 is a value (no burst), not "unchanged": `update --cpu-burst
// 0` takes a burst away (runc update.bats "cpu burst").
func TestMergeBurstZero(t *testing.T) {
	base := &specs.LinuxResources{CPU: &specs.LinuxCPU{Burst: ptr(uint64(500000)), Period: ptr(uint64(900000))}}
	got := Merge(base, &specs.LinuxResources{CPU: &specs.LinuxCPU{Burst: ptr(uint64(0))}})
	if got.CPU.Burst == nil || *got.CPU.Burst != 0 {
		t.Errorf("burst after an update to 0: %v, want 0", got.CPU.Burst)
	}
	got = Merge(base, &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(100))}})
	if got.CPU.Burst == nil || *got.CPU.Burst != 500000 {
		t.Errorf("burst after an update without one: %v, want 500000 kept", got.CPU.Burst)
	}
}
