package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
)

// capNetBindService is a VFS_CAP_REVISION_2 security.capability value
// granting CAP_NET_BIND_SERVICE (bit 10), effective.
func capNetBindService() string {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<10)
	return string(b)
}

func apply(t *testing.T, dir string, layer []byte) error {
	t.Helper()
	n, err := Apply(context.Background(), dir, bytes.NewReader(layer), ApplyOptions{})
	if err == nil && n != int64(len(layer)) {
		t.Errorf("Apply read %d bytes, the layer has %d", n, len(layer))
	}
	return err
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return st
}

func xattr(t *testing.T, p, name string) string {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", p, name, err)
	}
	return string(buf[:n])
}

func TestApplyKeepsWhatTheLayerSays(t *testing.T) {
	requireRoot(t)
	dirTime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	dir := dirEnt("usr/bin/", 0o750)
	dir.hdr.ModTime = dirTime
	dev := ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: testTime}}
	fifo := ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o620, ModTime: testTime}}
	layer := tarOf(t,
		dir,
		withOwner(fileEnt("usr/bin/su", "setuid binary", 0o4755), 0, 0),
		withXattrs(fileEnt("usr/bin/ping", "ping", 0o755), "security.capability", capNetBindService(), "user.comment", "hello"),
		withOwner(fileEnt("home/user/notes", "mine", 0o600), 1000, 1001),
		linkEnt("usr/bin/su-again", "usr/bin/su"),
		symlinkEnt("usr/bin/sh", "/bin/busybox"),
		withOwner(symlinkEnt("home/user/link", "notes"), 1000, 1001),
		dev,
		fifo,
	)
	root := t.TempDir()
	if err := apply(t, root, layer); err != nil {
		t.Fatal(err)
	}

	su := lstat(t, filepath.Join(root, "usr/bin/su"))
	if su.Mode != unix.S_IFREG|0o4755 {
		t.Errorf("su mode = %o, want setuid 4755", su.Mode)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/bin/su")); string(b) != "setuid binary" {
		t.Errorf("su content = %q", b)
	}
	again := lstat(t, filepath.Join(root, "usr/bin/su-again"))
	if again.Ino != su.Ino || su.Nlink != 2 {
		t.Errorf("hard link: inodes %d and %d, nlink %d; want one inode with 2 links", su.Ino, again.Ino, su.Nlink)
	}
	if got := xattr(t, filepath.Join(root, "usr/bin/ping"), "security.capability"); got != capNetBindService() {
		t.Errorf("security.capability = %x, want %x", got, capNetBindService())
	}
	if got := xattr(t, filepath.Join(root, "usr/bin/ping"), "user.comment"); got != "hello" {
		t.Errorf("user.comment = %q", got)
	}
	notes := lstat(t, filepath.Join(root, "home/user/notes"))
	if notes.Uid != 1000 || notes.Gid != 1001 || notes.Mode&0o7777 != 0o600 {
		t.Errorf("notes: uid %d gid %d mode %o; want 1000 1001 600", notes.Uid, notes.Gid, notes.Mode&0o7777)
	}
	if notes.Mtim.Sec != testTime.Unix() {
		t.Errorf("notes mtime = %d, want %d", notes.Mtim.Sec, testTime.Unix())
	}
	if target, err := os.Readlink(filepath.Join(root, "usr/bin/sh")); err != nil || target != "/bin/busybox" {
		t.Errorf("sh -> %q, %v; want /bin/busybox", target, err)
	}
	link := lstat(t, filepath.Join(root, "home/user/link"))
	if link.Uid != 1000 || link.Gid != 1001 || link.Mtim.Sec != testTime.Unix() {
		t.Errorf("symlink owner %d:%d mtime %d; want 1000:1001 %d", link.Uid, link.Gid, link.Mtim.Sec, testTime.Unix())
	}
	null := lstat(t, filepath.Join(root, "dev/null"))
	if null.Mode != unix.S_IFCHR|0o666 || unix.Major(null.Rdev) != 1 || unix.Minor(null.Rdev) != 3 {
		t.Errorf("dev/null: mode %o dev %d:%d; want char 666 1:3", null.Mode, unix.Major(null.Rdev), unix.Minor(null.Rdev))
	}
	if st := lstat(t, filepath.Join(root, "run/fifo")); st.Mode != unix.S_IFIFO|0o620 {
		t.Errorf("fifo mode = %o", st.Mode)
	}
	// The directory's entries were written after its header; its mtime
	// must still be the layer's.
	bin := lstat(t, filepath.Join(root, "usr/bin"))
	if bin.Mtim.Sec != dirTime.Unix() || bin.Mode&0o7777 != 0o750 {
		t.Errorf("usr/bin: mtime %d mode %o; want %d 750", bin.Mtim.Sec, bin.Mode&0o7777, dirTime.Unix())
	}
	// Implied parents are made 0755 root:root.
	if st := lstat(t, filepath.Join(root, "home/user")); st.Mode != unix.S_IFDIR|0o755 || st.Uid != 0 {
		t.Errorf("implied parent home/user: mode %o uid %d", st.Mode, st.Uid)
	}
}

func TestApplyWhiteoutsBecomeOverlayWhiteouts(t *testing.T) {
	requireRoot(t)
	layer := tarOf(t,
		dirEnt("etc/", 0o755),
		fileEnt("etc/.wh.motd", "", 0o644),
		dirEnt("var/cache/", 0o755),
		fileEnt("var/cache/.wh..wh..opq", "", 0o644),
		fileEnt("var/cache/fresh", "new", 0o644),
		fileEnt(".wh..wh.plnk", "", 0o644),  // aufs bookkeeping: skipped
		fileEnt("gone/.wh.deep", "", 0o644), // parent implied
	)
	root := t.TempDir()
	if err := apply(t, root, layer); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"etc/motd", "gone/deep"} {
		st := lstat(t, filepath.Join(root, p))
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: mode %o rdev %d; want a 0/0 character device", p, st.Mode, st.Rdev)
		}
	}
	for _, p := range []string{"etc/.wh.motd", ".wh..wh.plnk", "var/cache/.wh..wh..opq", ".wh.plnk"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists (%v); whiteout files must not be extracted", p, err)
		}
	}
	if got := xattr(t, filepath.Join(root, "var/cache"), "trusted.overlay.opaque"); got != "y" {
		t.Errorf("var/cache trusted.overlay.opaque = %q, want y", got)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "var/cache/fresh")); string(b) != "new" {
		t.Errorf("var/cache/fresh = %q; the opaque dir's own entries must stay", b)
	}
}

func TestApplyLaterEntriesReplaceEarlier(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	layer := tarOf(t,
		fileEnt("a", "file first", 0o644),
		dirEnt("a/", 0o755), // file replaced by a directory
		fileEnt("a/x", "x", 0o644),
		dirEnt("b/", 0o755),
		fileEnt("b/y", "y", 0o644),
		symlinkEnt("b", "a"), // directory replaced by a symlink
		fileEnt("c", "one", 0o644),
		fileEnt("c", "two", 0o600), // file replaced by a file
	)
	if err := apply(t, root, layer); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "a/x")); string(b) != "x" {
		t.Errorf("a/x = %q", b)
	}
	if target, _ := os.Readlink(filepath.Join(root, "b")); target != "a" {
		t.Errorf("b -> %q, want a", target)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "c")); string(b) != "two" {
		t.Errorf("c = %q, want two", b)
	}
}

// TestApplyReplacesDirectoriesInSubdirectories: a later entry replacing a
// directory that is not at the root (a symlink, a file, a hard link in
// place of x/b) is made in x, whose cached handle removing x/b drops.
func TestApplyReplacesDirectoriesInSubdirectories(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	err := apply(t, root, tarOf(t,
		dirEnt("x/", 0o755),
		dirEnt("x/b/", 0o755), fileEnt("x/b/y", "y", 0o644),
		symlinkEnt("x/b", "a"),
		dirEnt("x/c/", 0o755), fileEnt("x/c/z", "z", 0o644),
		fileEnt("x/c", "now a file", 0o644),
		fileEnt("x/f", "f", 0o644),
		dirEnt("x/d/", 0o755), fileEnt("x/d/w", "w", 0o644),
		linkEnt("x/d", "x/f"),
	))
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(root, "x/b")); err != nil || target != "a" {
		t.Errorf("x/b -> %q, %v; want a", target, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "x/c")); err != nil || string(b) != "now a file" {
		t.Errorf("x/c = %q, %v", b, err)
	}
	if d, f := lstat(t, filepath.Join(root, "x/d")), lstat(t, filepath.Join(root, "x/f")); d.Ino != f.Ino {
		t.Errorf("x/d is not a hard link of x/f")
	}
}

// TestApplyReplacesDirectoriesWithSubdirectories: a directory with a
// subdirectory, both with headers, replaced by a symlink or a file: the
// subdirectory's time is not to be set (it is gone), and reaching it
// through the symlink is not tried.
func TestApplyReplacesDirectoriesWithSubdirectories(t *testing.T) {
	requireRoot(t)
	layer, sentinel := sandbox(t)
	before := treeState(t, sentinel)
	err := apply(t, layer, tarOf(t,
		dirEnt("a/", 0o755), dirEnt("a/b/", 0o755), symlinkEnt("a", "../sentinel"),
		dirEnt("c/", 0o755), dirEnt("c/d/", 0o755), fileEnt("c", "a file now", 0o644),
	))
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(layer, "a")); err != nil || target != "../sentinel" {
		t.Errorf("a -> %q, %v", target, err)
	}
	if st := lstat(t, filepath.Join(layer, "c")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("c: mode %o, want a file", st.Mode)
	}
	if after := treeState(t, sentinel); !reflect.DeepEqual(before, after) {
		t.Errorf("sentinel changed:\nbefore %v\nafter  %v", before, after)
	}
}

func TestApplyRefusesHostileLayers(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name  string
		ents  func(sentinel string) []ent
		entry string // the entry the error must name
	}{
		{"dotdot path", func(string) []ent {
			return []ent{fileEnt("../sentinel/evil", "x", 0o644)}
		}, "../sentinel/evil"},
		{"dotdot inside path", func(string) []ent {
			return []ent{fileEnt("a/../../sentinel/evil", "x", 0o644)}
		}, "a/../../sentinel/evil"},
		{"absolute path", func(s string) []ent {
			return []ent{fileEnt(filepath.Join(s, "evil"), "x", 0o644)}
		}, "/evil"},
		{"file through relative symlink", func(string) []ent {
			return []ent{symlinkEnt("link", "../sentinel"), fileEnt("link/evil", "x", 0o644)}
		}, "link/evil"},
		{"file through absolute symlink", func(s string) []ent {
			return []ent{symlinkEnt("link", s), fileEnt("link/file", "overwritten", 0o644)}
		}, "link/file"},
		{"directory through symlink", func(s string) []ent {
			return []ent{symlinkEnt("link", s), dirEnt("link/newdir/", 0o755)}
		}, "link/newdir/"},
		{"file through symlink chain", func(string) []ent {
			return []ent{symlinkEnt("a", "b"), symlinkEnt("b", "../sentinel"), fileEnt("a/evil", "x", 0o644)}
		}, "a/evil"},
		{"file through symlinked parent deeper", func(s string) []ent {
			return []ent{dirEnt("d/", 0o755), symlinkEnt("d/link", s), fileEnt("d/link/sub/evil", "x", 0o644)}
		}, "d/link/sub/evil"},
		{"hard link to outside by dotdot", func(string) []ent {
			return []ent{linkEnt("h", "../sentinel/file")}
		}, "h"},
		{"hard link to absolute path", func(s string) []ent {
			return []ent{linkEnt("h", filepath.Join(s, "file"))}
		}, "h"},
		{"hard link through symlink", func(s string) []ent {
			return []ent{symlinkEnt("link", s), linkEnt("h", "link/file")}
		}, "h"},
		{"hard link placed through symlink", func(s string) []ent {
			return []ent{fileEnt("f", "x", 0o644), symlinkEnt("link", s), linkEnt("link/h", "f")}
		}, "link/h"},
		{"symlink placed through symlink", func(s string) []ent {
			return []ent{symlinkEnt("link", s), symlinkEnt("link/evil", "/etc/shadow")}
		}, "link/evil"},
		{"device placed through symlink", func(s string) []ent {
			return []ent{symlinkEnt("link", s), {hdr: tar.Header{Typeflag: tar.TypeChar, Name: "link/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}}
		}, "link/null"},
		{"whiteout through symlink", func(s string) []ent {
			return []ent{symlinkEnt("link", s), fileEnt("link/.wh.file", "", 0o644)}
		}, "link/.wh.file"},
		{"opaque through symlink", func(s string) []ent {
			return []ent{symlinkEnt("link", s), fileEnt("link/.wh..wh..opq", "", 0o644)}
		}, "link/.wh..wh..opq"},
		{"whiteout of dotdot", func(string) []ent {
			return []ent{fileEnt(".wh...", "", 0o644)}
		}, ".wh..."},
		{"fake opaque xattr", func(string) []ent {
			return []ent{withXattrs(dirEnt("lib/", 0o755), "trusted.overlay.opaque", "y")}
		}, "lib/"},
		{"fake redirect xattr in user namespace", func(string) []ent {
			return []ent{withXattrs(dirEnt("lib/", 0o755), "user.overlay.redirect", "/etc")}
		}, "lib/"},
		{"file below a file", func(string) []ent {
			return []ent{fileEnt("f", "x", 0o644), fileEnt("f/evil", "x", 0o644)}
		}, "f/evil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layer, sentinel := sandbox(t)
			before := treeState(t, sentinel)
			err := apply(t, layer, tarOf(t, tt.ents(sentinel)...))
			if err == nil {
				t.Fatal("Apply accepted a hostile layer")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.entry) {
				t.Errorf("error %q does not name the entry %q", err, tt.entry)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %q is not ErrInvalidArgument", err)
			}
			if after := treeState(t, sentinel); !reflect.DeepEqual(before, after) {
				t.Errorf("sentinel changed:\nbefore %v\nafter  %v", before, after)
			}
			assertOnly(t, filepath.Dir(layer), "layer", "sentinel")
		})
	}
}

// TestApplyReplacesSymlinksInsteadOfFollowing covers the benign cousins of
// the hostile cases: an entry that names a symlink itself replaces it.
func TestApplyReplacesSymlinksInsteadOfFollowing(t *testing.T) {
	requireRoot(t)
	layer, sentinel := sandbox(t)
	before := treeState(t, sentinel)
	err := apply(t, layer, tarOf(t,
		symlinkEnt("link", "../sentinel/file"),
		fileEnt("link", "replaced", 0o644),
		symlinkEnt("dlink", sentinel),
		dirEnt("dlink/", 0o755),
		symlinkEnt("slink", "../sentinel/file"),
		linkEnt("hlink", "slink"), // a hard link to the symlink itself
		fileEnt(".wh.slink", "", 0o644),
	))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(layer, "link")); string(b) != "replaced" {
		t.Errorf("link = %q", b)
	}
	if st := lstat(t, filepath.Join(layer, "dlink")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("dlink mode %o, want a directory", st.Mode)
	}
	if target, _ := os.Readlink(filepath.Join(layer, "hlink")); target != "../sentinel/file" {
		t.Errorf("hlink -> %q", target)
	}
	if after := treeState(t, sentinel); !reflect.DeepEqual(before, after) {
		t.Errorf("sentinel changed:\nbefore %v\nafter  %v", before, after)
	}
}

func assertOnly(t testing.TB, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, names) {
		t.Errorf("%s holds %v, want only %v", dir, got, names)
	}
}

func TestApplyReportsTruncatedLayer(t *testing.T) {
	layer := tarOf(t, fileEnt("a", strings.Repeat("x", 2000), 0o644), fileEnt("b", "b", 0o644))
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(layer[:1500]), ApplyOptions{})
	if err == nil {
		t.Fatal("Apply accepted a truncated layer")
	}
	if !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("error %q does not name the entry being written", err)
	}
}

func TestApplyHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, t.TempDir(), bytes.NewReader(tarOf(t, fileEnt("a", "a", 0o644))), ApplyOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled context: %v", err)
	}
}

// TestApplyImpliedDirsTakeParentsMetadata: a layer that whites out
// home/user/.bashrc without a home/user/ header must not turn the user's
// home into 0755 root:root in the merged view.
func TestApplyImpliedDirsTakeParentsMetadata(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	near, far, upper := filepath.Join(base, "near"), filepath.Join(base, "far"), filepath.Join(base, "upper")
	old := time.Date(2010, 1, 2, 3, 4, 5, 0, time.UTC)
	var made []string
	mkdir := func(p string, mode os.FileMode, uid int) {
		t.Helper()
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		made = append(made, p)
	}
	mkdir(upper, 0o755, 0)
	mkdir(filepath.Join(far, "home"), 0o711, 0)
	mkdir(filepath.Join(far, "home/user"), 0o700, 1000)
	mkdir(filepath.Join(far, "opt/x"), 0o700, 5)
	mkdir(filepath.Join(far, "srv"), 0o750, 7)
	mkdir(filepath.Join(near, "opt"), 0o705, 0)
	if err := unix.Setxattr(filepath.Join(near, "opt"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(near, "srv"), unix.S_IFCHR, 0); err != nil { // whiteout
		t.Fatal(err)
	}
	mkdir(filepath.Join(near, "usr/lib"), 0o700, 3)
	if err := os.Symlink("usr/lib", filepath.Join(near, "lib")); err != nil {
		t.Fatal(err)
	}

	// Times last: making a directory's children changes its mtime.
	for _, p := range made {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}

	layer := tarOf(t,
		fileEnt("home/user/.wh.bashrc", "", 0o644),
		fileEnt("opt/x/.wh.y", "", 0o644),
		fileEnt("srv/.wh.z", "", 0o644),
		fileEnt("lib/.wh.w", "", 0o644),
	)
	if _, err := Apply(context.Background(), upper, bytes.NewReader(layer), ApplyOptions{Parents: []string{near, far}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		mode     uint32
		uid      uint32
		keepTime bool
	}{
		{"home", 0o711, 0, true},
		{"home/user", 0o700, 1000, true},
		{"opt", 0o705, 0, true},
		{"opt/x", 0o755, 0, false}, // hidden by near's opaque opt
		{"srv", 0o755, 0, false},   // hidden by near's whiteout
		{"lib", 0o755, 0, false},   // a symlink below: not a directory there
	} {
		st := lstat(t, filepath.Join(upper, tc.name))
		if st.Mode != unix.S_IFDIR|tc.mode || st.Uid != tc.uid || st.Gid != tc.uid {
			t.Errorf("%s: mode %o owner %d:%d, want dir %o owner %d:%d", tc.name, st.Mode, st.Uid, st.Gid, tc.mode, tc.uid, tc.uid)
		}
		if tc.keepTime && st.Mtim.Sec != old.Unix() {
			t.Errorf("%s: mtime %d, want the parent's %d", tc.name, st.Mtim.Sec, old.Unix())
		}
	}
}
