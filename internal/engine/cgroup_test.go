package engine

import (
	"errors"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestExpandSlice(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"system.slice", "/system.slice"},
		{"kubepods.slice", "/kubepods.slice"},
		{"kubepods-burstable-pod0a1b_2c.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b_2c.slice"},
		{"-.slice", "/"},
		{"a.b.slice", "/a.b.slice"},
	} {
		got, err := expandSlice(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("expandSlice(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", ".slice", "system", "a--b.slice", "-a.slice", "a-.slice", "../x.slice", "a/b.slice", "a:b.slice", "a b.slice", "a\x00.slice", strings.Repeat("a", 250) + ".slice"} {
		if got, err := expandSlice(in); err == nil {
			t.Errorf("expandSlice(%q) = %q, want an error", in, got)
		}
	}
}

// FuzzExpandSlice: whatever a CRI client sends as a cgroup parent, an
// accepted slice expands to a clean absolute path of .slice directories,
// never climbing out of the hierarchy.
func FuzzExpandSlice(f *testing.F) {
	for _, s := range []string{"system.slice", "kubepods-burstable-pod1.slice", "-.slice", "..slice", "a-..slice", "a\\x2d.slice"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := expandSlice(s)
		if err != nil {
			return
		}
		if p != path.Clean(p) || !path.IsAbs(p) {
			t.Fatalf("expandSlice(%q) = %q: not a clean absolute path", s, p)
		}
		for _, el := range strings.Split(p, "/")[1:] {
			if el == "" && p == "/" {
				continue
			}
			if el == ".." || el == "." || !strings.HasSuffix(el, ".slice") {
				t.Fatalf("expandSlice(%q) = %q: element %q", s, p, el)
			}
		}
	})
}

// TestCgroupParentAndPath: each driver takes its own form of kubelet's
// cgroup parent and refuses the other's (a kubelet configured with the
// other driver) and anything that climbs out; the record gets the
// cgroupsPath and runtime flags of its driver, and the path of its cgroup
// below the hierarchy's root.
func TestCgroupParentAndPath(t *testing.T) {
	cgroupfs := &Engine{opts: Options{Namespace: "k8s.io"}}
	systemd := &Engine{opts: Options{Namespace: "k8s.io", CgroupDriver: CgroupDriverSystemd}}
	cli := &Engine{opts: Options{Namespace: "default", CgroupDriver: CgroupDriverSystemd}}
	if cgroupfs.CgroupDriver() != "cgroupfs" || systemd.CgroupDriver() != "systemd" {
		t.Errorf("CgroupDriver: %q, %q", cgroupfs.CgroupDriver(), systemd.CgroupDriver())
	}
	for _, tc := range []struct {
		e        *Engine
		parent   string
		bad      string // a word the error must hold; "" if accepted
		path     string
		rel      string
		systemdF bool
	}{
		{e: cgroupfs, parent: "", path: "/berth/ID", rel: "/berth/ID"},
		{e: cgroupfs, parent: "/kubepods/burstable/pod1", path: "/kubepods/burstable/pod1/ID", rel: "/kubepods/burstable/pod1/ID"},
		{e: cgroupfs, parent: "kubepods-burstable-pod1.slice", bad: "--cgroup-driver systemd"},
		{e: cgroupfs, parent: "/kubepods/../../x", bad: ".."},
		{e: cgroupfs, parent: "/a\nb", bad: "newline"},
		{e: systemd, parent: "", path: "system.slice:cri-berth:ID", rel: "/system.slice/cri-berth-ID.scope", systemdF: true},
		{e: systemd, parent: "kubepods-burstable-pod1.slice", path: "kubepods-burstable-pod1.slice:cri-berth:ID",
			rel: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-berth-ID.scope", systemdF: true},
		// The cgroupfs form of a slice: the last element names it, as CRI-O takes it.
		{e: systemd, parent: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2.slice", path: "kubepods-besteffort-pod2.slice:cri-berth:ID",
			rel: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2.slice/cri-berth-ID.scope", systemdF: true},
		{e: systemd, parent: "/kubepods/burstable/pod1", bad: "cgroupDriver cgroupfs"},
		{e: systemd, parent: "a--b.slice", bad: "dash-separated"},
		{e: systemd, parent: "a:b.slice", bad: "not allowed"},
		{e: cli, parent: "", path: "system.slice:berth:ID", rel: "/system.slice/berth-ID.scope", systemdF: true},
	} {
		r := &record{Container: Container{ID: "ID"}, CgroupParent: tc.parent}
		err := tc.e.setCgroup(r)
		if tc.bad != "" {
			if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.bad) || !strings.Contains(err.Error(), "cgroup parent") {
				t.Errorf("%s driver, parent %q: error %v, want invalid argument naming the cgroup parent and %q", tc.e.CgroupDriver(), tc.parent, err, tc.bad)
			}
			if err2 := tc.e.checkCgroupParent(tc.parent); err2 == nil {
				t.Errorf("%s driver: RunSandbox's check takes parent %q", tc.e.CgroupDriver(), tc.parent)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s driver, parent %q: %v", tc.e.CgroupDriver(), tc.parent, err)
			continue
		}
		if r.CgroupsPath != tc.path || cgroupsPathOf(r) != tc.path || r.SystemdCgroup != tc.systemdF || cgroupRelOf(r) != tc.rel {
			t.Errorf("%s driver, parent %q: cgroupsPath %q systemd %v rel %q; want %q %v %q", tc.e.CgroupDriver(), tc.parent, r.CgroupsPath, r.SystemdCgroup, cgroupRelOf(r), tc.path, tc.systemdF, tc.rel)
		}
		if got := slices.Contains(tc.e.runtimeGlobal(r), "--systemd-cgroup"); got != tc.systemdF {
			t.Errorf("%s driver: runtime flags %v", tc.e.CgroupDriver(), tc.e.runtimeGlobal(r))
		}
	}
	// A record of an older version (no cgroupsPath) keeps its cgroupfs path.
	old := &record{Container: Container{ID: "ID"}, CgroupParent: "/kubepods/pod1"}
	if got := cgroupsPathOf(old); got != "/kubepods/pod1/ID" || cgroupRelOf(old) != got || len(runtimeArgs(old)) != 0 {
		t.Errorf("an old record's cgroupsPath: %q", got)
	}
}

// TestCheckCgroupDriver: systemd is refused with an error naming PID 1
// where systemd does not run, and an unknown driver is refused.
func TestCheckCgroupDriver(t *testing.T) {
	for _, d := range []string{"", "cgroupfs"} {
		if err := CheckCgroupDriver(d); err != nil {
			t.Errorf("CheckCgroupDriver(%q): %v", d, err)
		}
	}
	if err := CheckCgroupDriver("systemdd"); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "cgroupfs or systemd") {
		t.Errorf("CheckCgroupDriver(systemdd): %v", err)
	}
	err := CheckCgroupDriver("systemd")
	if _, statErr := os.Stat("/run/systemd/system"); statErr == nil {
		if err != nil {
			t.Errorf("systemd runs here, yet CheckCgroupDriver(systemd): %v", err)
		}
		return
	}
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "PID 1 is not systemd") {
		t.Errorf("CheckCgroupDriver(systemd) without systemd: %v, want a failed precondition naming PID 1", err)
	}
}
