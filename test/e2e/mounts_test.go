package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hostDir makes a host directory named berth-e2e-* for bind mounts,
// removed when t ends (after anything the test mounted under it).
func hostDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "berth-e2e-host-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// hostMount mounts on the host and unmounts when t ends.
func hostMount(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		t.Fatalf("mount %s on %s: %v", source, target, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
}

func TestTmpfsMount(t *testing.T) {
	rt := newRuntime(t)
	out := runOut(t, rt, "tmpfs",
		testutil.WithShell(`stat -c %a /scratch; grep ' /scratch ' /proc/self/mountinfo`),
		testutil.WithMounts(specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "nodev", "size=2m", "mode=0750"}}))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "750" {
		t.Fatalf("tmpfs /scratch: %q, want mode 750 and a mountinfo line", out)
	}
	for _, want := range []string{" - tmpfs ", "size=2048k", "mode=750", "nosuid", "nodev"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("mountinfo of /scratch %q lacks %q", lines[1], want)
		}
	}
}

// TestTmpfsMountMode: a tmpfs over a directory of the image takes that
// directory's mode, special bits included, unless its options set one; over
// a directory made for it, tmpfs's own 1777 (runc run.bats "runc run with
// tmpfs", "runc run with tmpfs perms").
func TestTmpfsMountMode(t *testing.T) {
	rt := newRuntime(t)
	tmpfs := func(dest string, opts ...string) specs.Mount {
		return specs.Mount{Destination: dest, Type: "tmpfs", Source: "tmpfs", Options: opts}
	}
	out := runOut(t, rt, "tmpfsmode",
		testutil.WithShell(`stat -c %a /a /b /c /d`),
		testutil.WithRootfs(func(rootfs string) error {
			for d, mode := range map[string]os.FileMode{"a": 0o710, "b": 0o777 | os.ModeSetuid | os.ModeSetgid | os.ModeSticky, "c": 0o710} {
				if err := os.Mkdir(filepath.Join(rootfs, d), 0); err != nil {
					return err
				}
				if err := os.Chmod(filepath.Join(rootfs, d), mode); err != nil {
					return err
				}
			}
			return nil
		}),
		testutil.WithMounts(tmpfs("/a"), tmpfs("/b", "nosuid"), tmpfs("/c", "mode=0410"), tmpfs("/d")))
	if got, want := strings.Fields(out), []string{"710", "7777", "410", "1777"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("modes of tmpfs mounts /a /b /c /d = %v, want %v", got, want)
	}
}

// TestReadonlyDevTmpfs: a read-only /dev still gets its devices and
// /dev/pts, and ends read-only (runc mounts.bats "runc run [ro /dev
// mount]"); another read-only tmpfs stays read-only.
func TestReadonlyDevTmpfs(t *testing.T) {
	rt := newRuntime(t)
	out := runOut(t, rt, "rodev",
		testutil.WithShell(`grep -E '^tmpfs /(dev|ro) ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1; test -c /dev/null && test -d /dev/pts && echo devices; touch /ro/x 2>/dev/null || echo ro-refused`),
		testutil.WithMounts(specs.Mount{Destination: "/ro", Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid"}}),
		testutil.WithSpec(func(s *specs.Spec) {
			for i, m := range s.Mounts {
				if m.Destination == "/dev" {
					s.Mounts[i].Options = append(s.Mounts[i].Options, "ro")
				}
			}
		}))
	if want := "/dev ro\n/ro ro\ndevices\nro-refused\n"; out != want {
		t.Errorf("read-only /dev and /ro: output %q, want %q", out, want)
	}
}

// TestMountOrderRootfsSources: mounts are made in order, a bind whose
// source lies in the container's rootfs sees the mounts made there before
// it, and a destination that names the rootfs by its host path is taken
// inside it, as runc does (runc mounts.bats "runc run [mount order,
// container bind-mount source]").
func TestMountOrderRootfsSources(t *testing.T) {
	rt := newRuntime(t)
	src := hostDir(t)
	for _, sub := range []string{"a/x", "b/y", "c/z"} {
		if err := os.MkdirAll(filepath.Join(src, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, sub, "file"), []byte(sub+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		top := filepath.Dir(sub)
		if err := os.Symlink(top, filepath.Join(src, "sym-"+top)); err != nil {
			t.Fatal(err)
		}
	}
	b := testutil.NewBundle(t, testutil.WithArgs("cat", "/final/x/y/z/z/x/y/z/x/file"))
	bind := func(from, to, kind string) specs.Mount {
		return specs.Mount{Source: from, Destination: to, Type: "bind", Options: []string{kind, "rprivate"}}
	}
	rootfs := b.Rootfs
	b.Spec.Mounts = append(b.Spec.Mounts,
		bind(filepath.Join(src, "a"), "/mnt", "bind"),
		bind(filepath.Join(src, "sym-b"), "/mnt/x", "bind"),
		bind(filepath.Join(src, "c"), "/mnt/x/y", "bind"),
		bind(filepath.Join(src, "sym-a"), "/mnt/x/y/z", "bind"),
		bind(rootfs+"/mnt/x", rootfs+"/mnt/x/y/z/x", "rbind"),
		bind(rootfs+"/mnt/x/y", rootfs+"/mnt/x/y/z", "rbind"),
		bind(rootfs+"/mnt", rootfs+"/final", "rbind"))
	b.Save(t)
	res := rt.Run(rt.NewID("mntorder"), b.Dir)
	if res.ExitCode != 0 || res.Stdout != "a/x\n" {
		t.Errorf("the file at the end of the mount tree: %s; want a/x", res)
	}
}

func TestBindMounts(t *testing.T) {
	rt := newRuntime(t)
	rw, ro, rec := hostDir(t), hostDir(t), hostDir(t)
	os.WriteFile(filepath.Join(ro, "file"), []byte("host-ro"), 0o644)
	// A submount inside rec: rbind carries it into the container, bind
	// does not.
	sub := filepath.Join(rec, "sub")
	os.Mkdir(sub, 0o755)
	hostMount(t, "berth-e2e-sub", sub, "tmpfs", 0, "size=1m")
	os.WriteFile(filepath.Join(sub, "marker"), []byte("in-submount"), 0o644)

	b := testutil.NewBundle(t, testutil.WithShell(`
		echo from-container > /rw/new && echo rw-ok
		cat /ro/file; echo
		echo x > /ro/file2 || echo ro-refused
		cat /rbind/sub/marker; echo
		ls /bind/sub`),
		testutil.WithMounts(
			specs.Mount{Destination: "/rw", Type: "bind", Source: rw, Options: []string{"rbind", "rw"}},
			specs.Mount{Destination: "/ro", Type: "bind", Source: ro, Options: []string{"bind", "ro"}},
			specs.Mount{Destination: "/rbind", Type: "bind", Source: rec, Options: []string{"rbind"}},
			specs.Mount{Destination: "/bind", Type: "bind", Source: rec, Options: []string{"bind"}},
		))
	res := rt.Run(rt.NewID("bind"), b.Dir)
	got, _ := os.ReadFile(filepath.Join(rw, "new"))
	if string(got) != "from-container\n" {
		t.Errorf("write to rw bind mount did not reach the host (got %q): %s", got, res)
	}
	for _, want := range []string{"rw-ok", "host-ro", "ro-refused", "in-submount"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("output lacks %q: %s", want, res)
		}
	}
	if fileExists(filepath.Join(ro, "file2")) {
		t.Errorf("the container wrote through a read-only bind mount")
	}
	if strings.Contains(res.Stdout, "marker") {
		t.Errorf("a non-recursive bind mount carried the submount: %s", res)
	}
}

// TestMountPropagation: a host mount made after the container started
// reaches a bind mount with rslave propagation, and not one with rprivate.
func TestMountPropagation(t *testing.T) {
	rt := newRuntime(t)
	shared := hostDir(t)
	// The host's own mounts here may be private: make a shared mount of our
	// own to propagate from.
	hostMount(t, shared, shared, "", unix.MS_BIND, "")
	if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
		t.Fatalf("make %s shared: %v", shared, err)
	}
	sub := filepath.Join(shared, "sub")
	os.Mkdir(sub, 0o755)

	type ctr struct {
		prop string
		b    *testutil.Bundle
		id   string
	}
	var ctrs []ctr
	for _, prop := range []string{"rslave", "rprivate"} {
		b := testutil.NewBundle(t, testutil.WithWritableRoot(), testutil.WithShell(`
			touch /tmp/started
			while [ ! -e /tmp/go ]; do sleep 0.05; done
			cat /prop/sub/marker`),
			testutil.WithMounts(specs.Mount{Destination: "/prop", Type: "bind", Source: shared,
				Options: []string{"rbind", prop}}))
		id := rt.NewID("prop")
		rt.Run(id, b.Dir, "-d").OK(t)
		ctrs = append(ctrs, ctr{prop, b, id})
	}
	for _, c := range ctrs {
		waitFor(t, "container "+c.prop, func() bool { return fileExists(c.b.Path("tmp/started")) })
	}
	hostMount(t, "berth-e2e-prop", sub, "tmpfs", 0, "size=1m")
	os.WriteFile(filepath.Join(sub, "marker"), []byte("propagated"), 0o644)
	for _, c := range ctrs {
		os.WriteFile(c.b.Path("tmp/go"), nil, 0o644)
		code := rt.Wait(c.id)
		out, _ := rt.Output(c.id)
		propagated := code == 0 && strings.Contains(out, "propagated")
		if propagated != (c.prop == "rslave") {
			t.Errorf("%s bind mount: host mount seen = %v (exit %d, output %q)", c.prop, propagated, code, out)
		}
	}
}

func TestDevContents(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithShell(`
		for d in null zero full random urandom tty; do stat -c "$d %F %t:%T %a" /dev/$d; done
		for l in ptmx fd stdin stdout stderr; do echo "$l -> $(readlink /dev/$l)"; done
		for d in pts shm mqueue; do [ -d /dev/$d ] && echo "$d dir"; done
		echo x > /dev/null && echo null-writable
		echo "urandom $(head -c 16 /dev/urandom | wc -c)"
		echo x > /dev/full || echo full-refused
		ls /dev`),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{}
		}))
	res := rt.Run(rt.NewID("dev"), b.Dir).OK(t)
	out := res.Stdout
	for _, want := range []string{
		"null character special file 1:3 666",
		"zero character special file 1:5 666",
		"full character special file 1:7 666",
		"random character special file 1:8 666",
		"urandom character special file 1:9 666",
		"tty character special file 5:0 666",
		"ptmx -> pts/ptmx",
		"fd -> /proc/self/fd",
		"stdin -> /proc/self/fd/0",
		"stdout -> /proc/self/fd/1",
		"stderr -> /proc/self/fd/2",
		"pts dir", "shm dir", "mqueue dir",
		"null-writable", "urandom 16", "full-refused",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/dev: want %q in:\n%s", want, out)
		}
	}
	// Nothing of the host's /dev comes in.
	for _, host := range []string{"vda", "kmsg", "mem", "console"} {
		if contains(strings.Fields(out), host) {
			t.Errorf("/dev in the container has the host's %s:\n%s", host, out)
		}
	}
}

func TestDevicesList(t *testing.T) {
	rt := newRuntime(t)
	mode := os.FileMode(0o640)
	uid, gid := uint32(1000), uint32(1000)
	out := runOut(t, rt, "devices", testutil.WithShell(`stat -c '%F %t:%T %a %u:%g' /dev/berth-null; echo x > /dev/berth-null && echo written`),
		testutil.WithSpec(func(s *specs.Spec) {
			// The device's owner writes to it.
			s.Process.User = specs.User{UID: 1000, GID: 1000}
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/berth-null", Type: "c", Major: 1, Minor: 3,
				FileMode: &mode, UID: &uid, GID: &gid}}
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"})
		}))
	if want := "character special file 1:3 640 1000:1000\nwritten"; strings.TrimSpace(out) != want {
		t.Errorf("device /dev/berth-null: %q, want %q", out, want)
	}
}

func ptr[T any](v T) *T { return &v }

func TestUserNamespace(t *testing.T) {
	rt := newRuntime(t)
	data := hostDir(t)
	if err := os.Chown(data, 100000, 100000); err != nil {
		t.Fatal(err)
	}
	ns := append(testutil.DefaultSpec().Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	out := runOut(t, rt, "userns",
		testutil.WithShell("cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /data/by-container"),
		testutil.WithNamespaces(ns...),
		// Container root (host uid 100000) cannot create mount points in a
		// rootfs owned by host root.
		testutil.WithRootfs(func(rootfs string) error { return os.Mkdir(filepath.Join(rootfs, "data"), 0o755) }),
		testutil.WithMounts(specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "rw"}}),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}))
	f := strings.Fields(out)
	if len(f) != 7 || strings.Join(f[:3], " ") != "0 100000 65536" || strings.Join(f[3:6], " ") != "0 100000 65536" || f[6] != "0" {
		t.Errorf("uid_map, gid_map, id -u = %q, want 0 100000 65536 twice, and 0", f)
	}
	st, err := os.Stat(filepath.Join(data, "by-container"))
	if err != nil {
		t.Fatalf("file made by the container: %v", err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 100000 || sys.Gid != 100000 {
		t.Errorf("file made by container root is owned by %d:%d on the host, want 100000:100000", sys.Uid, sys.Gid)
	}
}

// TestRelativeMountDestination: a relative mount destination, which the
// spec still allows on Linux for old configs (deprecated), is taken from
// "/" (runc idmap.bats "idmap mount with relative path").
func TestRelativeMountDestination(t *testing.T) {
	rt := newRuntime(t)
	out := runOut(t, rt, "reldest",
		testutil.WithShell(`awk '$2 == "/tmp/rel" { print $3 }' /proc/self/mounts`),
		testutil.WithMounts(specs.Mount{Destination: "tmp/rel", Type: "tmpfs", Source: "tmpfs"}))
	if strings.TrimSpace(out) != "tmpfs" {
		t.Errorf("mount with destination tmp/rel: /proc/self/mounts shows %q at /tmp/rel, want a tmpfs", out)
	}
}
