package pathrs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// newRoot makes a rootfs whose symlinks all point out of it, and a
// directory outside it (beside it, named "outside" as one inside it is)
// that no lookup may reach.
func newRoot(t *testing.T) (*os.File, string) {
	t.Helper()
	top := t.TempDir()
	dir := filepath.Join(top, "rootfs")
	outside := filepath.Join(top, "outside")
	for _, d := range []string{filepath.Join(dir, "etc"), filepath.Join(dir, "outside"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"abs":     "/outside",                    // absolute: taken as inside root
		"up":      "../outside",                  // relative: clamped at root
		"procfd":  "/proc/self/root/etc",         // a magic link is refused
		"dangles": filepath.Join(top, "nowhere"), // inside: rootfs/<top>/nowhere
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root, dir
}

func TestOpenStaysInRoot(t *testing.T) {
	root, _ := newRoot(t)
	for _, p := range []string{"abs/secret", "up/secret", "/../outside/secret", "dangles"} {
		if f, err := Open(root, p); err == nil {
			f.Close()
			t.Errorf("Open(%q) reached a file outside the root", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want not-exist", p, err)
		}
	}
	if f, err := Open(root, "procfd"); err == nil {
		f.Close()
		t.Error("Open followed a /proc magic link")
	}
	f, err := Open(root, "/etc/../etc/file")
	if err != nil {
		t.Fatalf("Open of a file in the root: %v", err)
	}
	defer f.Close()
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_PATH == 0 {
		t.Errorf("Open returned flags %#o (%v), want an O_PATH handle", flags, err)
	}
}

func TestMkdirAllStaysInRoot(t *testing.T) {
	root, dir := newRoot(t)
	// Existing directory (the openat2 path) and new ones (pathrs-lite's),
	// through links that point out of the root.
	for _, p := range []string{"etc", "abs/made", "up/made2/deeper", "outside/made"} {
		f, err := MkdirAll(root, p, 0o755)
		if err != nil {
			t.Fatalf("MkdirAll(%q): %v", p, err)
		}
		flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		f.Close()
		if err != nil || flags&unix.O_PATH != 0 || flags&unix.O_DIRECTORY == 0 {
			t.Errorf("MkdirAll(%q) returned flags %#o (%v), want O_RDONLY|O_DIRECTORY", p, flags, err)
		}
	}
	for _, made := range []string{"outside/made", "outside/made2/deeper"} {
		if _, err := os.Stat(filepath.Join(dir, made)); err != nil {
			t.Errorf("%s not made inside the root: %v", made, err)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "outside", "made")); err == nil {
		t.Error("MkdirAll made a directory outside the root")
	}
	// A dangling link in the last place is pathrs-lite's to judge, and a
	// link where the new directory would go is never followed out.
	if f, err := MkdirAll(root, "dangles", 0o755); err == nil {
		f.Close()
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "nowhere")); err == nil {
		t.Error("MkdirAll followed a dangling link out of the root")
	}
	if f, err := MkdirAll(root, "etc/file", 0o755); err == nil {
		f.Close()
		t.Error("MkdirAll over an existing file succeeded")
	}
}

func TestInParentAndMountPoint(t *testing.T) {
	root, dir := newRoot(t)
	err := InParent(root, "up/new/node", func(dirfd int, name string) error {
		return unix.Mkdirat(dirfd, name, 0o700)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "outside", "new", "node")); err != nil {
		t.Errorf("InParent did not act inside the root: %v", err)
	}
	f, err := MountPoint(root, "abs/dev/console", false)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, err := os.Stat(filepath.Join(dir, "outside", "dev", "console")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("MountPoint did not make a file inside the root: %v", err)
	}
}
