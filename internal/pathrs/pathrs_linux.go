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
	goruntime "runtime"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Open returns an O_PATH handle to path inside root.
func Open(root *os.File, path string) (*os.File, error) {
	f, err := openat2InRoot(root, path, unix.O_PATH)
	if !errors.Is(err, errNoOpenat2) {
		if err != nil {
			return nil, fmt.Errorf("open %s in rootfs: %w", path, err)
		}
		return f, nil
	}
	f, err = pathrs.OpenatInRoot(root, path)
	if err != nil {
		return nil, fmt.Errorf("open %s in rootfs: %w", path, err)
	}
	return f, nil
}

// MkdirAll creates path inside root as a directory, with its parents, and
// returns a handle to it opened O_RDONLY|O_DIRECTORY (as pathrs-lite's
// MkdirAllHandle returns it).
func MkdirAll(root *os.File, path string, mode os.FileMode) (*os.File, error) {
	// Most targets exist already (/proc, /dev, /sys in an image): one
	// openat2 finds them. Anything else (a missing component, a
	// non-directory, no openat2) takes pathrs-lite's path, which creates
	// the missing part and words the errors.
	f, err := openat2InRoot(root, path, unix.O_RDONLY|unix.O_DIRECTORY)
	if err == nil {
		return f, nil
	}
	if errors.Is(err, unix.ENOENT) {
		if f, err := mkdirLast(root, path, mode); err == nil {
			return f, nil
		}
	}
	f, err = pathrs.MkdirAllHandle(root, path, mode)
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
	fd, err := unix.Openat(int(parent.Fd()), filepath.Base(path), unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0o644)
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
	return fn(int(parent.Fd()), filepath.Base(path))
}

// mkdirLast creates the last component of path where its parent exists
// (a mount point for a cgroup hierarchy in a tmpfs just mounted, /dev/pts
// in a fresh /dev), the way pathrs-lite creates each missing component:
// mkdirat in the parent, resolved in root, then an open of the new entry
// that refuses symlinks and other mounts. Anything else (".." in the path,
// a missing parent, a dangling symlink in the last place, a mode with more
// than permission bits) is an error, and the caller leaves it to
// pathrs-lite.
func mkdirLast(root *os.File, path string, mode os.FileMode) (*os.File, error) {
	dir, base := filepath.Split(filepath.Clean("/" + path))
	if base == "" || base == "." || base == ".." || strings.Contains(path, "..") || mode&^os.ModePerm != 0 {
		return nil, errNoOpenat2
	}
	parent, err := openat2InRoot(root, dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	if err := unix.Mkdirat(int(parent.Fd()), base, uint32(mode)); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, err
	}
	fd, err := unix.Openat2(int(parent.Fd()), base, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(parent.Name(), base)), nil
}

// errNoOpenat2 says the kernel (or a seccomp filter around us) has no
// openat2: pathrs-lite's own resolver is used instead.
var errNoOpenat2 = errors.New("openat2 not available")

// openat2InRoot resolves path inside root with openat2(RESOLVE_IN_ROOT |
// RESOLVE_NO_MAGICLINKS), the same call pathrs-lite makes where the kernel
// has openat2, minus what pathrs-lite adds on every lookup only to give the
// *os.File its resolved name (a private procfs instance, a readlink of
// /proc/thread-self/fd/N and its checks: ~12 syscalls, ~25 lookups per
// container init). The kernel confines the whole walk to root either way.
// EAGAIN and EXDEV (a rename or mount racing the walk) are retried a
// bounded number of times, as pathrs-lite does. ENOSYS and EPERM (openat2
// denied by a seccomp filter) return errNoOpenat2; no other error falls
// back, so a lookup that fails under openat2 never gets a second try
// through a weaker resolver.
func openat2InRoot(root *os.File, path string, flags uint64) (*os.File, error) {
	how := &unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(int(root.Fd()), path, how)
		goruntime.KeepAlive(root)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), filepath.Join(root.Name(), path)), nil
		case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
			return nil, errNoOpenat2
		case (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EXDEV)) && tries < maxOpenat2Retries:
			continue
		default:
			return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
		}
	}
}

// maxOpenat2Retries is pathrs-lite's bound on retries of a scoped lookup.
const maxOpenat2Retries = 128

// ProcPath is the /proc/self/fd path of a handle, usable as the target of
// mount(2) so that the kernel acts on exactly the resolved inode.
func ProcPath(f *os.File) string {
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd())
}
