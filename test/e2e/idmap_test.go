package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// TestIDMappedMount: a bind mount with uidMappings/gidMappings is an
// idmapped mount (runtime-spec 1.2+, how Kubernetes gives a pod in a user
// namespace its volumes): files owned by host root appear owned by the
// container's root, and what the container's root writes lands owned by
// host root, with no chown of the volume.
func TestIDMappedMount(t *testing.T) {
	skipIfRunc(t, "runc 1.1.5 has no idmapped mounts (runc 1.2 added them)")
	rt := newRuntime(t)
	data := hostDir(t)
	if err := os.WriteFile(filepath.Join(data, "by-host"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mapping := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	ns := append(testutil.DefaultSpec().Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	out := runOut(t, rt, "idmap",
		testutil.WithShell("stat -c '%u:%g %n' /data/by-host; touch /data/by-container && echo wrote"),
		testutil.WithNamespaces(ns...),
		testutil.WithRootfs(func(rootfs string) error { return os.Mkdir(filepath.Join(rootfs, "data"), 0o755) }),
		testutil.WithMounts(specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"bind", "rw", "idmap"},
			UIDMappings: mapping, GIDMappings: mapping}),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.UIDMappings = mapping
			s.Linux.GIDMappings = mapping
		}))
	if !strings.Contains(out, "0:0 /data/by-host") || !strings.Contains(out, "wrote") {
		t.Errorf("in the container, want by-host owned by 0:0 and a successful write: %q", out)
	}
	st, err := os.Stat(filepath.Join(data, "by-container"))
	if err != nil {
		t.Fatalf("file made by the container: %v", err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 || sys.Gid != 0 {
		t.Errorf("file made by container root through the idmapped mount is owned by %d:%d on the host, want 0:0", sys.Uid, sys.Gid)
	}

	// An idmapped mount that is not a bind, or maps uids only, is refused
	// with the field named, and nothing is left.
	for name, m := range map[string]specs.Mount{
		"tmpfs":    {Destination: "/data", Type: "tmpfs", Source: "tmpfs", UIDMappings: mapping, GIDMappings: mapping},
		"uid only": {Destination: "/data", Type: "bind", Source: data, Options: []string{"bind"}, UIDMappings: mapping},
	} {
		b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithMounts(m))
		id := rt.NewID("idmapbad")
		res := rt.Create(id, b.Dir)
		if res.ExitCode == 0 || !strings.Contains(res.Stderr, "mounts[") {
			t.Errorf("create with an idmapped %s mount: want a failure naming the mount: %s", name, res)
		}
		checkCreateLeftNothing(t, rt, id, b)
	}
}

// TestUsernsInaccessibleBind: in a container with a user namespace, a bind
// source that only the host's root can reach (below a 0700 directory) is
// mounted all the same, and a process exec'd later reads it too (runc
// userns.bats "userns with 2 inaccessible mounts", "with inaccessible
// mount + exec"): the runtime clones such sources on the host, where the
// container's mapped root would be refused. A bind on a /proc path is
// still refused when its source comes from the host.
func TestUsernsInaccessibleBind(t *testing.T) {
	skipIfRunc(t, "runc 1.1.5 binds inside the user namespace (runc 1.2 clones on the host)")
	rt := newRuntime(t)
	top := hostDir(t)
	var srcs []string
	for _, n := range []string{"one", "two"} {
		d := filepath.Join(top, "private-"+n, "dir")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Dir(d), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "foo.txt"), []byte("secret-"+n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, d)
	}
	mapping := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	ns := append(testutil.DefaultSpec().Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	withUserns := []testutil.BundleOption{
		testutil.WithNamespaces(ns...),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.UIDMappings = mapping
			s.Linux.GIDMappings = mapping
		}),
	}
	b := testutil.NewBundle(t, append(withUserns,
		testutil.WithArgs("sleep", "60"),
		testutil.WithRootfs(func(rootfs string) error {
			return os.MkdirAll(filepath.Join(rootfs, "tmp", "m2"), 0o755)
		}),
		testutil.WithMounts(
			specs.Mount{Destination: "/tmp/m1", Type: "bind", Source: srcs[0], Options: []string{"bind", "ro"}},
			specs.Mount{Destination: "/tmp/m2", Type: "bind", Source: srcs[1], Options: []string{"rbind"}}))...)
	id := rt.NewID("usernsbind")
	if res := rt.Run(id, b.Dir, "-d"); res.ExitCode != 0 {
		t.Fatalf("run with binds below 0700 directories in a user namespace: %s", res)
	}
	res := rt.Exec(id, nil, "cat", "/tmp/m1/foo.txt", "/tmp/m2/foo.txt")
	if res.ExitCode != 0 || res.Stdout != "secret-one\nsecret-two\n" {
		t.Errorf("exec cat of the bound files: want both secrets: %s", res)
	}
	if res := rt.Exec(id, nil, "touch", "/tmp/m1/new"); res.ExitCode == 0 {
		t.Errorf("touch on the read-only bind succeeded")
	}
	rt.Kill(id, "KILL")
	rt.Wait(id)
	rt.Delete(id)

	b = testutil.NewBundle(t, append(withUserns, testutil.WithArgs("true"),
		testutil.WithMounts(specs.Mount{Destination: "/proc/sys", Type: "bind", Source: srcs[0], Options: []string{"bind"}}))...)
	id = rt.NewID("usernsproc")
	res = rt.Create(id, b.Dir)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "inside /proc") {
		t.Errorf("create with a host bind on /proc/sys in a user namespace: want a refusal naming /proc: %s", res)
	}
	checkCreateLeftNothing(t, rt, id, b)
}

// TestIDMappedMountImpliedMapping: a bind mount with the option idmap (or
// ridmap) and no mappings of its own takes those of the container's user
// namespace, whether the container makes it or joins another container's
// (runtime-spec: the runtime MAY use the container's mappings, else MUST
// fail; runc idmap.bats "implied mapping"): files the host's root owns
// appear owned by the container's root. Without a user namespace the
// config is refused, naming the mount, and nothing is left.
func TestIDMappedMountImpliedMapping(t *testing.T) {
	skipIfRunc(t, "runc 1.1.5 has no idmapped mounts (runc 1.2 added them)")
	rt := newRuntime(t)
	data := hostDir(t)
	if err := os.WriteFile(filepath.Join(data, "by-host"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(data, "by-host"), 100, 200); err != nil {
		t.Fatal(err)
	}
	mapping := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	withUserns := testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = mapping
		s.Linux.GIDMappings = mapping
	})
	mkdirData := testutil.WithRootfs(func(rootfs string) error { return os.Mkdir(filepath.Join(rootfs, "data"), 0o755) })
	stat := testutil.WithShell("stat -c '%u:%g' /data/by-host")
	for _, opt := range []string{"", "idmap", "ridmap"} {
		opts := []string{"rbind"}
		if opt != "" {
			opts = append(opts, opt)
		}
		out := strings.TrimSpace(runOut(t, rt, "idmapimp", stat, mkdirData, withUserns,
			testutil.WithMounts(specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: opts})))
		want := "100:200"
		if opt == "" {
			want = "65534:65534" // not mapped: the overflow ids
		}
		if out != want {
			t.Errorf("options %v: the container sees by-host (host 100:200) owned by %s, want %s", opts, out, want)
		}
	}

	// Joining another container's user namespace, with no mappings of
	// its own.
	target := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), withUserns)
	tid := rt.NewID("idmapns")
	rt.Run(tid, target.Dir, "-d").OK(t)
	joined := testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{
			Type: specs.UserNamespace, Path: filepath.Join("/proc", strconv.Itoa(rt.State(tid).Pid), "ns/user")})
	})
	out := strings.TrimSpace(runOut(t, rt, "idmapjoin", stat, mkdirData, joined,
		testutil.WithMounts(specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "idmap"}})))
	if out != "100:200" {
		t.Errorf("joined user namespace: the container sees by-host (host 100:200) owned by %s, want 100:200", out)
	}
	rt.Kill(tid, "KILL").OK(t)
	rt.Wait(tid)
	rt.Delete(tid).OK(t)

	b := testutil.NewBundle(t, testutil.WithArgs("true"), mkdirData,
		testutil.WithMounts(specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "idmap"}}))
	id := rt.NewID("idmapnons")
	res := rt.Create(id, b.Dir)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "mounts[") || !strings.Contains(res.Stderr, "user namespace") {
		t.Errorf("idmap without mappings in a container without a user namespace: want a failure naming the mount and the missing user namespace: %s", res)
	}
	checkCreateLeftNothing(t, rt, id, b)
}
