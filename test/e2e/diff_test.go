package e2e

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The differential tests run the same bundle under Debian's runc and under
// the runtime under test, and compare what a container manager or the
// container sees. Against runc itself they pass trivially.

const runcPath = "/usr/sbin/runc"

// bothRuntimes returns drivers for runc and the runtime under test.
func bothRuntimes(t *testing.T) (runc, under *testutil.Runtime) {
	t.Helper()
	under = newRuntime(t)
	if _, err := os.Stat(runcPath); err != nil {
		t.Skip("requires runc (Debian package runc)")
	}
	return testutil.NewRuntime(t, runcPath), under
}

// runBoth runs the same bundle in the foreground under both runtimes.
func runBoth(t *testing.T, short string, opts ...testutil.BundleOption) (runc, under testutil.Result) {
	t.Helper()
	rc, ru := bothRuntimes(t)
	b := testutil.NewBundle(t, opts...)
	return rc.Run(rc.NewID(short), b.Dir), ru.Run(ru.NewID(short), b.Dir)
}

func TestDiffStateShape(t *testing.T) {
	rc, ru := bothRuntimes(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	shape := func(rt *testutil.Runtime) map[string]string {
		id := rt.NewID("diffstate")
		rt.Create(id, b.Dir).OK(t)
		m := map[string]string{}
		for k, v := range rt.State(id).Raw {
			m[k] = fmt.Sprintf("%T", v)
		}
		return m
	}
	if want, got := shape(rc), shape(ru); !reflect.DeepEqual(want, got) {
		t.Errorf("state JSON keys and types differ:\nrunc:  %v\nunder test: %v", want, got)
	}
}

func TestDiffExitCodes(t *testing.T) {
	rc, ru := bothRuntimes(t)
	for _, args := range [][]string{
		{"true"}, {"false"}, {"sh", "-c", "exit 7"}, {"sh", "-c", "exit 255"},
		{"/berth/no/such/program"}, {"/etc/passwd"},
	} {
		b := testutil.NewBundle(t, testutil.WithArgs(args...))
		want := rc.Run(rc.NewID("diffexit"), b.Dir).ExitCode
		got := ru.Run(ru.NewID("diffexit"), b.Dir).ExitCode
		if want != got {
			t.Errorf("run %q: exit %d, runc exits %d", args, got, want)
		}
	}
}

func TestDiffProcStatus(t *testing.T) {
	umask := uint32(0o022)
	rcRes, ruRes := runBoth(t, "diffstatus", testutil.WithShell(procStatus),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5}, Umask: &umask}
		}))
	pick := func(out string) []string {
		var lines []string
		for _, f := range []string{"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"} {
			lines = append(lines, f+": "+statusField(out, f))
		}
		return lines
	}
	if want, got := pick(rcRes.Stdout), pick(ruRes.Stdout); !reflect.DeepEqual(want, got) {
		t.Errorf("/proc/self/status differs:\nrunc:       %q\nunder test: %q", want, got)
	}
}

// normMountinfo keeps, of each mountinfo line, the mount point, its options,
// the fstype and the super options: not the ids, which differ every run.
func normMountinfo(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 3 {
			lines = append(lines, l)
			continue
		}
		lines = append(lines, strings.Join([]string{f[4], f[5], g[0], g[2]}, " "))
	}
	return lines
}

func TestDiffMounts(t *testing.T) {
	rcRes, ruRes := runBoth(t, "diffmounts", testutil.WithShell("cat /proc/self/mountinfo"))
	want, got := normMountinfo(rcRes.Stdout), normMountinfo(ruRes.Stdout)
	if !reflect.DeepEqual(want, got) {
		t.Errorf("mounts differ:\nrunc:\n%s\nunder test:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

func TestDiffDev(t *testing.T) {
	rcRes, ruRes := runBoth(t, "diffdev", testutil.WithShell("ls -la /dev | awk '{print $1, $5, $6, $NF}'"))
	norm := func(s string) []string {
		l := strings.Split(strings.TrimSpace(s), "\n")
		sort.Strings(l)
		return l
	}
	if want, got := norm(rcRes.Stdout), norm(ruRes.Stdout); !reflect.DeepEqual(want, got) {
		t.Errorf("/dev differs:\nrunc:\n%s\nunder test:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}
