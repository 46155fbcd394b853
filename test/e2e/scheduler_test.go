package e2e

import (
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// TestDeadlineSchedulerWithCpus: the kernel refuses SCHED_DEADLINE to a
// task not allowed its whole root domain, so a config with a deadline
// scheduler and linux.resources.cpu.cpus fails create with an error that
// says why, in runc's words (runc scheduler.bats "scheduler vs cpus"),
// and leaves nothing.
func TestDeadlineSchedulerWithCpus(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs: with one, cpus \"0\" is the whole root domain and the kernel grants the scheduler")
	}
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Nice: 19, Runtime: 42000, Deadline: 1000000, Period: 1000000}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: "0"}
	}))
	id := rt.NewID("schedcpus")
	res := rt.Create(id, b.Dir)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "process.scheduler") ||
		!strings.Contains(res.Stderr, "process scheduler can't be used together with AllowedCPUs") {
		t.Errorf("create with SCHED_DEADLINE and cpus \"0\": want a failure naming process.scheduler and the cpus: %s", res)
	}
	checkCreateLeftNothing(t, rt, id, b)
}
