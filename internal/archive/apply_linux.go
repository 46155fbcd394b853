package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
)

const (
	whiteoutPrefix = ".wh."
	// whiteoutMeta prefixes aufs bookkeeping files (.wh..wh.plnk,
	// .wh..wh.aufs) that old Docker layers carry; they mean nothing to
	// overlayfs and are skipped, as Docker and containerd do.
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"

	overlayOpaque = "trusted.overlay.opaque"
	paxXattr      = "SCHILY.xattr."

	copyBufSize   = 256 << 10
	maxCachedDirs = 512
)

// Apply extracts an OCI layer tar stream (uncompressed) into dir, the upper
// directory of an overlayfs snapshot. See the package comment for what is
// guaranteed. It returns the number of bytes read from r; after the tar's
// end-of-archive marker it reads r to its end, so a digest computed over r
// covers the whole blob.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (int64, error) {
	root, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open layer target %s: %w", dir, err)
	}
	a := &applier{
		root: root,
		dirs: make(map[string]*os.File),
		buf:  make([]byte, copyBufSize),
	}
	defer a.close()
	for _, p := range opts.Parents {
		l, err := os.OpenFile(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open parent layer %s: %w", p, err)
		}
		a.lowers = append(a.lowers, l)
	}

	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return cr.n, fmt.Errorf("apply layer to %s: %w", dir, err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			// Only with GODEBUG=tarinsecurepath=0; cleanName below is
			// stricter and names the entry.
			err = nil
		}
		if err != nil {
			if last == "" {
				return cr.n, fmt.Errorf("read first tar header: %w", err)
			}
			return cr.n, fmt.Errorf("read tar header after entry %q: %w", last, err)
		}
		last = hdr.Name
		err = a.entry(hdr, tr)
		a.closeRetired()
		if err != nil {
			return cr.n, err
		}
	}
	if err := a.finishDirs(); err != nil {
		return cr.n, err
	}
	// Trailing zero blocks and padding after the end-of-archive marker.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return cr.n, fmt.Errorf("read layer trailer: %w", err)
	}
	return cr.n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type dirTime struct {
	name         string
	atime, mtime time.Time
}

// applier holds the state of one Apply. It is used by one goroutine.
type applier struct {
	root *os.File
	// dirs caches open directory handles by cleaned name. They were
	// resolved without symlinks; the cache is dropped whenever a directory
	// is removed, because a cached handle could then point at a directory
	// that is no longer in the tree.
	dirs map[string]*os.File
	// retired are handles dropped from dirs, closed after the entry.
	retired  []*os.File
	dirTimes []dirTime
	buf      []byte
	// lowers are ApplyOptions.Parents, opened O_PATH, nearest first.
	lowers []*os.File
}

func (a *applier) close() {
	a.dropDirs()
	a.closeRetired()
	a.root.Close()
	for _, l := range a.lowers {
		l.Close()
	}
}

// dropDirs empties the cache. The handles are retired, not closed: the
// entry being applied may hold one (the parent it replaces a directory
// in), and a closed descriptor's number could be reused, by this Apply or
// another running beside it, for some other directory.
func (a *applier) dropDirs() {
	for k, f := range a.dirs {
		a.retired = append(a.retired, f)
		delete(a.dirs, k)
	}
}

// closeRetired closes the handles dropDirs retired; it runs between
// entries, when no handle of the cache is held.
func (a *applier) closeRetired() {
	for _, f := range a.retired {
		f.Close()
	}
	a.retired = a.retired[:0]
}

// hostile builds the error for an entry that tries to leave the target or
// is malformed. It always names the entry.
func hostile(name, format string, args ...any) error {
	return fmt.Errorf("layer entry %q: %s: %w", name, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// cleanName turns a tar path into a clean relative path. It refuses
// absolute paths and any ".." component outright rather than resolving
// them: no legitimate layer needs either, and refusing is simpler to trust
// than clamping.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty path")
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New(`path contains ".."`)
		}
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("path contains NUL")
	}
	return path.Clean(name), nil
}

// dir returns an open handle on the directory name inside the root,
// resolved without following any symlink. With create, missing directories
// are made (0755, like tar's implied parents).
func (a *applier) dir(entry, name string, create bool) (*os.File, error) {
	if name == "." {
		return a.root, nil
	}
	if f, ok := a.dirs[name]; ok {
		return f, nil
	}
	f, err := a.openDir(name)
	if errors.Is(err, unix.ENOENT) && create && len(a.lowers) > 0 {
		if err := a.mkImplied(entry, name); err != nil {
			return nil, err
		}
		f, err = a.openDir(name)
	} else if errors.Is(err, unix.ENOENT) && create {
		// No symlink lies on the existing prefix of name (openat2 would
		// have said ELOOP first), so pathrs only creates below real
		// directories; it resolves inside the root whatever happens.
		var h *os.File
		h, err = pathrs.MkdirAllHandle(a.root, name, 0o755)
		if err == nil {
			h.Close()
			f, err = a.openDir(name)
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, unix.ELOOP):
		return nil, hostile(entry, "directory %q is or crosses a symlink; refusing to write through it", name)
	case errors.Is(err, unix.EXDEV):
		return nil, hostile(entry, "directory %q resolves outside the layer", name)
	case errors.Is(err, unix.ENOTDIR):
		return nil, hostile(entry, "%q is not a directory", name)
	default:
		return nil, fmt.Errorf("layer entry %q: open directory %q: %w", entry, name, err)
	}
	if len(a.dirs) >= maxCachedDirs {
		a.dropDirs()
	}
	a.dirs[name] = f
	return f, nil
}

// mkImplied makes the missing directories of name one by one, each with
// the owner, mode and times of the directory the merged view shows there
// now (see lowerDir). Every parent is resolved by a.dir, without symlinks.
func (a *applier) mkImplied(entry, name string) error {
	comps := strings.Split(name, "/")
	for i := range comps {
		prefix := strings.Join(comps[:i+1], "/")
		parent, err := a.dir(entry, path.Dir(prefix), false)
		if err != nil {
			return err
		}
		pfd, base := int(parent.Fd()), comps[i]
		err = unix.Mkdirat(pfd, base, 0o755)
		if errors.Is(err, unix.EEXIST) {
			continue // a.dir of the next prefix checks it is a directory
		}
		if err != nil {
			return fmt.Errorf("layer entry %q: make implied directory %q: %w", entry, prefix, err)
		}
		st, ok := a.lowerDir(prefix)
		if !ok {
			continue
		}
		if err := unix.Fchownat(pfd, base, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("layer entry %q: chown implied directory %q: %w", entry, prefix, err)
		}
		if err := unix.Fchmodat(pfd, base, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("layer entry %q: chmod implied directory %q: %w", entry, prefix, err)
		}
		a.dirTimes = append(a.dirTimes, dirTime{name: prefix,
			atime: time.Unix(st.Atim.Unix()), mtime: time.Unix(st.Mtim.Unix())})
	}
	return nil
}

// lowerDir finds the directory the merged view shows at name today: in the
// nearest lower layer that has name, unless something nearer hides it (a
// whiteout, an opaque directory, a non-directory on the way, here or in the
// upper directory). A symlink on the way ends the search too: what lies
// behind it is not a directory at name.
func (a *applier) lowerDir(name string) (unix.Stat_t, bool) {
	if hidden(a.root, name) {
		return unix.Stat_t{}, false
	}
	for _, l := range a.lowers {
		fd, err := unix.Openat2(int(l.Fd()), name, &unix.OpenHow{
			Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS |
				unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
		})
		if err == nil {
			var st unix.Stat_t
			err = unix.Fstat(fd, &st)
			unix.Close(fd)
			return st, err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
		}
		if !errors.Is(err, unix.ENOENT) || hidden(l, name) {
			return unix.Stat_t{}, false
		}
	}
	return unix.Stat_t{}, false
}

// hidden reports whether layer hides the layers below it at name: an
// ancestor of name is opaque there, or is not a directory (a whiteout).
func hidden(layer *os.File, name string) bool {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		fd, err := unix.Openat2(int(layer.Fd()), dir, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return true
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		buf := make([]byte, 1)
		n, xerr := unix.Getxattr("/proc/self/fd/"+strconv.Itoa(fd), overlayOpaque, buf)
		unix.Close(fd)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || (xerr == nil && n == 1 && buf[0] == 'y') {
			return true
		}
	}
	return false
}

func (a *applier) openDir(name string) (*os.File, error) {
	fd, err := unix.Openat2(int(a.root.Fd()), name, &unix.OpenHow{
		Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS |
			unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// remove deletes whatever is at base in parent, recursively; a missing
// name is not an error.
func (a *applier) remove(parent *os.File, base string) error {
	wasDir, err := removeAt(int(parent.Fd()), base)
	if wasDir {
		a.dropDirs()
	}
	return err
}

func removeAt(dirfd int, name string) (wasDir bool, err error) {
	err = unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return false, err
	}
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if err == nil || !errors.Is(err, unix.ENOTEMPTY) {
		return true, err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if _, err = removeAt(fd, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return true, err
	}
	return true, unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

func (a *applier) entry(hdr *tar.Header, tr *tar.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return hostile(hdr.Name, "%v", err)
	}
	parentName, base := path.Dir(name), path.Base(name)

	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(hdr.Name, parentName, base)
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return hostile(hdr.Name, "the layer root must be a directory")
		}
		if err := a.metadata(hdr, a.root, ".", ".", true); err != nil {
			return err
		}
		a.dirTimes = append(a.dirTimes, dirTime{name: ".", atime: accessTime(hdr), mtime: hdr.ModTime})
		return nil
	}

	parent, err := a.dir(hdr.Name, parentName, true)
	if err != nil {
		return err
	}
	pfd := int(parent.Fd())

	switch hdr.Typeflag {
	case tar.TypeDir:
		var st unix.Stat_t
		err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := a.remove(parent, base); err != nil {
				return fmt.Errorf("layer entry %q: replace existing file: %w", hdr.Name, err)
			}
			err = unix.ENOENT
		}
		if errors.Is(err, unix.ENOENT) {
			err = unix.Mkdirat(pfd, base, 0o700)
		}
		if err != nil {
			return fmt.Errorf("layer entry %q: make directory: %w", hdr.Name, err)
		}
		d, err := a.dir(hdr.Name, name, false)
		if err != nil {
			return err
		}
		if err := a.metadata(hdr, d, ".", name, true); err != nil {
			return err
		}
		a.dirTimes = append(a.dirTimes, dirTime{name: name, atime: accessTime(hdr), mtime: hdr.ModTime})
		return nil

	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old tars still use TypeRegA
		fd, err := a.create(parent, base, func() (int, error) {
			return unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		})
		if err != nil {
			return fmt.Errorf("layer entry %q: create file: %w", hdr.Name, err)
		}
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		// Plain Writer/Reader wrappers keep io.CopyBuffer on our buffer
		// instead of os.File.ReadFrom's small generic one.
		if _, err := io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{tr}, a.buf); err != nil {
			return fmt.Errorf("layer entry %q: write file: %w", hdr.Name, err)
		}
		// Data first, then owner, then mode, then xattrs: writing drops
		// security.capability and chown drops setuid/setgid.
		return a.metadata(hdr, f, ".", name, false)

	case tar.TypeSymlink:
		if _, err := a.create(parent, base, func() (int, error) {
			return -1, unix.Symlinkat(hdr.Linkname, pfd, base)
		}); err != nil {
			return fmt.Errorf("layer entry %q: create symlink: %w", hdr.Name, err)
		}
		return a.metadata(hdr, parent, base, name, false)

	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return hostile(hdr.Name, "hard link target %q: %v", hdr.Linkname, err)
		}
		if target == "." {
			return hostile(hdr.Name, "hard link to the layer root")
		}
		tparent, err := a.dir(hdr.Name, path.Dir(target), false)
		if errors.Is(err, unix.ENOENT) {
			return hostile(hdr.Name, "hard link target %q is not in this layer", hdr.Linkname)
		}
		if err != nil {
			return err
		}
		if _, err := a.create(parent, base, func() (int, error) {
			// Flags 0: if the target is a symlink, link the symlink
			// itself, never what it points to.
			return -1, unix.Linkat(int(tparent.Fd()), path.Base(target), pfd, base, 0)
		}); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return hostile(hdr.Name, "hard link target %q is not in this layer", hdr.Linkname)
			}
			return fmt.Errorf("layer entry %q: hard link to %q: %w", hdr.Name, hdr.Linkname, err)
		}
		return nil

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if _, err := a.create(parent, base, func() (int, error) {
			return -1, unix.Mknodat(pfd, base, mode|0o600, int(dev))
		}); err != nil {
			return fmt.Errorf("layer entry %q: make device node: %w", hdr.Name, err)
		}
		return a.metadata(hdr, parent, base, name, false)

	case tar.TypeXGlobalHeader:
		return nil
	default:
		return hostile(hdr.Name, "unsupported tar entry type %q", string(hdr.Typeflag))
	}
}

// create runs mk, which makes base in parent exclusively; if base exists,
// it is removed (a later entry replaces an earlier one, as tar does) and mk
// is run once more. mk never follows a symlink at base.
func (a *applier) create(parent *os.File, base string, mk func() (int, error)) (int, error) {
	fd, err := mk()
	if !errors.Is(err, unix.EEXIST) {
		return fd, err
	}
	if err := a.remove(parent, base); err != nil {
		return -1, fmt.Errorf("replace existing: %w", err)
	}
	return mk()
}

func (a *applier) whiteout(entry, parentName, base string) error {
	if base == whiteoutOpaque {
		d, err := a.dir(entry, parentName, true)
		if err != nil {
			return err
		}
		if err := unix.Fsetxattr(int(d.Fd()), overlayOpaque, []byte("y"), 0); err != nil {
			return fmt.Errorf("layer entry %q: mark %q opaque: %w", entry, parentName, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil
	}
	target := base[len(whiteoutPrefix):]
	if target == "" || target == "." || target == ".." {
		return hostile(entry, "whiteout of %q", target)
	}
	parent, err := a.dir(entry, parentName, true)
	if err != nil {
		return err
	}
	if err := a.remove(parent, target); err != nil {
		return fmt.Errorf("layer entry %q: remove whited-out %q: %w", entry, target, err)
	}
	if err := unix.Mknodat(int(parent.Fd()), target, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("layer entry %q: make whiteout: %w", entry, err)
	}
	return nil
}

func accessTime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

// metadata sets owner, mode, xattrs and (except for directories, which get
// theirs in finishDirs) times. The object is base relative to the open
// directory at, or at itself when base is ".".
func (a *applier) metadata(hdr *tar.Header, at *os.File, base, name string, isDir bool) error {
	fd := int(at.Fd())
	self := base == "."
	if self {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("layer entry %q: chown %d:%d: %w", hdr.Name, hdr.Uid, hdr.Gid, err)
		}
		if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
			return fmt.Errorf("layer entry %q: chmod %o: %w", hdr.Name, hdr.Mode&0o7777, err)
		}
	} else {
		if err := unix.Fchownat(fd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("layer entry %q: chown %d:%d: %w", hdr.Name, hdr.Uid, hdr.Gid, err)
		}
		// Symlinks have no mode of their own. For device nodes and fifos
		// base was just made by mknodat and is not a symlink.
		if hdr.Typeflag != tar.TypeSymlink {
			if err := unix.Fchmodat(fd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
				return fmt.Errorf("layer entry %q: chmod %o: %w", hdr.Name, hdr.Mode&0o7777, err)
			}
		}
	}
	if err := a.xattrs(hdr, fd, base); err != nil {
		return err
	}
	if isDir {
		return nil
	}
	ts := []unix.Timespec{timespec(accessTime(hdr)), timespec(hdr.ModTime)}
	if self {
		// The path is absolute: it names the open file itself.
		err := unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), ts, 0)
		if err != nil {
			return fmt.Errorf("layer entry %q: set times: %w", hdr.Name, err)
		}
		return nil
	}
	if err := unix.UtimesNanoAt(fd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("layer entry %q: set times: %w", hdr.Name, err)
	}
	return nil
}

func (a *applier) xattrs(hdr *tar.Header, fd int, base string) error {
	var keys []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attr := k[len(paxXattr):]
		// overlayfs keeps its own state in trusted.overlay.* (and in
		// user.overlay.* when mounted with userxattr). A layer that
		// carries such an xattr could fake an opaque directory, a
		// redirect or a metacopy; no honest layer does, so the layer is
		// rejected rather than the xattr silently dropped.
		if strings.HasPrefix(attr, "trusted.overlay.") || strings.HasPrefix(attr, "user.overlay.") {
			return hostile(hdr.Name, "carries overlayfs xattr %q", attr)
		}
		val := []byte(hdr.PAXRecords[k])
		var err error
		if base == "." {
			err = unix.Fsetxattr(fd, attr, val, 0)
		} else {
			err = unix.Lsetxattr("/proc/self/fd/"+strconv.Itoa(fd)+"/"+base, attr, val, 0)
		}
		if err != nil {
			return fmt.Errorf("layer entry %q: set xattr %q: %w", hdr.Name, attr, err)
		}
	}
	return nil
}

// finishDirs sets directory times last, since creating entries inside a
// directory changes its mtime.
func (a *applier) finishDirs() error {
	done := make(map[string]bool, len(a.dirTimes))
	// Backwards, so that the last header for a directory wins.
	for i := len(a.dirTimes) - 1; i >= 0; i-- {
		dt := a.dirTimes[i]
		if done[dt.name] {
			continue
		}
		done[dt.name] = true
		parent, err := a.dir(dt.name, path.Dir(dt.name), false)
		if errors.Is(err, unix.ENOENT) {
			continue // removed by a later entry
		}
		if err != nil {
			return err
		}
		base := path.Base(dt.name)
		var st unix.Stat_t
		if err := unix.Fstatat(int(parent.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue // replaced or removed by a later entry
		}
		ts := []unix.Timespec{timespec(dt.atime), timespec(dt.mtime)}
		if err := unix.UtimesNanoAt(int(parent.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("layer entry %q: set directory times: %w", dt.name, err)
		}
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Sec: 0, Nsec: unix.UTIME_OMIT}
	}
	// Not UnixNano: it overflows past 2262, and tar allows such times.
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}
