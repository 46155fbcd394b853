package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// freezers lists this host's freezer interfaces: the v1 freezer hierarchy
// and the v2 one (at /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid
// host), each with the file and the value that freeze a cgroup.
func freezers() []struct{ root, file, frozen, thawed string } {
	var out []struct{ root, file, frozen, thawed string }
	if _, err := os.Stat("/sys/fs/cgroup/freezer/freezer.state"); err == nil || fileExists("/sys/fs/cgroup/freezer/tasks") {
		out = append(out, struct{ root, file, frozen, thawed string }{"/sys/fs/cgroup/freezer", "freezer.state", "FROZEN", "THAWED"})
	}
	for _, r := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if fileExists(filepath.Join(r, "cgroup.controllers")) {
			out = append(out, struct{ root, file, frozen, thawed string }{r, "cgroup.freeze", "1", "0"})
		}
	}
	return out
}

func randSuffix(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// TestRefuseFrozenCgroup: create and run in a cgroup a previous tenant left
// frozen fail at once with runc's message (runc's cgroups.bats "should
// refuse pre-existing frozen cgroup"), instead of freezing the init in its
// setup and waiting for ever; the frozen cgroup, not the runtime's, stays.
func TestRefuseFrozenCgroup(t *testing.T) {
	fz := freezers()
	if len(fz) == 0 {
		t.Skip("requires a cgroup freezer (v1 freezer hierarchy or cgroup v2)")
	}
	for _, f := range fz {
		t.Run(filepath.Base(f.root)+"/"+f.file, func(t *testing.T) {
			rt := newRuntime(t)
			name := "berth-e2e-frozen-" + randSuffix(t)
			dir := filepath.Join(f.root, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				os.WriteFile(filepath.Join(dir, f.file), []byte(f.thawed), 0)
				if err := os.Remove(dir); err != nil {
					t.Errorf("remove the test's cgroup %s: %v", dir, err)
				}
				for _, d := range testutil.FindCgroups(name) {
					t.Errorf("cgroup %s left behind", d)
					os.Remove(d)
				}
			})
			if err := os.WriteFile(filepath.Join(dir, f.file), []byte(f.frozen), 0); err != nil {
				t.Fatalf("freeze %s: %v", dir, err)
			}
			b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
				s.Linux.CgroupsPath = "/" + name
			}))
			for _, cmd := range []string{"create", "run"} {
				id := rt.NewID("frozen")
				var res testutil.Result
				if cmd == "create" {
					res = rt.Create(id, b.Dir).Fails(t)
				} else {
					res = rt.Run(id, b.Dir, "-d").Fails(t)
				}
				if !strings.Contains(res.Stderr, "container's cgroup unexpectedly frozen") || !strings.Contains(res.Stderr, dir) {
					t.Errorf("%s in a frozen cgroup: %s, want runc's message naming %s", cmd, res, dir)
				}
				checkCreateLeftNothing(t, rt, id, b)
			}
		})
	}
}

// TestStartFrozenCreated: start of a created container whose cgroup was
// frozen from outside fails with an error instead of waiting for an init
// that cannot answer; thawed, the same container starts.
func TestStartFrozenCreated(t *testing.T) {
	if !fileExists("/sys/fs/cgroup/freezer/tasks") && !fileExists("/sys/fs/cgroup/cgroup.controllers") {
		t.Skip("requires a cgroup freezer (v1 freezer hierarchy or cgroup v2)")
	}
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	id := rt.NewID("startfrozen")
	rt.Create(id, b.Dir).OK(t)
	pid := rt.Pid(id)
	file, frozen, thawed := filepath.Join(cgroupDir(t, pid, "freezer"), "freezer.state"), "FROZEN", "THAWED"
	if fileExists("/sys/fs/cgroup/cgroup.controllers") {
		file, frozen, thawed = filepath.Join(cgroupDir(t, pid, ""), "cgroup.freeze"), "1", "0"
	}
	if err := os.WriteFile(file, []byte(frozen), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(file, []byte(thawed), 0) })
	res := rt.Start(id).Fails(t)
	if !strings.Contains(res.Stderr, "frozen") {
		t.Errorf("start of a frozen created container: %s, want an error saying it is frozen", res)
	}
	if err := os.WriteFile(file, []byte(thawed), 0); err != nil {
		t.Fatal(err)
	}
	rt.Start(id).OK(t)
	if code := rt.Wait(id); code != 0 {
		t.Errorf("container exited %d, want 0", code)
	}
	rt.Delete(id).OK(t)
}

// TestConsoleSocketPeerNeverReads: a --console-socket peer that accepts and
// never reads, or never even accepts, cannot hang create: the pty master
// waits in the socket's queue.
func TestConsoleSocketPeerNeverReads(t *testing.T) {
	for _, accept := range []bool{true, false} {
		name := map[bool]string{true: "accepts", false: "never-accepts"}[accept]
		t.Run(name, func(t *testing.T) {
			rt := newRuntime(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "console.sock")
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if accept {
				go func() {
					conn, err := ln.Accept()
					if err == nil {
						t.Cleanup(func() { conn.Close() })
					}
				}()
			}
			b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), testutil.WithSpec(func(s *specs.Spec) {
				s.Process.Terminal = true
			}))
			id := rt.NewID("consnoread")
			rt.Create(id, b.Dir, "--console-socket", path).OK(t)
			rt.Start(id).OK(t)
			if s := rt.State(id); s.Status != "running" {
				t.Errorf("state %+v, want running", s)
			}
			rt.Delete(id, "--force").OK(t)
		})
	}
}
