package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// TestKillSignalZero: `kill ID 0` checks that the container runs, as
// kill(2) does: it succeeds while it runs, fails with "container not
// running" once it stopped, and with --all still succeeds (runc kill.bats).
func TestKillSignalZero(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("kill0")
	rt.Run(id, b.Dir, "-d").OK(t)
	rt.Kill(id, "0").OK(t)
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
	res := rt.Kill(id, "0")
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "container not running") {
		t.Errorf("kill 0 of a stopped container: want a failure saying \"container not running\": %s", res)
	}
	rt.Kill(id, "0", "--all").OK(t)
	rt.Delete(id).OK(t)
}

// TestKillHostPidNamespace: without a pid namespace of its own, a
// container's other processes outlive its init, so `kill ID KILL` kills
// every process of its cgroup, also once the init is gone (runc kill.bats
// "kill KILL [host pidns]" and "[host pidns + init gone]").
func TestKillHostPidNamespace(t *testing.T) {
	for _, initGone := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "init-gone"}[initGone], func(t *testing.T) {
			rt := newRuntime(t)
			b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), testutil.WithSpec(func(s *specs.Spec) {
				var keep []specs.LinuxNamespace
				for _, ns := range s.Linux.Namespaces {
					if ns.Type != specs.PIDNamespace {
						keep = append(keep, ns)
					}
				}
				s.Linux.Namespaces = keep
			}))
			id := rt.NewID("killhp")
			rt.Run(id, b.Dir, "-d").OK(t)
			var pids []int
			for i := 0; i < 3; i++ {
				rt.Exec(id, []string{"-d"}, "sleep", "1000").OK(t)
			}
			for _, f := range strings.Fields(rt.Do("ps", "--format", "json", id).OK(t).Stdout) {
				f = strings.Trim(f, "[],")
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			if len(pids) != 4 {
				t.Fatalf("ps: want the init and 3 exec'd processes, got %v", pids)
			}
			if initGone {
				unix.Kill(rt.Pid(id), unix.SIGKILL)
				rt.Wait(id)
			}
			rt.Kill(id, "KILL").OK(t)
			for _, pid := range pids {
				waitFor(t, fmt.Sprintf("process %d to die", pid), func() bool { return !livePid(pid) })
			}
			rt.Delete(id).OK(t)
		})
	}
}

// livePid says whether pid runs (a zombie has died).
func livePid(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
