package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// nsHolder starts a host process in new network and UTS namespaces (hostname
// berth-joined) and returns its pid; it is killed when t ends.
func nsHolder(t *testing.T) int {
	t.Helper()
	testutil.RequiresBinary(t, "unshare", "util-linux")
	cmd := exec.Command("unshare", "--net", "--uts", "sh", "-c", "hostname berth-joined && exec sleep 1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	waitFor(t, "the namespace holder to exec sleep", func() bool {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return strings.TrimSpace(string(comm)) == "sleep"
	})
	return pid
}

func TestJoinNamespacesByPath(t *testing.T) {
	rt := newRuntime(t)
	pid := nsHolder(t)
	netPath := fmt.Sprintf("/proc/%d/ns/net", pid)
	utsPath := fmt.Sprintf("/proc/%d/ns/uts", pid)
	out := runOut(t, rt, "joinns",
		testutil.WithShell("readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname"),
		testutil.WithNamespaces(
			specs.LinuxNamespace{Type: specs.PIDNamespace},
			specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netPath},
			specs.LinuxNamespace{Type: specs.IPCNamespace},
			specs.LinuxNamespace{Type: specs.UTSNamespace, Path: utsPath},
			specs.LinuxNamespace{Type: specs.MountNamespace},
		),
		// A hostname would be set in the joined namespace: leave it alone.
		testutil.WithSpec(func(s *specs.Spec) { s.Hostname = "" }))
	wantNet, _ := os.Readlink(netPath)
	wantUTS, _ := os.Readlink(utsPath)
	if got := strings.Fields(out); len(got) != 3 || got[0] != wantNet || got[1] != wantUTS || got[2] != "berth-joined" {
		t.Errorf("container namespaces and hostname %q, want %s %s berth-joined", got, wantNet, wantUTS)
	}
}
