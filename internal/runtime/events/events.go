// Package events defines what `berth-runtime events` prints: runc's event
// JSON, one object per line, with runc's stats shape (runc's types.Stats)
// field for field and tag for tag, so that parsers written for runc (go-runc
// in containerd, Podman) read it unchanged. The types are our own rather
// than runc's so that the runtime does not depend on runc's module; Convert
// fills them from the statistics of a container's cgroup.
package events

import "github.com/opencontainers/cgroups"

// Event types, as runc names them.
const (
	TypeStats = "stats"
	TypeOOM   = "oom"
)

// Event is one line of output: a stats event carries Stats in Data, an oom
// event has no data.
type Event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data *Stats `json:"data,omitempty"`
}

// Stats is runc's types.Stats. Fields without omitempty are always printed,
// as runc prints them, so the top-level keys are the same for every
// container.
type Stats struct {
	CPU               CPU                 `json:"cpu"`
	CPUSet            CPUSet              `json:"cpuset"`
	Memory            Memory              `json:"memory"`
	Pids              Pids                `json:"pids"`
	Blkio             Blkio               `json:"blkio"`
	Hugetlb           map[string]Hugetlb  `json:"hugetlb"`
	IntelRdt          IntelRdt            `json:"intel_rdt"`
	NetworkInterfaces []*NetworkInterface `json:"network_interfaces"`
}

// PSIData is one line of a cgroup v2 *.pressure file.
type PSIData struct {
	Avg10  float64 `json:"avg10"`
	Avg60  float64 `json:"avg60"`
	Avg300 float64 `json:"avg300"`
	Total  uint64  `json:"total"`
}

// PSIStats is a cgroup v2 *.pressure file.
type PSIStats struct {
	Some PSIData `json:"some"`
	Full PSIData `json:"full"`
}

type Hugetlb struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

// Blkio's tags are camelCase, unlike the rest; "ioQueueRecursive" (not
// Queued) is runc's spelling.
type Blkio struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
	IoQueuedRecursive       []BlkioEntry `json:"ioQueueRecursive,omitempty"`
	IoServiceTimeRecursive  []BlkioEntry `json:"ioServiceTimeRecursive,omitempty"`
	IoWaitTimeRecursive     []BlkioEntry `json:"ioWaitTimeRecursive,omitempty"`
	IoMergedRecursive       []BlkioEntry `json:"ioMergedRecursive,omitempty"`
	IoTimeRecursive         []BlkioEntry `json:"ioTimeRecursive,omitempty"`
	SectorsRecursive        []BlkioEntry `json:"sectorsRecursive,omitempty"`
	PSI                     *PSIStats    `json:"psi,omitempty"`
}

type Pids struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

// CPUUsage is in nanoseconds.
type CPUUsage struct {
	Total        uint64   `json:"total,omitempty"`
	Percpu       []uint64 `json:"percpu,omitempty"`
	PercpuKernel []uint64 `json:"percpu_kernel,omitempty"`
	PercpuUser   []uint64 `json:"percpu_user,omitempty"`
	Kernel       uint64   `json:"kernel"`
	User         uint64   `json:"user"`
}

type CPU struct {
	Usage      CPUUsage   `json:"usage,omitempty"`
	Throttling Throttling `json:"throttling,omitempty"`
	PSI        *PSIStats  `json:"psi,omitempty"`
}

type CPUSet struct {
	CPUs                  []uint16 `json:"cpus,omitempty"`
	CPUExclusive          uint64   `json:"cpu_exclusive"`
	Mems                  []uint16 `json:"mems,omitempty"`
	MemHardwall           uint64   `json:"mem_hardwall"`
	MemExclusive          uint64   `json:"mem_exclusive"`
	MemoryMigrate         uint64   `json:"memory_migrate"`
	MemorySpreadPage      uint64   `json:"memory_spread_page"`
	MemorySpreadSlab      uint64   `json:"memory_spread_slab"`
	MemoryPressure        uint64   `json:"memory_pressure"`
	SchedLoadBalance      uint64   `json:"sched_load_balance"`
	SchedRelaxDomainLevel int64    `json:"sched_relax_domain_level"`
}

type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

type Memory struct {
	Cache     uint64            `json:"cache,omitempty"`
	Usage     MemoryEntry       `json:"usage,omitempty"`
	Swap      MemoryEntry       `json:"swap,omitempty"`
	Kernel    MemoryEntry       `json:"kernel,omitempty"`
	KernelTCP MemoryEntry       `json:"kernelTCP,omitempty"`
	Raw       map[string]uint64 `json:"raw,omitempty"`
	PSI       *PSIStats         `json:"psi,omitempty"`
}

// IntelRdt is always empty: berth-runtime refuses linux.intelRdt. It is
// here so that the key is printed as runc prints it for a container
// without RDT ({}).
type IntelRdt struct{}

// NetworkInterface is the counters of an interface the runtime set up;
// runc fills them only for interfaces it configured itself, which an OCI
// bundle never asks for, so berth-runtime (like runc) prints null.
type NetworkInterface struct {
	Name      string
	RxBytes   uint64
	RxPackets uint64
	RxErrors  uint64
	RxDropped uint64
	TxBytes   uint64
	TxPackets uint64
	TxErrors  uint64
	TxDropped uint64
}

// Convert turns a cgroup's statistics into runc's stats shape, as runc's
// convertLibcontainerStats does.
func Convert(cg *cgroups.Stats) *Stats {
	if cg == nil {
		return nil
	}
	cpu, mem := cg.CpuStats, cg.MemoryStats
	s := &Stats{
		CPU: CPU{
			Usage: CPUUsage{
				Total:        cpu.CpuUsage.TotalUsage,
				Percpu:       cpu.CpuUsage.PercpuUsage,
				PercpuKernel: cpu.CpuUsage.PercpuUsageInKernelmode,
				PercpuUser:   cpu.CpuUsage.PercpuUsageInUsermode,
				Kernel:       cpu.CpuUsage.UsageInKernelmode,
				User:         cpu.CpuUsage.UsageInUsermode,
			},
			Throttling: Throttling{
				Periods:          cpu.ThrottlingData.Periods,
				ThrottledPeriods: cpu.ThrottlingData.ThrottledPeriods,
				ThrottledTime:    cpu.ThrottlingData.ThrottledTime,
			},
			PSI: convertPSI(cpu.PSI),
		},
		CPUSet: CPUSet(cg.CPUSetStats),
		Memory: Memory{
			Cache:     mem.Cache,
			Usage:     convertMemory(mem.Usage),
			Swap:      convertMemory(mem.SwapUsage),
			Kernel:    convertMemory(mem.KernelUsage),
			KernelTCP: convertMemory(mem.KernelTCPUsage),
			Raw:       mem.Stats,
			PSI:       convertPSI(mem.PSI),
		},
		Pids: Pids{Current: cg.PidsStats.Current, Limit: cg.PidsStats.Limit},
		Blkio: Blkio{
			IoServiceBytesRecursive: convertBlkio(cg.BlkioStats.IoServiceBytesRecursive),
			IoServicedRecursive:     convertBlkio(cg.BlkioStats.IoServicedRecursive),
			IoQueuedRecursive:       convertBlkio(cg.BlkioStats.IoQueuedRecursive),
			IoServiceTimeRecursive:  convertBlkio(cg.BlkioStats.IoServiceTimeRecursive),
			IoWaitTimeRecursive:     convertBlkio(cg.BlkioStats.IoWaitTimeRecursive),
			IoMergedRecursive:       convertBlkio(cg.BlkioStats.IoMergedRecursive),
			IoTimeRecursive:         convertBlkio(cg.BlkioStats.IoTimeRecursive),
			SectorsRecursive:        convertBlkio(cg.BlkioStats.SectorsRecursive),
			PSI:                     convertPSI(cg.BlkioStats.PSI),
		},
		// Never nil: runc prints {} for a host without hugetlb stats.
		Hugetlb: make(map[string]Hugetlb, len(cg.HugetlbStats)),
	}
	for size, h := range cg.HugetlbStats {
		s.Hugetlb[size] = Hugetlb{Usage: h.Usage, Max: h.MaxUsage, Failcnt: h.Failcnt}
	}
	return s
}

func convertMemory(m cgroups.MemoryData) MemoryEntry {
	return MemoryEntry{Limit: m.Limit, Usage: m.Usage, Max: m.MaxUsage, Failcnt: m.Failcnt}
}

func convertBlkio(in []cgroups.BlkioStatEntry) []BlkioEntry {
	var out []BlkioEntry
	for _, e := range in {
		out = append(out, BlkioEntry(e))
	}
	return out
}

func convertPSI(p *cgroups.PSIStats) *PSIStats {
	if p == nil {
		return nil
	}
	return &PSIStats{Some: PSIData(p.Some), Full: PSIData(p.Full)}
}
