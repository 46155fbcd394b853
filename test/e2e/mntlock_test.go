package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// TestUsernsBindKeepsLockedFlags: in a container with its own user
// namespace a bind mount keeps the flags of its source that the kernel
// locks there (ro, nosuid, nodev, noexec, atime), as with runc, whose init
// binds the source itself: a source the host keeps read-only stays
// read-only unless the options ask for rw, which then fails (runc's
// mounts_sshfs.bats, "implied-rw" and "explicit-rw bind mount of a ro
// mount"). Options that ask for nothing keep every flag of the source, and
// a container without a user namespace gets the flags it asks for.
func TestUsernsBindKeepsLockedFlags(t *testing.T) {
	skipIfRunc(t, "runc 1.1.5 predates runc 1.2's handling of locked flags")
	src := hostDir(t)
	hostMount(t, "tmpfs", src, "tmpfs", 0, "mode=755")
	// Per-mount flags, set by a remount as runc's test does: flags given
	// to the first mount would be the superblock's, which no bind clears.
	if err := unix.Mount("", src, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOEXEC, ""); err != nil {
		t.Fatal(err)
	}
	userns := func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	}
	mkdirData := testutil.WithRootfs(func(rootfs string) error { return os.Mkdir(filepath.Join(rootfs, "data"), 0o755) })
	flagsOf := func(t *testing.T, opts []string, user bool) (string, testutil.Result) {
		t.Helper()
		rt := newRuntime(t)
		bopts := []testutil.BundleOption{
			testutil.WithShell(`awk '$2 == "/data" { print $4 }' /proc/self/mounts`), mkdirData,
			testutil.WithMounts(specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: opts}),
		}
		if user {
			bopts = append(bopts, testutil.WithSpec(userns))
		}
		b := testutil.NewBundle(t, bopts...)
		res := rt.Run(rt.NewID("mntlock"), b.Dir)
		return "," + strings.TrimSpace(res.Stdout) + ",", res
	}
	has := func(flags, f string) bool { return strings.Contains(flags, ","+f+",") }

	for _, c := range []struct {
		name    string
		opts    []string
		user    bool
		want    []string // flags the container's mount has
		notWant []string
	}{
		{"userns-bind-only", []string{"bind"}, true, []string{"ro", "noexec"}, []string{"rw"}},
		{"userns-implied-rw", []string{"bind", "nosuid", "nodev"}, true, []string{"ro", "noexec", "nosuid", "nodev"}, []string{"rw"}},
		{"no-userns-implied-rw", []string{"bind", "nosuid", "nodev"}, false, []string{"rw", "nosuid", "nodev"}, []string{"ro", "noexec"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			flags, res := flagsOf(t, c.opts, c.user)
			if res.ExitCode != 0 {
				t.Fatalf("run: %s", res)
			}
			for _, f := range c.want {
				if !has(flags, f) {
					t.Errorf("bind %v of a ro,noexec source: the container's mount has %s, want %s among them", c.opts, flags, f)
				}
			}
			for _, f := range c.notWant {
				if has(flags, f) {
					t.Errorf("bind %v of a ro,noexec source: the container's mount has %s, want no %s", c.opts, flags, f)
				}
			}
		})
	}
	// The kernel's locks, not only the flags at start: a container root
	// with CAP_SYS_ADMIN in its user namespace and no seccomp filter
	// cannot remount the bind read-write (runc's init binds in the
	// container's namespaces, where the kernel locks them).
	t.Run("userns-remount-rw-refused", func(t *testing.T) {
		rt := newRuntime(t)
		b := testutil.NewBundle(t, mkdirData, testutil.WithSpec(userns),
			testutil.WithShell(`mount -o remount,bind,rw /data && echo remounted-rw; awk '$2 == "/data" { print $4 }' /proc/self/mounts`),
			testutil.WithMounts(specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"bind", "nosuid"}}),
			testutil.WithSpec(func(s *specs.Spec) {
				s.Linux.Seccomp = nil
				c := s.Process.Capabilities
				c.Bounding = append(c.Bounding, "CAP_SYS_ADMIN")
				c.Effective = append(c.Effective, "CAP_SYS_ADMIN")
				c.Permitted = append(c.Permitted, "CAP_SYS_ADMIN")
			}))
		res := rt.Run(rt.NewID("mntlockrw"), b.Dir)
		flags := "," + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(res.Stdout), "remounted-rw")) + ","
		if strings.Contains(res.Stdout, "remounted-rw") || !has(flags, "ro") {
			t.Errorf("container root with CAP_SYS_ADMIN remounted the bind of a read-only host source: %s", res)
		}
	})
	t.Run("userns-explicit-rw", func(t *testing.T) {
		_, res := flagsOf(t, []string{"bind", "rw", "exec"}, true)
		if res.ExitCode == 0 || !strings.Contains(res.Stderr, "cannot clear ro,noexec") || !strings.Contains(res.Stderr, src) {
			t.Errorf("bind rw,exec of a ro,noexec source in a user namespace: want a failure naming ro,noexec and %s: %s", src, res)
		}
	})
}
