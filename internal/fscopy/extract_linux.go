package fscopy

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/pathrs"
)

// extractor writes a tar stream into the directory base inside root.
// Every parent directory is resolved inside root (symlinks followed, but
// only within root); every last component is created relative to its
// parent's fd with O_EXCL/O_NOFOLLOW semantics.
type extractor struct {
	ctx  context.Context
	root *os.File
	base string
	pol  policy
	buf  []byte
	dirs []dirTime

	parentName string   // the cached parent directory ...
	parent     *os.File // ... and its open fd
}

// policy says what of a stream's metadata an extraction keeps.
type policy struct {
	owner *[2]int // nil: owners as the stream says
	// tame drops what would hand privilege to a container's files on the
	// host: setuid and setgid bits, device nodes, and security.* and
	// trusted.* xattrs (file capabilities). berth runs as root, so without
	// it a copy out of a hostile container could leave a setuid-root
	// shell or a world-writable /dev/mem on the host.
	tame bool
}

func (p policy) mode(hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode & 0o7777)
	if p.tame {
		m &^= unix.S_ISUID | unix.S_ISGID
	}
	return m
}

type dirTime struct {
	name         string
	atime, mtime time.Time
}

func newExtractor(ctx context.Context, root *os.File, base string, pol policy) *extractor {
	return &extractor{ctx: ctx, root: root, base: base, pol: pol, buf: make([]byte, copyBuf)}
}

func (x *extractor) close() {
	if x.parent != nil {
		x.parent.Close()
		x.parent = nil
	}
}

// run extracts the whole stream; what it extracted before an error stays.
func (x *extractor) run(r io.Reader) error {
	defer x.close()
	tr := tar.NewReader(r)
	last := ""
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			err = nil // cleanEntry is stricter and names the entry
		}
		if err != nil {
			if last == "" {
				return fmt.Errorf("read first tar header: %w", err)
			}
			return fmt.Errorf("read tar header after entry %q: %w", last, err)
		}
		last = hdr.Name
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
	return x.finishDirs()
}

func badEntry(name, format string, args ...any) error {
	return fmt.Errorf("tar entry %q: %s: %w", name, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// cleanEntry turns a tar entry name into a clean relative path, "." for
// the top directory itself. Absolute names and ".." are refused rather
// than clamped: a stream that needs them is not one we wrote.
func cleanEntry(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains NUL")
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New(`name contains ".."`)
		}
	}
	return path.Clean(name), nil
}

// parentDir returns an open directory fd for dir inside root, making
// missing directories (0755, as tar does for implied parents).
func (x *extractor) parentDir(dir string) (int, error) {
	if x.parent != nil && x.parentName == dir {
		return int(x.parent.Fd()), nil
	}
	x.close()
	h, err := pathrs.MkdirAll(x.root, dir, 0o755)
	if err != nil {
		return -1, err
	}
	defer h.Close()
	d, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open directory %s: %w", dir, err)
	}
	x.parent, x.parentName = d, dir
	return int(d.Fd()), nil
}

func (x *extractor) entry(hdr *tar.Header, tr *tar.Reader) error {
	name, err := cleanEntry(hdr.Name)
	if err != nil {
		return badEntry(hdr.Name, "%v", err)
	}
	full := path.Join(x.base, name)
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return badEntry(hdr.Name, "the top of the copy must be a directory")
		}
		return x.topDir(hdr, full)
	}
	pfd, err := x.parentDir(path.Dir(full))
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	base := path.Base(full)
	var old unix.Stat_t
	err = unix.Fstatat(pfd, base, &old, unix.AT_SYMLINK_NOFOLLOW)
	exists := err == nil
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("tar entry %q: stat %s: %w", hdr.Name, full, err)
	}
	oldDir := exists && old.Mode&unix.S_IFMT == unix.S_IFDIR
	if hdr.Typeflag == tar.TypeDir {
		if exists && !oldDir {
			return badEntry(hdr.Name, "cannot overwrite non-directory %s with a directory", full)
		}
		return x.dir(hdr, pfd, base, full, exists)
	}
	if oldDir {
		return badEntry(hdr.Name, "cannot overwrite directory %s with a non-directory", full)
	}
	if exists {
		if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("tar entry %q: replace %s: %w", hdr.Name, full, err)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		err = x.file(hdr, tr, pfd, base)
	case tar.TypeSymlink:
		err = x.symlink(hdr, pfd, base)
	case tar.TypeLink:
		err = x.link(hdr, pfd, base)
	case tar.TypeChar, tar.TypeBlock:
		if x.pol.tame {
			return nil
		}
		err = x.node(hdr, pfd, base)
	case tar.TypeFifo:
		err = x.node(hdr, pfd, base)
	default:
		return badEntry(hdr.Name, "unsupported entry type %q", hdr.Typeflag)
	}
	if err != nil {
		return fmt.Errorf("tar entry %q: create %s: %w", hdr.Name, full, err)
	}
	return nil
}

func (x *extractor) ids(hdr *tar.Header) (int, int) {
	if x.pol.owner != nil {
		return x.pol.owner[0], x.pol.owner[1]
	}
	return hdr.Uid, hdr.Gid
}

// meta sets owner, mode and xattrs on an open file or directory; in that
// order, since chown clears setuid bits and security.capability.
func (x *extractor) meta(hdr *tar.Header, fd int) error {
	uid, gid := x.ids(hdr)
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, x.pol.mode(hdr)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(k, paxXattr)
		if !ok || strings.HasPrefix(key, "trusted.overlay.") || strings.HasPrefix(key, "user.overlay.") {
			// overlayfs state is never copied: it would change what a
			// container sees through its rootfs mount.
			continue
		}
		if x.pol.tame && (strings.HasPrefix(key, "security.") || strings.HasPrefix(key, "trusted.")) {
			continue
		}
		err := unix.Fsetxattr(fd, key, []byte(v), 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("set xattr %s: %w", key, err)
		}
	}
	return nil
}

func timespecs(hdr *tar.Header) []unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
}

func (x *extractor) file(hdr *tar.Header, tr *tar.Reader, pfd int, base string) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	if _, err := io.CopyBuffer(f, ctxReader{x.ctx, tr}, x.buf); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := x.meta(hdr, fd); err != nil {
		return err
	}
	return unix.UtimesNanoAt(pfd, base, timespecs(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

func (x *extractor) symlink(hdr *tar.Header, pfd int, base string) error {
	// The target is stored as given: it is resolved by whoever follows it,
	// and everything here resolves inside its root.
	if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
		return err
	}
	uid, gid := x.ids(hdr)
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return unix.UtimesNanoAt(pfd, base, timespecs(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

func (x *extractor) link(hdr *tar.Header, pfd int, base string) error {
	target, err := cleanEntry(hdr.Linkname)
	if err != nil || target == "." {
		return badEntry(hdr.Name, "hard link target %q: not a path inside the copy", hdr.Linkname)
	}
	full := path.Join(x.base, target)
	th, err := pathrs.Open(x.root, path.Dir(full))
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	defer th.Close()
	// No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
	return unix.Linkat(int(th.Fd()), path.Base(full), pfd, base, 0)
}

func (x *extractor) node(hdr *tar.Header, pfd int, base string) error {
	mode := uint32(unix.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode = unix.S_IFCHR
	case tar.TypeBlock:
		mode = unix.S_IFBLK
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(pfd, base, mode|0o600, int(dev)); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != mode {
		return errors.New("replaced while being created")
	}
	uid, gid := x.ids(hdr)
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	// chmod through the fd's magic link reaches exactly this inode.
	if err := unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), x.pol.mode(hdr)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return unix.UtimesNanoAt(pfd, base, timespecs(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

func (x *extractor) dir(hdr *tar.Header, pfd int, base, full string, exists bool) error {
	if !exists {
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("tar entry %q: mkdir %s: %w", hdr.Name, full, err)
		}
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tar entry %q: open %s: %w", hdr.Name, full, err)
	}
	defer unix.Close(fd)
	if err := x.meta(hdr, fd); err != nil {
		return fmt.Errorf("tar entry %q: %s: %w", hdr.Name, full, err)
	}
	x.dirs = append(x.dirs, dirTime{name: full, atime: hdr.AccessTime, mtime: hdr.ModTime})
	return nil
}

// topDir gives the destination directory itself the stream's "./" entry.
func (x *extractor) topDir(hdr *tar.Header, full string) error {
	h, err := pathrs.MkdirAll(x.root, full, 0o755)
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	defer h.Close()
	d, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("tar entry %q: open %s: %w", hdr.Name, full, err)
	}
	defer d.Close()
	if err := x.meta(hdr, int(d.Fd())); err != nil {
		return fmt.Errorf("tar entry %q: %s: %w", hdr.Name, full, err)
	}
	x.dirs = append(x.dirs, dirTime{name: full, atime: hdr.AccessTime, mtime: hdr.ModTime})
	return nil
}

// finishDirs sets directory times last, deepest first, since creating
// their entries changed them.
func (x *extractor) finishDirs() error {
	x.close()
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		h, err := pathrs.Open(x.root, d.name)
		if err != nil {
			return err
		}
		hdr := &tar.Header{AccessTime: d.atime, ModTime: d.mtime}
		err = unix.UtimesNanoAt(unix.AT_FDCWD, pathrs.ProcPath(h), timespecs(hdr), 0)
		h.Close()
		if err != nil {
			return fmt.Errorf("set times of %s: %w", d.name, err)
		}
	}
	return nil
}
