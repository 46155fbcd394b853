package initproc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// maxCopyUpDepth bounds how deep copyTree goes: an image's directory tree
// is bounded by the path length limit, but a hostile one should get an
// error, not a goroutine stack of that depth.
const maxCopyUpDepth = 128

// copyTree copies the contents of the directory src into the directory dst
// (both open files), keeping modes, owners, symlinks and modification
// times. Every entry is opened relative to its parent's fd without
// following symlinks, so nothing in the tree can lead the copy outside it.
// Hard links become separate files and extended attributes are not copied,
// as with runc's tmpcopyup. name is dst's path in the container, for
// errors.
func copyTree(src, dst *os.File, name string, depth int) error {
	if depth > maxCopyUpDepth {
		return fmt.Errorf("%s: more than %d directories deep", name, maxCopyUpDepth)
	}
	ents, err := src.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, e := range ents {
		n, where := e.Name(), path.Join(name, e.Name())
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", where, err)
		}
		perm := st.Mode & 0o7777
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := unix.Mkdirat(dfd, n, 0o700); err != nil {
				return fmt.Errorf("mkdir %s: %w", where, err)
			}
			if err := copyDir(sfd, dfd, n, where, depth); err != nil {
				return err
			}
		case unix.S_IFREG:
			if err := copyFile(sfd, dfd, n, where); err != nil {
				return err
			}
		case unix.S_IFLNK:
			target, err := readlinkat(sfd, n)
			if err != nil {
				return fmt.Errorf("readlink %s: %w", where, err)
			}
			if err := unix.Symlinkat(target, dfd, n); err != nil {
				return fmt.Errorf("symlink %s: %w", where, err)
			}
		case unix.S_IFSOCK:
			continue // a socket is nothing without its listener
		default: // fifos and device nodes
			if err := unix.Mknodat(dfd, n, st.Mode&unix.S_IFMT|perm, int(st.Rdev)); err != nil {
				return fmt.Errorf("mknod %s: %w", where, err)
			}
		}
		if err := unix.Fchownat(dfd, n, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", where, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			// After the chown, which clears setuid and setgid.
			if err := unix.Fchmodat(dfd, n, perm, 0); err != nil {
				return fmt.Errorf("chmod %s: %w", where, err)
			}
		}
		ts := []unix.Timespec{st.Atim, st.Mtim}
		if err := unix.UtimesNanoAt(dfd, n, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set the times of %s: %w", where, err)
		}
	}
	return nil
}

func copyDir(sfd, dfd int, n, where string, depth int) error {
	open := func(fd int) (*os.File, error) {
		nfd, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", where, err)
		}
		return os.NewFile(uintptr(nfd), where), nil
	}
	s, err := open(sfd)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := open(dfd)
	if err != nil {
		return err
	}
	defer d.Close()
	return copyTree(s, d, where, depth+1)
}

func copyFile(sfd, dfd int, n, where string) error {
	s, err := unix.Openat(sfd, n, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", where, err)
	}
	sf := os.NewFile(uintptr(s), where)
	defer sf.Close()
	d, err := unix.Openat(dfd, n, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", where, err)
	}
	df := os.NewFile(uintptr(d), where)
	_, err = io.Copy(df, sf)
	if cerr := df.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("copy %s: the tmpfs is too small for the directory it covers: %w", where, err)
		}
		return fmt.Errorf("copy %s: %w", where, err)
	}
	return nil
}

func readlinkat(fd int, n string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		k, err := unix.Readlinkat(fd, n, buf)
		if err != nil {
			return "", err
		}
		if k < size {
			return string(buf[:k]), nil
		}
	}
}
