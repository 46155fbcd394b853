package fscopy

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/pathrs"
)

const (
	paxXattr   = "SCHILY.xattr."
	copyBuf    = 256 << 10
	maxXattrsz = 64 << 10 // XATTR_SIZE_MAX
)

// treeWriter writes a tree, walked through file descriptors, as a tar
// stream.
type treeWriter struct {
	ctx   context.Context
	tw    *tar.Writer
	links map[[2]uint64]string // dev/ino of files with several links → first name
	buf   []byte
}

func newTreeWriter(ctx context.Context, w io.Writer) *treeWriter {
	return &treeWriter{ctx: ctx, tw: tar.NewWriter(w), links: make(map[[2]uint64]string), buf: make([]byte, copyBuf)}
}

// writeTop writes the tree whose top is the O_PATH handle h under name in
// the stream. With contents, and h a directory, it writes the directory's
// children at the top level of the stream instead, preceded by the
// directory itself as "./" if self is set.
func (w *treeWriter) writeTop(h *os.File, name string, contents, self bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", h.Name(), err)
	}
	if !contents {
		return w.entry(h, &st, name, h.Name())
	}
	if self {
		return w.entry(h, &st, ".", h.Name())
	}
	d, err := reopen(h, &st, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", h.Name(), err)
	}
	defer d.Close()
	return w.children(d, "", h.Name())
}

// entry writes the object behind the O_PATH|O_NOFOLLOW handle h, which
// has stat st, as name; where names it for errors.
func (w *treeWriter) entry(h *os.File, st *unix.Stat_t, name, where string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	hdr := &tar.Header{
		Name:       name,
		Mode:       int64(st.Mode & 0o7777),
		Uid:        int(st.Uid),
		Gid:        int(st.Gid),
		ModTime:    time.Unix(st.Mtim.Unix()),
		AccessTime: time.Unix(st.Atim.Unix()),
		Format:     tar.FormatPAX,
	}
	fd := int(h.Fd())
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if st.Nlink > 1 {
			if first, ok := w.links[key]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return w.header(hdr, where)
			}
			w.links[key] = name
		}
		return w.file(h, st, hdr, where)
	case unix.S_IFDIR:
		return w.dir(h, st, hdr, where)
	case unix.S_IFLNK:
		target, err := readlink(fd)
		if err != nil {
			return fmt.Errorf("read symlink %s: %w", where, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		return w.header(hdr, where)
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		return w.header(hdr, where)
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
		return w.header(hdr, where)
	default:
		// Sockets cannot be archived; Docker skips them too.
		return nil
	}
}

func (w *treeWriter) header(hdr *tar.Header, where string) error {
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write tar header for %s: %w", where, err)
	}
	return nil
}

// reopen opens the inode behind the O_PATH handle h (pathrs reopens
// through a checked /proc/self/fd, which reaches exactly that inode
// whatever has happened to its name since).
func reopen(h *os.File, st *unix.Stat_t, flags int) (*os.File, error) {
	f, err := pathrs.Reopen(h, flags|unix.O_CLOEXEC|unix.O_NOCTTY)
	if err != nil {
		return nil, err
	}
	var got unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &got); err != nil {
		f.Close()
		return nil, err
	}
	if got.Dev != st.Dev || got.Ino != st.Ino {
		f.Close()
		return nil, errors.New("file changed while being copied")
	}
	return f, nil
}

// open reopens h for reading and records its xattrs in hdr.
func (w *treeWriter) open(h *os.File, st *unix.Stat_t, flags int, hdr *tar.Header, where string) (*os.File, error) {
	f, err := reopen(h, st, flags)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	if err := readXattrs(int(f.Fd()), hdr); err != nil {
		f.Close()
		return nil, fmt.Errorf("read xattrs of %s: %w", where, err)
	}
	return f, nil
}

func (w *treeWriter) file(h *os.File, st *unix.Stat_t, hdr *tar.Header, where string) error {
	// O_NONBLOCK: the type was checked on this inode, but be sure no open
	// can ever hang on a FIFO or device.
	f, err := w.open(h, st, unix.O_RDONLY|unix.O_NONBLOCK, hdr, where)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	if err := w.header(hdr, where); err != nil {
		return err
	}
	n, err := io.CopyBuffer(w.tw, io.LimitReader(ctxReader{w.ctx, f}, st.Size), w.buf)
	if err != nil {
		return fmt.Errorf("copy %s: %w", where, err)
	}
	if n != st.Size {
		return fmt.Errorf("copy %s: file shrank from %d to %d bytes while being copied", where, st.Size, n)
	}
	return nil
}

func (w *treeWriter) dir(h *os.File, st *unix.Stat_t, hdr *tar.Header, where string) error {
	d, err := w.open(h, st, unix.O_RDONLY|unix.O_DIRECTORY, hdr, where)
	if err != nil {
		return err
	}
	defer d.Close()
	hdr.Typeflag = tar.TypeDir
	hdr.Name = strings.TrimSuffix(hdr.Name, "/") + "/"
	if err := w.header(hdr, where); err != nil {
		return err
	}
	return w.children(d, hdr.Name, where)
}

// children writes the entries of the open directory d, named under prefix.
func (w *treeWriter) children(d *os.File, prefix, where string) error {
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", where, err)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := w.child(int(d.Fd()), n, path.Join(prefix, n), path.Join(where, n)); err != nil {
			return err
		}
	}
	return nil
}

func (w *treeWriter) child(dirfd int, base, name, where string) error {
	fd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil // removed since the directory was read: as tar does, skip
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", where, err)
	}
	h := os.NewFile(uintptr(fd), where)
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", where, err)
	}
	return w.entry(h, &st, name, where)
}

func (w *treeWriter) close() error {
	return w.tw.Close()
}

// readlink reads the target of the symlink behind an O_PATH handle.
func readlink(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// readXattrs records the extended attributes of an open file in hdr as
// PAX records, as GNU tar --xattrs does.
func readXattrs(fd int, hdr *tar.Header) error {
	size, err := unix.Flistxattr(fd, nil)
	if errors.Is(err, unix.ENOTSUP) || size == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	list := make([]byte, size)
	size, err = unix.Flistxattr(fd, list)
	if err != nil {
		return err
	}
	val := make([]byte, maxXattrsz)
	for _, key := range strings.Split(string(list[:size]), "\x00") {
		if key == "" {
			continue
		}
		n, err := unix.Fgetxattr(fd, key, val)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return fmt.Errorf("xattr %s: %w", key, err)
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = make(map[string]string)
		}
		hdr.PAXRecords[paxXattr+key] = string(val[:n])
	}
	return nil
}

// ctxReader stops a long copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
