// Package pathrs resolves every path inside a container's root filesystem.
// A rootfs comes from an image and may hold symlinks that point anywhere;
// nothing in berth-runtime may open, create or mount on a path inside one
// except through this package, which never follows a link out of the root
// (github.com/cyphar/filepath-securejoin's pathrs-lite does the resolution,
// with openat2(RESOLVE_IN_ROOT) where the kernel has it).
package pathrs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Open returns an O_PATH handle to path inside root.
func Open(root *os.File, path string) (*os.File, error) {
	f, err := pathrs.OpenatInRoot(root, path)
	if err != nil {
		return nil, fmt.Errorf("open %s in rootfs: %w", path, err)
	}
	return f, nil
}

// MkdirAll creates path inside root as a directory, with its parents, and
// returns an O_PATH handle to it.
func MkdirAll(root *os.File, path string, mode os.FileMode) (*os.File, error) {
	f, err := pathrs.MkdirAllHandle(root, path, mode)
	if err != nil {
		return nil, fmt.Errorf("mkdir %s in rootfs: %w", path, err)
	}
	return f, nil
}

// Reopen turns an O_PATH handle into a real open file.
func Reopen(f *os.File, flags int) (*os.File, error) {
	return pathrs.Reopen(f, flags)
}

// MountPoint makes sure a mount target exists inside root — a directory, or
// an empty file when dir is false (for binding a file) — and returns an
// O_PATH handle to it. An existing target of the other kind is an error;
// a symlink as the last component is resolved inside root.
func MountPoint(root *os.File, path string, dir bool) (*os.File, error) {
	if dir {
		return MkdirAll(root, path, 0o755)
	}
	if f, err := pathrs.OpenatInRoot(root, path); err == nil {
		return f, nil
	}
	parent, err := MkdirAll(root, filepath.Dir(path), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	pfd, err := pathrs.Reopen(parent, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, fmt.Errorf("open parent of %s: %w", path, err)
	}
	defer pfd.Close()
	fd, err := unix.Openat(int(pfd.Fd()), filepath.Base(path), unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create mount point %s: %w", path, err)
	}
	if err == nil {
		unix.Close(fd)
	}
	return Open(root, path)
}

// InParent runs fn with an open directory fd of path's parent inside root
// (created if missing) and path's last component, for the *at syscalls that
// create or remove entries (mknodat, symlinkat, unlinkat).
func InParent(root *os.File, path string, fn func(dirfd int, name string) error) error {
	parent, err := MkdirAll(root, filepath.Dir(path), 0o755)
	if err != nil {
		return err
	}
	defer parent.Close()
	dir, err := pathrs.Reopen(parent, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open parent of %s: %w", path, err)
	}
	defer dir.Close()
	return fn(int(dir.Fd()), filepath.Base(path))
}

// ProcPath is the /proc/self/fd path of a handle, usable as the target of
// mount(2) so that the kernel acts on exactly the resolved inode.
func ProcPath(f *os.File) string {
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd())
}
