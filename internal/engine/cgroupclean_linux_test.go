package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
)

// leftCgroupsRuntime is a runtime that, asked to create, makes the
// container's cgroups (and a subgroup below them, as crun does) in every
// hierarchy and fails before it records any state, as Debian's runsc
// 0.0~20221219 does on Linux 6.x; every other command goes to real.
func leftCgroupsRuntime(t *testing.T, real string) string {
	t.Helper()
	script := `#!/bin/sh
bundle= log=/dev/null prev= create=
for a; do
	[ "$prev" = --bundle ] && bundle=$a
	[ "$prev" = --log ] && log=$a
	[ "$a" = create ] && create=1
	prev=$a
done
if [ -n "$create" ]; then
	cg=$(sed -n 's/.*"cgroupsPath":"\([^"]*\)".*/\1/p' "$bundle/config.json")
	[ -n "$cg" ] || { echo "left-cgroups: no cgroupsPath in $bundle/config.json" >&2; exit 2; }
	for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
		[ -e "$h/cgroup.procs" ] && mkdir -p "$h$cg/container"
	done
	echo '{"level":"error","msg":"left-cgroups: cannot make a sandbox"}' >> "$log"
	exit 1
fi
exec ` + real + ` "$@"
`
	p := filepath.Join(t.TempDir(), "left-cgroups")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// A start whose runtime failed in create and left the container's cgroups
// behind leaves none of them: the engine removes them after the runtime's
// delete, subgroups first.
func TestRuntimeLeftCgroupsRemoved(t *testing.T) {
	e := testEngine(t)
	e.opts.Runtimes["default"] = leftCgroupsRuntime(t, e.opts.Runtimes["default"])
	ctx := context.Background()
	c, err := e.Create(ctx, CreateOptions{
		Config:     Config{Image: testImage, Cmd: []string{"true"}},
		HostConfig: HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range testutil.FindCgroups(c.ID) {
			os.Remove(filepath.Join(p, "container"))
			os.Remove(p)
		}
	})
	_, err = e.Start(ctx, c.ID)
	if err == nil || !strings.Contains(err.Error(), "cannot make a sandbox") {
		t.Fatalf("start under a runtime that fails in create: %v, want its error", err)
	}
	if left := testutil.FindCgroups(c.ID); len(left) != 0 {
		t.Errorf("cgroups left after the failed start: %v", left)
	}
}

// removeCgroupLeftovers removes only a cgroup named for the container and
// what is below it, never a parent, and never a cgroup that still holds a
// process (the process stays where it is, alive).
func TestRemoveCgroupLeftoversKeepsLiveAndParents(t *testing.T) {
	testutil.RequiresRoot(t)
	const pidsRoot = "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(pidsRoot, "cgroup.procs")); err != nil {
		t.Skip("needs a cgroup v1 pids hierarchy at " + pidsRoot + " (a v1 or hybrid host)")
	}
	parent := fmt.Sprintf("/berth-test-%d", os.Getpid())
	id := "c0ffee" + strconv.Itoa(os.Getpid())
	r := &record{Container: Container{ID: id}, CgroupParent: parent}
	dir := filepath.Join(pidsRoot, parent, id)
	if err := os.MkdirAll(filepath.Join(dir, "container"), 0o755); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sleep.Process.Kill()
		sleep.Wait()
		os.Remove(filepath.Join(dir, "container"))
		os.Remove(dir)
		os.Remove(filepath.Join(pidsRoot, parent))
	})
	if err := os.WriteFile(filepath.Join(dir, "container", "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := removeCgroupLeftovers(r); err == nil {
		t.Error("removeCgroupLeftovers of a cgroup that holds a process: no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "container")); err != nil {
		t.Errorf("the cgroup holding a process: %v, want it kept", err)
	}
	if err := sleep.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the process in it: %v, want it alive", err)
	}
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", sleep.Process.Pid)); !strings.Contains(string(b), parent+"/"+id+"/container") {
		t.Errorf("the process's cgroups:\n%s\nwant it still in %s/%s/container", b, parent, id)
	}
	sleep.Process.Kill()
	sleep.Wait()
	if err := removeCgroupLeftovers(r); err != nil {
		t.Fatalf("removeCgroupLeftovers once empty: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the container's cgroup after removal: %v, want it gone", err)
	}
	if _, err := os.Stat(filepath.Join(pidsRoot, parent)); err != nil {
		t.Errorf("the parent cgroup: %v, want it kept", err)
	}
	// A record whose cgroup is not named for it (a parent given as its
	// path) is left alone.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := removeCgroupLeftovers(&record{Container: Container{ID: "other"}, CgroupsPath: parent + "/" + id}); err != nil || !dirExists(dir) {
		t.Errorf("a cgroupsPath not ending in the record's ID: err %v, dir kept %v; want it kept", err, dirExists(dir))
	}
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
