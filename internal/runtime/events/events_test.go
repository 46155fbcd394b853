package events

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
)

// TestConvertJSON checks the JSON names of the fields that a container on
// the CI host leaves empty (throttling, blkio, hugetlb, PSI), so that the
// end-to-end comparison with runc's output cannot see them: runc's tags
// are mixed case and one is misspelt, and a parser keys on them.
func TestConvertJSON(t *testing.T) {
	cg := cgroups.NewStats()
	cg.CpuStats.ThrottlingData = cgroups.ThrottlingData{Periods: 1, ThrottledPeriods: 2, ThrottledTime: 3}
	cg.CpuStats.CpuUsage = cgroups.CpuUsage{TotalUsage: 4, PercpuUsage: []uint64{4}, PercpuUsageInKernelmode: []uint64{1}, PercpuUsageInUsermode: []uint64{3}}
	cg.CpuStats.PSI = &cgroups.PSIStats{Some: cgroups.PSIData{Avg10: 1.5, Total: 7}}
	entry := []cgroups.BlkioStatEntry{{Major: 8, Minor: 0, Op: "Read", Value: 512}}
	cg.BlkioStats = cgroups.BlkioStats{IoServiceBytesRecursive: entry, IoQueuedRecursive: entry}
	cg.HugetlbStats["2MB"] = cgroups.HugetlbStats{Usage: 1, MaxUsage: 2, Failcnt: 3}
	cg.MemoryStats.KernelTCPUsage = cgroups.MemoryData{Usage: 5, MaxUsage: 6, Limit: 7}
	b, err := json.Marshal(&Event{Type: TypeStats, ID: "c", Data: Convert(cg)})
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		`"throttling":{"periods":1,"throttledPeriods":2,"throttledTime":3}`,
		`"percpu_kernel":[1],"percpu_user":[3]`,
		`"psi":{"some":{"avg10":1.5,"avg60":0,"avg300":0,"total":7},"full":{"avg10":0,"avg60":0,"avg300":0,"total":0}}`,
		`"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":512}]`,
		`"ioQueueRecursive":[`,
		`"hugetlb":{"2MB":{"usage":1,"max":2,"failcnt":3}}`,
		`"kernelTCP":{"limit":7,"usage":5,"max":6,"failcnt":0}`,
		`"intel_rdt":{},"network_interfaces":null`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("converted stats lack %s:\n%s", want, got)
		}
	}
	if b, _ := json.Marshal(&Event{Type: TypeOOM, ID: "c"}); string(b) != `{"type":"oom","id":"c"}` {
		t.Errorf("oom event is %s, want runc's {\"type\":\"oom\",\"id\":\"c\"}", b)
	}
}
