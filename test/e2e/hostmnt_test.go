package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// withoutMountNS drops the mount namespace from the config: the container
// then shares the runtime's (runtime-tools linux_ns_itype).
func withoutMountNS() testutil.BundleOption {
	return testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
			return ns.Type == specs.MountNamespace
		})
	})
}

// rootMountLine returns the mountinfo line of the test's "/" with its
// mount id and propagation, to compare before and after.
func rootMountLine(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 6 && fields[4] == "/" {
			return sc.Text()
		}
	}
	return ""
}

func mountIDs(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			ids[f[0]] = true
		}
	}
	return ids
}

func TestNoMountNamespaceUsesHosts(t *testing.T) {
	rt := newRuntime(t)
	marker := fmt.Sprintf("marker-%d", os.Getpid())
	b := testutil.NewBundle(t, withoutMountNS(), testutil.WithShell("readlink /proc/self/ns/mnt; cat /"+marker),
		testutil.WithRootfs(func(rootfs string) error {
			return os.WriteFile(filepath.Join(rootfs, marker), []byte("in the rootfs\n"), 0o644)
		}))
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	rootBefore := rootMountLine(t)
	idsBefore := mountIDs(t)
	id := rt.NewID("hostmnt")
	rt.Create(id, b.Dir).OK(t)
	pid := rt.State(id).Pid

	// The config's mounts are where it says, in our mount table, under
	// the rootfs and nowhere else.
	under := testutil.MountsUnder(b.Rootfs)
	if !slices.Contains(under, filepath.Join(b.Rootfs, "proc")) || !slices.Contains(under, filepath.Join(b.Rootfs, "dev")) {
		t.Errorf("mounts under the rootfs in the host's table: %q, want proc and dev among them", under)
	}
	for id := range mountIDs(t) {
		if idsBefore[id] {
			continue
		}
		if line := mountLine(id); !strings.Contains(line, " "+b.Rootfs) {
			t.Errorf("create made a mount outside the rootfs: %s", line)
		}
	}
	if got := rootMountLine(t); got != rootBefore {
		t.Errorf("the host's / changed: %q, was %q", got, rootBefore)
	}

	// CVE-2019-5736: the init (still the runtime, waiting for start) runs
	// from a read-only mount reachable from no mount table.
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	if f, err := os.OpenFile(exe, os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Errorf("the init's executable opened for writing from the container's mount namespace")
	} else if !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.ETXTBSY) {
		t.Errorf("open %s for writing: %v, want EROFS or ETXTBSY", exe, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(exe, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("the init's executable is on a writable mount (statfs flags %#x)", sfs.Flags)
	}
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, exe, 0, unix.STATX_MNT_ID, &st); err != nil {
		t.Fatal(err)
	}
	if mountIDs(t)[fmt.Sprint(st.Mnt_id)] {
		t.Errorf("the init's executable is on mount %d, which is in the host's mount table", st.Mnt_id)
	}

	// An exec'd process gets the container's root, not the host's.
	res := rt.Exec(id, nil, "sh", "-c", "readlink /proc/self/ns/mnt; cat /"+marker).OK(t)
	if got := strings.Fields(res.Stdout); len(got) != 4 || got[0] != hostMnt {
		t.Errorf("exec printed %q, want the host's mount namespace %s and the marker", res.Stdout, hostMnt)
	}

	rt.Start(id).OK(t)
	if code := rt.Wait(id); code != 0 {
		out, errOut := rt.Output(id)
		t.Fatalf("container exited %d: %s %s", code, out, errOut)
	}
	if out, _ := rt.Output(id); !strings.HasPrefix(out, hostMnt+"\n") || !strings.Contains(out, "in the rootfs") {
		t.Errorf("container printed %q, want the host's mount namespace %s and the marker", out, hostMnt)
	}
	rt.Delete(id).OK(t)
	if left := testutil.MountsUnder(b.Dir); len(left) > 0 {
		t.Errorf("mounts left after delete: %q", left)
	}
	if got := rootMountLine(t); got != rootBefore {
		t.Errorf("the host's / changed: %q, was %q", got, rootBefore)
	}
}

func mountLine(id string) string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, id+" ") {
			return l
		}
	}
	return ""
}

// A create that fails halfway leaves no mount in the host's table.
func TestNoMountNamespaceFailedCreateLeavesNoMounts(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, withoutMountNS(), testutil.WithMounts(
		specs.Mount{Destination: "/mnt", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=berth-not-a-mode"}}))
	id := rt.NewID("hostmntfail")
	res := rt.Create(id, b.Dir).Fails(t)
	if !strings.Contains(res.Stderr, "/mnt") {
		t.Errorf("error does not name the mount: %s", res.Stderr)
	}
	if left := testutil.MountsUnder(b.Dir); len(left) > 0 {
		t.Errorf("mounts left after a failed create: %q", left)
	}
}
