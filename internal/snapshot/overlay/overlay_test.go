package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/archive"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/snapshot"
	"github.com/berth-project/berth/internal/snapshot/testsuite"
)

func newOverlay(t *testing.T, root string) snapshot.Snapshotter {
	t.Helper()
	sn, err := New(root)
	if err != nil {
		t.Fatalf("New(%s): %v", root, err)
	}
	return sn
}

func TestOverlayConformance(t *testing.T) {
	testsuite.Run(t, newOverlay)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay mounts, chown and trusted.* xattrs")
	}
}

func snapshotDirs(t *testing.T, root string) []string {
	t.Helper()
	d, err := os.Open(filepath.Join(root, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

func TestFailedCallsLeaveNoDirectories(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	sn, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	if _, err := sn.Prepare(ctx, "a", "", nil); err != nil {
		t.Fatal(err)
	}
	before := snapshotDirs(t, root)
	failures := []error{
		second(sn.Prepare(ctx, "a", "", nil)),
		second(sn.Prepare(ctx, "b", "missing", nil)),
		second(sn.Prepare(ctx, "c", "a", nil)), // active parent
		second(sn.View(ctx, "", "", nil)),
		sn.Commit(ctx, "a", "a", nil),
	}
	for i, err := range failures {
		if err == nil {
			t.Errorf("call %d succeeded, want an error", i)
		}
	}
	if after := snapshotDirs(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("snapshot directories changed by failed calls: %v -> %v", before, after)
	}
}

func second[T any](_ T, err error) error { return err }

func TestNewRemovesCrashLeftovers(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	sn, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "kept", "", nil); err != nil {
		t.Fatal(err)
	}
	sn.Close()
	for _, d := range []string{"new-123/fs", "rm-7/fs/etc", "99/fs"} {
		if err := os.MkdirAll(filepath.Join(root, "snapshots", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sn, err = New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	if got := snapshotDirs(t, root); !reflect.DeepEqual(got, []string{"1"}) {
		t.Errorf("snapshot directories after reopen: %v, want only [1] (the kept snapshot)", got)
	}
	if _, err := sn.Stat(ctx, "kept"); err != nil {
		t.Errorf("kept snapshot lost: %v", err)
	}
}

func TestMountsShapes(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	sn, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	ms, err := sn.Prepare(ctx, "a-active", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Type != "bind" || ms[0].Source != filepath.Join(root, "snapshots/1/fs") {
		t.Errorf("Prepare with no parent: %+v, want a bind of snapshots/1/fs", ms)
	}
	upper, err := sn.UpperDir(ctx, "a-active")
	if err != nil || upper != ms[0].Source {
		t.Errorf("UpperDir = %q, %v; want %q", upper, err, ms[0].Source)
	}
	if err := sn.Commit(ctx, "a", "a-active", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.UpperDir(ctx, "a"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("UpperDir of a committed snapshot: %v", err)
	}
	ms, err = sn.Prepare(ctx, "b-active", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"index=off",
		"workdir=" + filepath.Join(root, "snapshots/2/work"),
		"upperdir=" + filepath.Join(root, "snapshots/2/fs"),
		"lowerdir=" + filepath.Join(root, "snapshots/1/fs"),
	}
	if len(ms) != 1 || ms[0].Type != "overlay" || !reflect.DeepEqual(ms[0].Options, want) {
		t.Errorf("Prepare on a parent: %+v, want overlay %v", ms, want)
	}
}

// TestLowerdirPageLimit builds a chain too long for one page of mount
// options under a long root and checks the error says why, and that the
// failed Prepare left nothing behind.
func TestLowerdirPageLimit(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), strings.Repeat("long-snapshotter-root-", 8))
	sn, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	parent := ""
	for i := 0; ; i++ {
		key := "layer-" + time.Duration(i).String()
		if _, err := sn.Prepare(ctx, key+"-active", parent, nil); err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "page limit") {
				t.Fatalf("Prepare at depth %d: %v, want the page-limit error", i, err)
			}
			if i < 10 {
				t.Fatalf("page limit hit at depth %d already", i)
			}
			// A layer extracted before its parent was committed is
			// refused the same at CommitOnto, and stays active.
			if _, err := sn.Prepare(ctx, key+"-early", "", nil); err != nil {
				t.Fatal(err)
			}
			if err := sn.CommitOnto(ctx, key, key+"-early", parent, nil); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "page limit") {
				t.Fatalf("CommitOnto at depth %d: %v, want the page-limit error", i, err)
			}
			if err := sn.Remove(ctx, key+"-early"); err != nil {
				t.Fatal(err)
			}
			break
		}
		if err := sn.Commit(ctx, key, key+"-active", nil); err != nil {
			t.Fatal(err)
		}
		parent = key
	}
	dirs := snapshotDirs(t, root)
	for _, d := range dirs {
		if strings.HasPrefix(d, newPrefix) {
			t.Errorf("failed Prepare left %s", d)
		}
	}
}

// mountAt mounts ms on a fresh directory, unmounted in cleanup.
func mountAt(t *testing.T, ms []snapshot.Mount) string {
	t.Helper()
	target, err := os.MkdirTemp("", "berth-overlay-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := snapshot.UnmountAll(target); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
		os.Remove(target)
	})
	if err := snapshot.MountAll(ms, target); err != nil {
		t.Fatal(err)
	}
	return target
}

// ent is one entry of a test layer.
type ent struct {
	hdr  tar.Header
	body string
}

func layerTar(t *testing.T, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		h.Size = int64(len(e.body))
		if h.ModTime.IsZero() {
			h.ModTime = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func dir(name string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}
func file(name, body string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, body: body}
}

// TestUnpackedImageAsUserSeesIt unpacks three layers with archive.Apply as
// an image pull would (Prepare, Apply into UpperDir, Commit by chain ID),
// mounts a container snapshot on top and checks what a process in it sees.
func TestUnpackedImageAsUserSeesIt(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	sn, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()

	layers := [][]byte{
		layerTar(t,
			dir("etc/"), file("etc/motd", "welcome", 0o644), file("etc/passwd", "root:x:0:0", 0o644),
			dir("usr/"), dir("usr/bin/"), file("usr/bin/tool", "v1", 0o755),
			ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "bin", Linkname: "usr/bin"}},
			dir("var/"), dir("var/lib/"), file("var/lib/db1", "old", 0o644), dir("var/lib/sub/"), file("var/lib/sub/db2", "old", 0o644),
			ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev-null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
			ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "home/", Mode: 0o755}},
			ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "home/user/", Mode: 0o700, Uid: 1000, Gid: 1000}},
			file("home/user/.profile", "old profile", 0o644),
			ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "home-notes", Mode: 0o640, Uid: 1000, Gid: 1000,
				Format: tar.FormatPAX, PAXRecords: map[string]string{"SCHILY.xattr.user.origin": "layer0"}}, body: "notes"},
		),
		layerTar(t,
			dir("etc/"), file("etc/.wh.motd", "", 0o644),
			dir("var/lib/"), file("var/lib/.wh..wh..opq", "", 0o644), file("var/lib/db3", "new", 0o600),
			dir("usr/bin/"), file("usr/bin/tool", "v2", 0o4755),
			ent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "usr/bin/tool-link", Linkname: "usr/bin/tool"}},
		),
		layerTar(t,
			file("etc/motd", "back again", 0o644), // a file whited out below, added again
			file("usr/bin/.wh.tool-link", "", 0o644),
			// No home/ or home/user/ header: Apply must keep the
			// user's home as layer 0 made it.
			file("home/user/.wh..profile", "", 0o644),
		),
	}
	parent := ""
	for i, l := range layers {
		chainID := "sha256:chain" + string(rune('0'+i))
		key := "extract-" + chainID
		if _, err := sn.Prepare(ctx, key, parent, nil); err != nil {
			t.Fatal(err)
		}
		upper, err := sn.UpperDir(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		parents, err := sn.ParentDirs(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := archive.Apply(ctx, upper, bytes.NewReader(l), archive.ApplyOptions{Parents: parents}); err != nil {
			t.Fatalf("apply layer %d: %v", i, err)
		}
		if err := sn.Commit(ctx, chainID, key, nil); err != nil {
			t.Fatal(err)
		}
		parent = chainID
	}

	ms, err := sn.Prepare(ctx, "container", parent, nil)
	if err != nil {
		t.Fatal(err)
	}
	target := mountAt(t, ms)

	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(target, p))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	for p, want := range map[string]string{
		"etc/motd":    "back again",
		"etc/passwd":  "root:x:0:0",
		"bin/tool":    "v2", // through the symlink of layer 0
		"var/lib/db3": "new",
	} {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"var/lib/db1", "var/lib/sub", "usr/bin/tool-link", "home/user/.profile"} {
		if _, err := os.Lstat(filepath.Join(target, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is visible (%v); a whiteout or opaque dir must hide it", p, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(target, "usr/bin/tool"), &st); err != nil || st.Mode&0o7777 != 0o4755 {
		t.Errorf("usr/bin/tool mode %o (%v), want setuid 4755", st.Mode&0o7777, err)
	}
	if err := unix.Stat(filepath.Join(target, "var/lib/db3"), &st); err != nil || st.Mode&0o777 != 0o600 {
		t.Errorf("var/lib/db3 mode %o (%v), want 600", st.Mode&0o777, err)
	}
	if err := unix.Stat(filepath.Join(target, "dev-null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("dev-null: mode %o rdev %d (%v), want char 1:3", st.Mode, st.Rdev, err)
	}
	if err := unix.Stat(filepath.Join(target, "home-notes"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 || st.Mode&0o777 != 0o640 {
		t.Errorf("home-notes: uid %d gid %d mode %o (%v), want 1000 1000 640", st.Uid, st.Gid, st.Mode&0o777, err)
	}
	if err := unix.Stat(filepath.Join(target, "home/user"), &st); err != nil || st.Uid != 1000 || st.Mode&0o777 != 0o700 {
		t.Errorf("home/user: uid %d mode %o (%v), want 1000 700 as layer 0 made it", st.Uid, st.Mode&0o777, err)
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(filepath.Join(target, "home-notes"), "user.origin", buf); err != nil || string(buf[:n]) != "layer0" {
		t.Errorf("home-notes user.origin = %q (%v), want layer0", buf[:max(n, 0)], err)
	}
	// The container writes into its own upper layer only.
	if err := os.WriteFile(filepath.Join(target, "etc/passwd"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	ms2, err := sn.View(ctx, "image-view", parent, nil)
	if err != nil {
		t.Fatal(err)
	}
	view := mountAt(t, ms2)
	if b, _ := os.ReadFile(filepath.Join(view, "etc/passwd")); string(b) != "root:x:0:0" {
		t.Errorf("image view sees %q: the container's write leaked into the image", b)
	}
}

// TestTwoOpenersShareOneRoot opens the store twice, as two berth processes
// do (flock treats two opens in one process as it does two processes):
// both work at once, the second open does not remove what the first is
// making, and crash debris goes only once the store is opened alone.
func TestTwoOpenersShareOneRoot(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	a, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Prepare(ctx, "a-active", "", nil); err != nil {
		t.Fatal(err)
	}
	// A directory a live process is creating looks just like crash debris.
	inFlight := filepath.Join(root, "snapshots", "new-inflight")
	if err := os.MkdirAll(inFlight, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := New(root)
	if err != nil {
		t.Fatalf("second open while the first is open: %v", err)
	}
	if _, err := os.Stat(inFlight); err != nil {
		t.Errorf("the second open removed a directory the first may be creating: %v", err)
	}
	if _, err := b.Prepare(ctx, "b-active", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx, "a-done", "a-active", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Prepare(ctx, "b-child", "a-done", nil); err != nil {
		t.Fatalf("the second sees the first's commit: %v", err)
	}
	if got := strings.Join(walk(t, a), " "); got != "a-done:committed: b-active:active: b-child:active:a-done" {
		t.Errorf("the first sees %s", got)
	}
	b.Close()
	a.Close()
	c, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := os.Stat(inFlight); !os.IsNotExist(err) {
		t.Errorf("debris kept when the store was opened alone: %v", err)
	}
	if got := len(snapshotDirs(t, root)); got != 3 {
		t.Errorf("%d snapshot directories, want 3", got)
	}
}

func walk(t *testing.T, sn snapshot.Snapshotter) []string {
	t.Helper()
	var out []string
	err := sn.Walk(context.Background(), func(_ context.Context, i snapshot.Info) error {
		out = append(out, i.Name+":"+i.Kind.String()+":"+i.Parent)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCommitOntoAParentCommittedLater: a tree prepared on no parent while
// its parent is still being made is committed onto that parent once it
// is; the result mounts as any chain does, refuses what Prepare would
// refuse, and a refused CommitOnto leaves the active snapshot as it was.
func TestCommitOntoAParentCommittedLater(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	sn, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	write := func(key, name, body string) {
		t.Helper()
		upper, err := sn.UpperDir(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(upper, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The child first, as a pull whose second layer arrives first.
	if _, err := sn.Prepare(ctx, "b-active", "", nil); err != nil {
		t.Fatal(err)
	}
	write("b-active", "b", "from b")
	if _, err := sn.Prepare(ctx, "a-active", "", nil); err != nil {
		t.Fatal(err)
	}
	write("a-active", "a", "from a")
	write("a-active", "b", "hidden by b")

	// a is not committed yet: b cannot go onto it, nor onto nothing known.
	for _, tc := range []struct {
		parent string
		want   error
	}{{"a-active", errdefs.ErrInvalidArgument}, {"missing", errdefs.ErrNotFound}} {
		if err := sn.CommitOnto(ctx, "b", "b-active", tc.parent, nil); !errors.Is(err, tc.want) {
			t.Errorf("CommitOnto %s: %v, want %v", tc.parent, err, tc.want)
		}
	}
	if _, err := sn.LowerDirs(ctx, "a-active"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("LowerDirs of an active snapshot: %v", err)
	}
	if got := strings.Join(walk(t, sn), " "); got != "a-active:active: b-active:active:" {
		t.Fatalf("after refused commits: %s", got)
	}

	if err := sn.Commit(ctx, "a", "a-active", nil); err != nil {
		t.Fatal(err)
	}
	if err := sn.CommitOnto(ctx, "b", "b-active", "a", nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(walk(t, sn), " "); got != "a:committed: b:committed:a" {
		t.Errorf("after CommitOnto: %s", got)
	}
	if err := sn.Remove(ctx, "a"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("removing the parent of a snapshot committed onto it: %v", err)
	}
	dirs, err := sn.LowerDirs(ctx, "b")
	if want := []string{filepath.Join(root, "snapshots/1/fs"), filepath.Join(root, "snapshots/2/fs")}; err != nil || !reflect.DeepEqual(dirs, want) {
		t.Errorf("LowerDirs(b) = %v, %v; want %v", dirs, err, want)
	}
	ms, err := sn.View(ctx, "view", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	target := mountAt(t, ms)
	for name, want := range map[string]string{"a": "from a", "b": "from b"} {
		if got, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(got) != want {
			t.Errorf("%s in the view = %q, %v; want %q", name, got, err, want)
		}
	}

	// Prepared on a parent, it commits onto that parent only.
	if _, err := sn.Prepare(ctx, "c-active", "a", nil); err != nil {
		t.Fatal(err)
	}
	if err := sn.CommitOnto(ctx, "c", "c-active", "b", nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("CommitOnto another parent than Prepare's: %v", err)
	}
	if err := sn.CommitOnto(ctx, "c", "c-active", "a", nil); err != nil {
		t.Errorf("CommitOnto Prepare's own parent: %v", err)
	}
}
