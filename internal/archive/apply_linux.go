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
		ctx:  ctx,
		root: root,
		dirs: make(map[string]*os.File),
		buf:  make([]byte, copyBufSize),
	}
	defer a.close()
	if opts.ParentsLater != nil && opts.Parents == nil {
		a.lowersLater = opts.ParentsLater
		a.implied = make(map[string]*impliedDir)
	} else if err := a.openLowers(opts.Parents); err != nil {
		return 0, err
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
	// Trailing zero blocks and padding after the end-of-archive marker,
	// read before any wait for the layers below: the stream is all in.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return cr.n, fmt.Errorf("read layer trailer: %w", err)
	}
	if len(a.implied) > 0 {
		// Directories to fix; none if headers have set them all since.
		if err := a.needLowers(); err != nil {
			return cr.n, fmt.Errorf("apply layer to %s: directories the layer implies: %w", dir, err)
		}
	}
	if err := a.finishDirs(); err != nil {
		return cr.n, err
	}
	return cr.n, nil
}

func (a *applier) openLowers(dirs []string) error {
	for _, p := range dirs {
		l, err := os.OpenFile(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open parent layer %s: %w", p, err)
		}
		a.lowers = append(a.lowers, l)
	}
	return nil
}

// needLowers makes sure a.lowers are the layers below: with
// ApplyOptions.ParentsLater it waits for them (once), then gives the
// directories implied so far the metadata they would have had if the
// layers below had been there from the start.
func (a *applier) needLowers() error {
	later := a.lowersLater
	if later == nil {
		return nil
	}
	a.lowersLater = nil
	dirs, err := later(a.ctx)
	if err != nil {
		return fmt.Errorf("wait for the layers below: %w", err)
	}
	if err := a.openLowers(dirs); err != nil {
		return err
	}
	return a.fixImplied()
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
	ctx  context.Context
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
	// lowersLater is ApplyOptions.ParentsLater until it is called. While
	// it is set, implied directories are made 0755 and recorded: implied
	// holds the latest record of each name whose directory no header has
	// set since, impliedOrder every record in the order made.
	lowersLater  func(context.Context) ([]string, error)
	implied      map[string]*impliedDir
	impliedOrder []*impliedDir
}

// impliedDir is a directory made for a layer that implies it, before the
// layers below were known: what fixImplied needs to give it the owner,
// mode and times it would have had if they had been.
type impliedDir struct {
	name string
	// created is how mkdirat made it: the kernel gives a new directory
	// the group and setgid bit of a setgid parent.
	created unix.Stat_t
	// visible says that nothing in the upper directory hid the layers
	// below at name when it was made (an opaque or replaced ancestor).
	visible bool
	// parent is the record of the directory it was made in, if that was
	// an implied directory waiting too: what the kernel would have given
	// it then depends on what that one would have been.
	parent *impliedDir
	// meta, once fixed, is what it should be (see effective).
	fixed bool
	meta  dirMeta
}

// dirMeta is what an implied directory ends up with.
type dirMeta struct {
	uid, gid, mode uint32 // mode: permission, setuid, setgid and sticky bits
	// below says it was taken from a directory of a lower layer; then
	// its times are that directory's too.
	below        bool
	atime, mtime time.Time
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
	if errors.Is(err, unix.ENOENT) && create && (len(a.lowers) > 0 || a.lowersLater != nil) {
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
		if a.lowersLater != nil {
			if err := a.deferImplied(pfd, base, prefix); err != nil {
				return fmt.Errorf("layer entry %q: make implied directory %q: %w", entry, prefix, err)
			}
			continue
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
	return a.belowDir(name)
}

// belowDir is lowerDir without the look at the upper directory.
func (a *applier) belowDir(name string) (unix.Stat_t, bool) {
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

// deferImplied records the directory base of pfd, just made for name
// while the layers below are not known yet (see impliedDir).
func (a *applier) deferImplied(pfd int, base, name string) error {
	rec := &impliedDir{name: name, visible: !hidden(a.root, name)}
	if err := unix.Fstatat(pfd, base, &rec.created, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if p := a.implied[path.Dir(name)]; p != nil {
		// The record must be of the very directory pfd is: compare the
		// inode rather than trust that nothing replaced it.
		var st unix.Stat_t
		if err := unix.Fstat(pfd, &st); err != nil {
			return err
		}
		if st.Ino == p.created.Ino && st.Dev == p.created.Dev {
			rec.parent = p
		}
	}
	a.implied[name] = rec
	a.impliedOrder = append(a.impliedOrder, rec)
	return nil
}

// headed notes that a header of the layer has set the directory name's
// metadata: a record of it made before is no longer to be fixed.
func (a *applier) headed(name string) {
	delete(a.implied, name)
}

// fixImplied gives each directory implied while the layers below were not
// known what mkImplied gives it when they are: in the order they were
// made, each one still there that no header has set since. Its children
// made meanwhile are fixed as the kernel would have made them inside it.
func (a *applier) fixImplied() error {
	order, latest := a.impliedOrder, a.implied
	a.implied, a.impliedOrder = nil, nil
	for _, rec := range order {
		m := a.effective(rec)
		if latest[rec.name] != rec {
			continue // set by a header since, or made again
		}
		c := rec.created
		if !m.below && m.uid == c.Uid && m.gid == c.Gid && m.mode == c.Mode&0o7777 {
			continue // as the kernel made it, which is what it should be
		}
		if err := a.fixImpliedDir(rec, m); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) fixImpliedDir(rec *impliedDir, m dirMeta) error {
	parent, err := a.openDir(path.Dir(rec.name))
	if vanishedErr(err) {
		return nil // a later entry removed or replaced a directory on the way
	} else if err != nil {
		return fmt.Errorf("implied directory %q: open its parent: %w", rec.name, err)
	}
	defer parent.Close()
	pfd, base := int(parent.Fd()), path.Base(rec.name)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil ||
		st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != rec.created.Ino || st.Dev != rec.created.Dev {
		return nil // removed or replaced by a later entry
	}
	if err := unix.Fchownat(pfd, base, int(m.uid), int(m.gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown implied directory %q: %w", rec.name, err)
	}
	if err := unix.Fchmodat(pfd, base, m.mode, 0); err != nil {
		return fmt.Errorf("chmod implied directory %q: %w", rec.name, err)
	}
	if m.below {
		a.dirTimes = append(a.dirTimes, dirTime{name: rec.name, atime: m.atime, mtime: m.mtime})
	}
	return nil
}

// effective is what mkImplied would have given rec had the layers below
// been known when it was made: the metadata of the directory below, or,
// when there is none, what the kernel gives a new directory in its parent
// as that parent should have been.
func (a *applier) effective(rec *impliedDir) dirMeta {
	if rec.fixed {
		return rec.meta
	}
	c := rec.created
	m := dirMeta{uid: c.Uid, gid: c.Gid, mode: c.Mode & 0o7777}
	st, ok := unix.Stat_t{}, false
	if rec.visible {
		st, ok = a.belowDir(rec.name)
	}
	switch {
	case ok:
		m = dirMeta{uid: st.Uid, gid: st.Gid, mode: st.Mode & 0o7777, below: true,
			atime: time.Unix(st.Atim.Unix()), mtime: time.Unix(st.Mtim.Unix())}
	case rec.parent != nil:
		// The kernel gave it the group and setgid bit of its parent if
		// that was setgid as it stood then, not as it should have been.
		p := a.effective(rec.parent)
		m.gid, m.mode = uint32(unix.Getegid()), m.mode&^unix.S_ISGID
		if p.mode&unix.S_ISGID != 0 {
			m.gid, m.mode = p.gid, m.mode|unix.S_ISGID
		}
	}
	rec.fixed, rec.meta = true, m
	return m
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

// vanished reports whether the directory name is no longer there to be
// reached without symlinks: a later entry removed it, or replaced a
// directory on its way by a file or a symlink (a, a/b/, then a symlink a).
// Setting metadata on what was there is then moot, not hostile.
func (a *applier) vanished(name string) bool {
	f, err := a.openDir(name)
	if err == nil {
		f.Close()
	}
	return vanishedErr(err)
}

func vanishedErr(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV)
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
		a.headed(name)
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
		if target == name {
			return hostile(hdr.Name, "hard link to itself")
		}
		tparent, err := a.dir(hdr.Name, path.Dir(target), false)
		if errors.Is(err, unix.ENOENT) {
			return a.linkBelow(hdr, target, parent, base)
		}
		if err != nil {
			return err
		}
		if err := a.link(hdr, tparent, path.Base(target), parent, base); errors.Is(err, unix.ENOENT) {
			return a.linkBelow(hdr, target, parent, base)
		} else if err != nil {
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

// link makes the hard link base in parent to tbase in tparent, replacing
// what was at base.
func (a *applier) link(hdr *tar.Header, tparent *os.File, tbase string, parent *os.File, base string) error {
	_, err := a.create(parent, base, func() (int, error) {
		// Flags 0: if the target is a symlink, link the symlink itself,
		// never what it points to.
		return -1, unix.Linkat(int(tparent.Fd()), tbase, int(parent.Fd()), base, 0)
	})
	return err
}

// linkBelow makes the hard link base in parent (the entry hdr) to target
// when target is not in this layer: as overlayfs does when a process links
// to a lower file, it copies target up to its own name in the upper
// directory and links to that, so both names are one file in the merged
// view. target is looked up as overlayfs looks it up (see findBelow).
func (a *applier) linkBelow(hdr *tar.Header, target string, parent *os.File, base string) error {
	if err := a.needLowers(); err != nil {
		return fmt.Errorf("layer entry %q: hard link to %q: %w", hdr.Name, hdr.Linkname, err)
	}
	notFound := hostile(hdr.Name, "hard link target %q is neither in this layer nor below it", hdr.Linkname)
	if len(a.lowers) == 0 || hidden(a.root, target) {
		return notFound
	}
	from, st, ok := a.findBelow(target)
	if !ok {
		return notFound
	}
	defer unix.Close(from)
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return hostile(hdr.Name, "hard link to directory %q", hdr.Linkname)
	}
	tparent, err := a.dir(hdr.Name, path.Dir(target), true)
	if err != nil {
		return err
	}
	tbase := path.Base(target)
	if err := a.copyUp(from, tbase, &st, tparent); err != nil {
		return fmt.Errorf("layer entry %q: copy up %q from a layer below to link to it: %w", hdr.Name, hdr.Linkname, err)
	}
	// Copying up may have made directories, never removed any: parent
	// is still open.
	if err := a.link(hdr, tparent, tbase, parent, base); err != nil {
		return fmt.Errorf("layer entry %q: hard link to %q: %w", hdr.Name, hdr.Linkname, err)
	}
	return nil
}

// findBelow finds what the merged view of the layers below shows at name:
// in the nearest layer that has it, unless a nearer one hides it (a
// whiteout, an opaque directory, a non-directory on the way). A symlink on
// the way ends the search: only the layer's own paths are followed, never
// links. It returns the directory holding it, opened O_PATH (to close),
// and its stat.
func (a *applier) findBelow(name string) (int, unix.Stat_t, bool) {
	var st unix.Stat_t
	for _, l := range a.lowers {
		fd, err := unix.Openat2(int(l.Fd()), path.Dir(name), &unix.OpenHow{
			Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS |
				unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
		})
		if err == nil {
			err = unix.Fstatat(fd, path.Base(name), &st, unix.AT_SYMLINK_NOFOLLOW)
			if err == nil {
				if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
					break // whited out
				}
				return fd, st, true
			}
			unix.Close(fd)
		}
		if !errors.Is(err, unix.ENOENT) || hidden(l, name) {
			break
		}
	}
	return -1, st, false
}

// copyUp copies base in the lower directory from, whose stat is st, to
// base in the upper directory to: content, owner, mode, xattrs (but
// overlayfs's own) and times.
func (a *applier) copyUp(from int, base string, st *unix.Stat_t, to *os.File) error {
	tfd := int(to.Fd())
	typ := st.Mode & unix.S_IFMT
	switch typ {
	case unix.S_IFREG:
		sfd, err := unix.Openat(from, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		src := os.NewFile(uintptr(sfd), base)
		defer src.Close()
		// Layers below are final, but check it is the file stat saw.
		var sst unix.Stat_t
		if err := unix.Fstat(sfd, &sst); err != nil {
			return err
		}
		if sst.Ino != st.Ino || sst.Dev != st.Dev {
			return fmt.Errorf("the file changed while being copied: %w", errdefs.ErrFailedPrecondition)
		}
		dfd, err := a.create(to, base, func() (int, error) {
			return unix.Openat(tfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		})
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		dst := os.NewFile(uintptr(dfd), base)
		defer dst.Close()
		if _, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, a.buf); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
	case unix.S_IFLNK:
		buf := make([]byte, st.Size+1)
		n, err := unix.Readlinkat(from, base, buf)
		if err != nil {
			return fmt.Errorf("read symlink: %w", err)
		}
		if _, err := a.create(to, base, func() (int, error) {
			return -1, unix.Symlinkat(string(buf[:n]), tfd, base)
		}); err != nil {
			return fmt.Errorf("create symlink: %w", err)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if _, err := a.create(to, base, func() (int, error) {
			return -1, unix.Mknodat(tfd, base, typ|0o600, int(st.Rdev))
		}); err != nil {
			return fmt.Errorf("make node: %w", err)
		}
	default:
		return fmt.Errorf("file type %o: %w", typ, errdefs.ErrNotImplemented)
	}
	// Owner, then mode, then xattrs, as metadata does: chown drops
	// setuid/setgid and security.capability.
	if err := unix.Fchownat(tfd, base, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if typ != unix.S_IFLNK {
		if err := unix.Fchmodat(tfd, base, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if err := copyXattrs("/proc/self/fd/"+strconv.Itoa(from)+"/"+base, "/proc/self/fd/"+strconv.Itoa(tfd)+"/"+base); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(tfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// copyXattrs copies the xattrs of src to dst, neither followed if a
// symlink, but overlayfs's own (a lower layer has none: Apply refuses them
// in layers).
func copyXattrs(src, dst string) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("list xattrs: %w", err)
		}
		return nil
	}
	names := make([]byte, size)
	if size, err = unix.Llistxattr(src, names); err != nil {
		return fmt.Errorf("list xattrs: %w", err)
	}
	for _, attr := range strings.Split(strings.TrimSuffix(string(names[:size]), "\x00"), "\x00") {
		if attr == "" || strings.HasPrefix(attr, "trusted.overlay.") || strings.HasPrefix(attr, "user.overlay.") {
			continue
		}
		n, err := unix.Lgetxattr(src, attr, nil)
		if err != nil {
			return fmt.Errorf("get xattr %q: %w", attr, err)
		}
		val := make([]byte, n)
		if n, err = unix.Lgetxattr(src, attr, val); err != nil {
			return fmt.Errorf("get xattr %q: %w", attr, err)
		}
		if err := unix.Lsetxattr(dst, attr, val[:n], 0); err != nil {
			return fmt.Errorf("set xattr %q: %w", attr, err)
		}
	}
	return nil
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
	// A whiteout is a mark, not a file: root's, not the group a setgid
	// directory would hand down (which, for a directory the layer
	// implies, could depend on whether the layers below were known yet).
	if err := unix.Fchownat(int(parent.Fd()), target, 0, 0, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("layer entry %q: chown whiteout: %w", entry, err)
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
		if err != nil && a.vanished(path.Dir(dt.name)) {
			continue // removed by a later entry, or a directory on the way replaced
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
