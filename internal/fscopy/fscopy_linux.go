package fscopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/pathrs"
)

// Options tunes a copy. The zero value is `docker cp` without flags.
type Options struct {
	// Archive keeps owners as they are at the source (docker cp -a).
	// Without it, what is copied into a container belongs to its root
	// (0:0), and what is copied out to the user running berth, without
	// setuid/setgid bits, device nodes or security.*/trusted.* xattrs.
	Archive bool
	// FollowLink copies what a symlink source points to rather than the
	// link itself (docker cp -L). A source ending in "/" is followed
	// anyway.
	FollowLink bool
}

func firstOptions(opts []Options) Options {
	if len(opts) > 0 {
		return opts[0]
	}
	return Options{}
}

// CopyOut copies src, a path inside the container's root filesystem rootfs
// (a host directory where it is mounted), to dst on the host, or, if dst
// is "-", writes it to w as a tar stream. Docker's rules decide where it
// lands: see decide. A missing src is errdefs.ErrNotFound naming it.
func CopyOut(ctx context.Context, rootfs, src, dst string, w io.Writer, opts ...Options) error {
	o := firstOptions(opts)
	root, err := openDir(rootfs)
	if err != nil {
		return fmt.Errorf("copy out of %s: %w", rootfs, err)
	}
	defer root.Close()
	sp, err := parseCopyPath(src)
	if err != nil {
		return fmt.Errorf("copy out: source: %w", err)
	}
	h, isDir, err := openSource(root, sp, o.FollowLink)
	if err != nil {
		return err
	}
	defer h.Close()
	if dst == "-" {
		if w == nil {
			return fmt.Errorf("copy %s to a tar stream: no writer: %w", sp.clean, errdefs.ErrInvalidArgument)
		}
		if sp.sep && !isDir {
			return fmt.Errorf("source %s ends in a separator but is not a directory: %w", sp.clean, errdefs.ErrInvalidArgument)
		}
		tw := newTreeWriter(ctx, w)
		if err := tw.writeTop(h, path.Base(sp.clean), sp.contents, false); err != nil {
			return fmt.Errorf("copy %s to a tar stream: %w", sp.clean, err)
		}
		return tw.close()
	}
	dp, err := hostPath(dst)
	if err != nil {
		return fmt.Errorf("copy out: destination: %w", err)
	}
	exists, dstIsDir, err := statHost(dp.clean)
	if err != nil {
		return err
	}
	t, err := decide(sp, isDir, dp, exists, dstIsDir)
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", sp.clean, dp.clean, err)
	}
	into, err := os.OpenFile(t.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("copy %s to %s: directory %s does not exist: %w", sp.clean, dp.clean, t.dir, errdefs.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", sp.clean, dp.clean, err)
	}
	defer into.Close()
	var pol policy
	if !o.Archive {
		pol = policy{owner: &[2]int{os.Getuid(), os.Getgid()}, tame: true}
	}
	x := newExtractor(ctx, into, ".", pol)
	if err := pipeTree(ctx, h, t, false, x); err != nil {
		return fmt.Errorf("copy %s to %s: %w", sp.clean, dp.clean, err)
	}
	return nil
}

// CopyIn copies the host path src, or, if src is "-", the tar stream r,
// into the container's root filesystem rootfs at dst. A tar stream is
// extracted into dst, which must be an existing directory; a host path
// lands where Docker's rules say (see decide).
func CopyIn(ctx context.Context, rootfs, dst, src string, r io.Reader, opts ...Options) error {
	o := firstOptions(opts)
	root, err := openDir(rootfs)
	if err != nil {
		return fmt.Errorf("copy into %s: %w", rootfs, err)
	}
	defer root.Close()
	dp, err := parseCopyPath(dst)
	if err != nil {
		return fmt.Errorf("copy in: destination: %w", err)
	}
	exists, dstIsDir, err := statInRoot(root, dp.clean)
	if err != nil {
		return err
	}
	var pol policy
	if !o.Archive {
		pol.owner = &[2]int{0, 0}
	}
	if src == "-" {
		if r == nil {
			return fmt.Errorf("copy a tar stream to %s: no reader: %w", dp.clean, errdefs.ErrInvalidArgument)
		}
		if !exists {
			return fmt.Errorf("copy a tar stream to %s: destination does not exist: %w", dp.clean, errdefs.ErrNotFound)
		}
		if !dstIsDir {
			return fmt.Errorf("copy a tar stream to %s: destination is not a directory: %w", dp.clean, errdefs.ErrInvalidArgument)
		}
		if err := newExtractor(ctx, root, dp.clean, pol).run(r); err != nil {
			return fmt.Errorf("copy a tar stream to %s: %w", dp.clean, err)
		}
		return nil
	}
	sp, err := hostPath(src)
	if err != nil {
		return fmt.Errorf("copy in: source: %w", err)
	}
	hostRoot, err := openDir("/")
	if err != nil {
		return err
	}
	defer hostRoot.Close()
	h, isDir, err := openSource(hostRoot, sp, o.FollowLink)
	if err != nil {
		return err
	}
	defer h.Close()
	t, err := decide(sp, isDir, dp, exists, dstIsDir)
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", sp.clean, dp.clean, err)
	}
	if !exists {
		if ok, isDir, err := statInRoot(root, t.dir); err != nil {
			return err
		} else if !ok || !isDir {
			return fmt.Errorf("copy %s to %s: directory %s does not exist in the container: %w", sp.clean, dp.clean, t.dir, errdefs.ErrNotFound)
		}
	}
	x := newExtractor(ctx, root, t.dir, pol)
	if err := pipeTree(ctx, h, t, false, x); err != nil {
		return fmt.Errorf("copy %s to %s: %w", sp.clean, dp.clean, err)
	}
	return nil
}

// CopyDirInto copies the directory src inside rootfs onto the existing
// host directory dst, keeping owners, modes, times, symlinks and xattrs:
// src's entries go into dst and src's own owner, mode and times onto dst.
// This is how a volume is filled from the image on first use. A missing
// src is errdefs.ErrNotFound, one that is not a directory
// errdefs.ErrInvalidArgument.
func CopyDirInto(ctx context.Context, rootfs, src, dst string) error {
	root, err := openDir(rootfs)
	if err != nil {
		return fmt.Errorf("copy out of %s: %w", rootfs, err)
	}
	defer root.Close()
	sp, err := parseCopyPath(src)
	if err != nil {
		return fmt.Errorf("copy out: source: %w", err)
	}
	h, isDir, err := openSource(root, copyPath{clean: sp.clean, sep: true}, true)
	if err != nil {
		return err
	}
	defer h.Close()
	if !isDir {
		return fmt.Errorf("copy %s: not a directory: %w", sp.clean, errdefs.ErrInvalidArgument)
	}
	into, err := openDir(dst)
	if err != nil {
		return err
	}
	defer into.Close()
	x := newExtractor(ctx, into, ".", policy{})
	if err := pipeTree(ctx, h, target{contents: true}, true, x); err != nil {
		return fmt.Errorf("copy %s to %s: %w", sp.clean, dst, err)
	}
	return nil
}

// errStopped closes the pipe when extraction ends first.
var errStopped = errors.New("extraction stopped")

// pipeTree streams the tree at h through tar into x.
func pipeTree(ctx context.Context, h *os.File, t target, self bool, x *extractor) error {
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		tw := newTreeWriter(ctx, pw)
		err := tw.writeTop(h, t.name, t.contents, self)
		if err == nil {
			err = tw.close()
		}
		pw.CloseWithError(err)
		werr <- err
	}()
	xerr := x.run(pr)
	if xerr == nil {
		// The tar writer's end-of-archive padding.
		_, xerr = io.Copy(io.Discard, pr)
	}
	pr.CloseWithError(errStopped)
	if err := <-werr; err != nil && !errors.Is(err, errStopped) {
		return err
	}
	return xerr
}

// openDir opens a directory. A missing one is not errdefs.ErrNotFound:
// that means the source of a copy is missing, not a rootfs.
func openDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", dir, err)
	}
	return f, nil
}

// hostPath reads a host path, made absolute against the working directory.
func hostPath(p string) (copyPath, error) {
	c, err := parseCopyPath(p)
	if err != nil {
		return c, err
	}
	if !filepath.IsAbs(p) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return c, err
		}
		c.clean = abs
		if c.clean == "/" {
			c.contents, c.sep = true, true
		}
	}
	return c, nil
}

func statHost(p string) (exists, isDir bool, err error) {
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("stat %s: %w", p, err)
	}
	return true, fi.IsDir(), nil
}

// notExist reports errors that mean a path is not there: a missing
// component, or one that is a file where a directory should be.
func notExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR)
}

// statInRoot looks at p inside root, following symlinks inside it.
func statInRoot(root *os.File, p string) (exists, isDir bool, err error) {
	h, err := pathrs.Open(root, p)
	if notExist(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return false, false, fmt.Errorf("stat %s: %w", p, err)
	}
	return true, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// openSource returns an O_PATH handle on the source inside root. The
// directories on the way are resolved inside root; the last component is
// followed only with follow or a trailing separator, otherwise a symlink
// is copied as a symlink.
func openSource(root *os.File, sp copyPath, follow bool) (*os.File, bool, error) {
	var h *os.File
	var err error
	if follow || sp.sep || sp.clean == "/" {
		h, err = pathrs.Open(root, sp.clean)
	} else {
		h, err = openNoFollow(root, sp.clean)
	}
	if notExist(err) {
		return nil, false, fmt.Errorf("copy %s: no such file or directory: %w", sp.clean, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, false, fmt.Errorf("copy %s: %w", sp.clean, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		h.Close()
		return nil, false, fmt.Errorf("stat %s: %w", sp.clean, err)
	}
	return h, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

func openNoFollow(root *os.File, p string) (*os.File, error) {
	parent, err := pathrs.Open(root, path.Dir(p))
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	base := path.Base(p)
	if strings.Contains(base, "/") || base == ".." || base == "." {
		return nil, fmt.Errorf("bad path %s", p)
	}
	fd, err := unix.Openat(int(parent.Fd()), base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	return os.NewFile(uintptr(fd), p), nil
}
