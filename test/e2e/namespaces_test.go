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

// TestJoinOtherContainerUserns: a container joining another container's
// user namespace by path runs as root of it, and can set up its own mounts
// (runc userns.bats "userns join other container userns"); before, it
// kept the host uid, unmapped there, and mkdir of /dev/pts failed with
// EOVERFLOW.
func TestJoinOtherContainerUserns(t *testing.T) {
	rt := newRuntime(t)
	mapping := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	ns := append(testutil.DefaultSpec().Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	target := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), testutil.WithNamespaces(ns...), testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.UIDMappings = mapping
		s.Linux.GIDMappings = mapping
	}))
	tid := rt.NewID("usernstarget")
	rt.Run(tid, target.Dir, "-d").OK(t)
	userns := fmt.Sprintf("/proc/%d/ns/user", rt.Pid(tid))
	joinNs := append(testutil.DefaultSpec().Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: userns})
	b := testutil.NewBundle(t, testutil.WithShell(`id -u; cat /proc/self/uid_map`), testutil.WithNamespaces(joinNs...))
	res := rt.Run(rt.NewID("usernsjoin"), b.Dir)
	if f := strings.Fields(res.Stdout); res.ExitCode != 0 || len(f) != 4 || f[0] != "0" || f[2] != "100000" {
		t.Errorf("run in the user namespace of another container: %s; want uid 0 and its map 0 100000 65536", res)
	}
	rt.Delete(tid, "--force").OK(t)
}
