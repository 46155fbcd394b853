package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/testutil"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "volumes"))
	must(t, err)
	return s
}

func TestCreateGetListRemove(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	v, err := s.Create(ctx, CreateOptions{Name: "data", Labels: map[string]string{"a": "b"}})
	must(t, err)
	if v.Driver != "local" || v.Mountpoint != filepath.Join(s.root, "data/_data") || v.Anonymous || v.Labels["a"] != "b" {
		t.Fatalf("created %+v", v)
	}
	if fi, err := os.Stat(v.Mountpoint); err != nil || !fi.IsDir() {
		t.Fatalf("mountpoint: %v %v", fi, err)
	}
	// Creating it again returns it, as Docker does.
	again, err := s.Create(ctx, CreateOptions{Name: "data"})
	must(t, err)
	if !again.CreatedAt.Equal(v.CreatedAt) || again.Labels["a"] != "b" {
		t.Fatalf("second create %+v, want %+v", again, v)
	}
	got, err := s.Get(ctx, "data")
	must(t, err)
	if got.Name != "data" || !got.CreatedAt.Equal(v.CreatedAt) {
		t.Fatalf("get %+v", got)
	}
	anon, err := s.Create(ctx, CreateOptions{})
	must(t, err)
	if len(anon.Name) != 64 || !anon.Anonymous || strings.Trim(anon.Name, "0123456789abcdef") != "" {
		t.Fatalf("anonymous %+v", anon)
	}
	list, err := s.List(ctx)
	must(t, err)
	var names []string
	for _, v := range list {
		names = append(names, v.Name)
	}
	want := []string{anon.Name, "data"}
	sort.Strings(want)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("list %v, want %v", names, want)
	}
	must(t, os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("x"), 0o644))
	must(t, s.Remove(ctx, "data"))
	if _, err := s.Get(ctx, "data"); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "data") {
		t.Fatalf("get after remove: %v", err)
	}
	if err := s.Remove(ctx, "data"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	ents, err := os.ReadDir(s.root)
	must(t, err)
	for _, e := range ents {
		if e.Name() != anon.Name && e.Name() != lockName {
			t.Errorf("left in the store: %s", e.Name())
		}
	}
}

func TestBadNames(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, n := range []string{"a", "-x", ".x", "_x", "../etc", "a/b", "a b", "x\x00", strings.Repeat("a", 256), "..", "."} {
		if _, err := s.Create(ctx, CreateOptions{Name: n}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("create %q: %v", n, err)
		}
		if _, err := s.Get(ctx, n); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("get %q: %v", n, err)
		}
		if err := s.Remove(ctx, n); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("remove %q: %v", n, err)
		}
	}
	for _, n := range []string{"ab", "a.b-c_d", "9", "Z0"} {
		_, err := s.Create(ctx, CreateOptions{Name: n})
		if (n == "9") != errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("create %q: %v", n, err)
		}
	}
}

func TestConcurrentCreateMakesOneVolume(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var wg sync.WaitGroup
	got := make([]Volume, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate Stores, as separate berth processes would have.
			s2, err := Open(s.root)
			if err != nil {
				errs[i] = err
				return
			}
			got[i], errs[i] = s2.Create(ctx, CreateOptions{Name: "shared", Labels: map[string]string{"i": string(rune('0' + i))}})
		}()
	}
	wg.Wait()
	for i := range got {
		must(t, errs[i])
		if got[i].Labels["i"] != got[0].Labels["i"] || !got[i].CreatedAt.Equal(got[0].CreatedAt) {
			t.Errorf("creator %d got %+v, creator 0 %+v", i, got[i], got[0])
		}
	}
	list, err := s.List(ctx)
	must(t, err)
	if len(list) != 1 {
		t.Fatalf("volumes: %+v", list)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	named, err := s.Create(ctx, CreateOptions{Name: "named"})
	must(t, err)
	used, err := s.Create(ctx, CreateOptions{})
	must(t, err)
	free, err := s.Create(ctx, CreateOptions{})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(free.Mountpoint, "f"), make([]byte, 1000), 0o644))
	must(t, os.Link(filepath.Join(free.Mountpoint, "f"), filepath.Join(free.Mountpoint, "g")))
	must(t, os.WriteFile(filepath.Join(named.Mountpoint, "f"), make([]byte, 10), 0o644))
	inUse := func(n string) bool { return n == used.Name }

	removed, reclaimed, err := s.Prune(ctx, inUse, false)
	must(t, err)
	if len(removed) != 1 || removed[0] != free.Name || reclaimed != 1000 {
		t.Fatalf("prune removed %v (%d bytes)", removed, reclaimed)
	}
	removed, reclaimed, err = s.Prune(ctx, inUse, true)
	must(t, err)
	if len(removed) != 1 || removed[0] != "named" || reclaimed != 10 {
		t.Fatalf("prune all removed %v (%d bytes)", removed, reclaimed)
	}
	if _, err := s.Get(ctx, used.Name); err != nil {
		t.Fatalf("volume in use pruned: %v", err)
	}
}

func TestUsage(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	v, err := s.Create(ctx, CreateOptions{Name: "sized"})
	must(t, err)
	must(t, os.MkdirAll(filepath.Join(v.Mountpoint, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(v.Mountpoint, "d/f"), make([]byte, 4096), 0o644))
	must(t, os.Symlink("/etc/passwd", filepath.Join(v.Mountpoint, "l")))
	n, err := s.Usage(ctx, "sized")
	must(t, err)
	if n != 4096+int64(len("/etc/passwd")) {
		t.Fatalf("usage %d", n)
	}
	if _, err := s.Usage(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("usage of missing: %v", err)
	}
}

func TestOpenRemovesLeftovers(t *testing.T) {
	s := newStore(t)
	must(t, os.MkdirAll(filepath.Join(s.root, tmpPrefix+"crashed/_data"), 0o755))
	_, err := Open(s.root)
	must(t, err)
	if _, err := os.Stat(filepath.Join(s.root, tmpPrefix+"crashed")); !os.IsNotExist(err) {
		t.Fatalf("leftover kept: %v", err)
	}
}

// copyUpFixture is an image rootfs beside a host directory its symlinks
// point at.
func copyUpFixture(t *testing.T) (rootfs, host string) {
	t.Helper()
	testutil.RequiresRoot(t)
	tmp := t.TempDir()
	rootfs, host = filepath.Join(tmp, "rootfs"), filepath.Join(tmp, "host")
	must(t, os.MkdirAll(filepath.Join(rootfs, "var/lib/app/nested/deep"), 0o755))
	must(t, os.Chmod(filepath.Join(rootfs, "var/lib/app"), 0o750))
	must(t, os.Chown(filepath.Join(rootfs, "var/lib/app"), 999, 998))
	must(t, os.WriteFile(filepath.Join(rootfs, "var/lib/app/conf"), []byte("conf"), 0o640))
	must(t, os.Chown(filepath.Join(rootfs, "var/lib/app/conf"), 999, 998))
	must(t, os.WriteFile(filepath.Join(rootfs, "var/lib/app/nested/deep/f"), []byte("deep"), 0o600))
	must(t, unix.Setxattr(filepath.Join(rootfs, "var/lib/app/conf"), "user.berth", []byte("kept"), 0))
	must(t, os.Mkdir(host, 0o755))
	must(t, os.WriteFile(filepath.Join(host, "secret"), []byte("host secret"), 0o600))
	// An escaping symlink inside the copied tree, and symlinked path
	// components on the way to it.
	must(t, os.Symlink(filepath.Join(host, "secret"), filepath.Join(rootfs, "var/lib/app/escape")))
	must(t, os.Symlink("/var/lib", filepath.Join(rootfs, "link-lib")))
	must(t, os.Symlink(host, filepath.Join(rootfs, "hostdir")))
	return rootfs, host
}

func TestCopyUp(t *testing.T) {
	ctx := context.Background()
	rootfs, _ := copyUpFixture(t)
	s := newStore(t)
	v, err := s.Create(ctx, CreateOptions{Name: "app"})
	must(t, err)
	// Through a symlinked component, resolved inside the rootfs.
	must(t, s.CopyUp(ctx, "app", rootfs, "/link-lib/app"))
	d := v.Mountpoint
	if b, err := os.ReadFile(filepath.Join(d, "nested/deep/f")); err != nil || string(b) != "deep" {
		t.Fatalf("nested file: %q %v", b, err)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(d, "conf"), &st))
	if st.Uid != 999 || st.Gid != 998 || st.Mode&0o7777 != 0o640 {
		t.Errorf("conf: %d:%d %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	buf := make([]byte, 16)
	if n, err := unix.Getxattr(filepath.Join(d, "conf"), "user.berth", buf); err != nil || string(buf[:n]) != "kept" {
		t.Errorf("xattr: %q %v", buf[:n], err)
	}
	must(t, unix.Lstat(d, &st))
	if st.Uid != 999 || st.Mode&0o7777 != 0o750 {
		t.Errorf("volume root takes the image dir's owner and mode: %d %o", st.Uid, st.Mode&0o7777)
	}
	// The escaping link is copied as a link, not as the host file.
	if target, err := os.Readlink(filepath.Join(d, "escape")); err != nil || !strings.HasSuffix(target, "/host/secret") {
		t.Errorf("escape: %q %v", target, err)
	}
	// A second CopyUp does nothing, even after the volume was emptied.
	must(t, os.RemoveAll(filepath.Join(d, "nested")))
	must(t, s.CopyUp(ctx, "app", rootfs, "/var/lib/app"))
	if _, err := os.Stat(filepath.Join(d, "nested")); !os.IsNotExist(err) {
		t.Errorf("second CopyUp copied again: %v", err)
	}
}

func TestCopyUpStaysInsideRootfs(t *testing.T) {
	ctx := context.Background()
	rootfs, _ := copyUpFixture(t)
	s := newStore(t)
	// A path component that points at the host resolves inside the
	// rootfs, where there is nothing: the volume stays empty, marked.
	_, err := s.Create(ctx, CreateOptions{Name: "esc"})
	must(t, err)
	must(t, s.CopyUp(ctx, "esc", rootfs, "/hostdir"))
	v, _ := s.Get(ctx, "esc")
	ents, err := os.ReadDir(v.Mountpoint)
	must(t, err)
	if len(ents) != 0 {
		t.Fatalf("copied from the host: %v", ents)
	}
	r, err := s.read("esc")
	must(t, err)
	if !r.Initialized {
		t.Fatal("a missing path still marks the volume filled")
	}
	// A non-empty volume is not filled, but marked.
	_, err = s.Create(ctx, CreateOptions{Name: "full"})
	must(t, err)
	v, _ = s.Get(ctx, "full")
	must(t, os.WriteFile(filepath.Join(v.Mountpoint, "mine"), nil, 0o644))
	must(t, s.CopyUp(ctx, "full", rootfs, "/var/lib/app"))
	if _, err := os.Stat(filepath.Join(v.Mountpoint, "conf")); !os.IsNotExist(err) {
		t.Fatalf("filled a non-empty volume: %v", err)
	}
	// A file is not a directory to fill a volume from.
	_, err = s.Create(ctx, CreateOptions{Name: "file"})
	must(t, err)
	if err := s.CopyUp(ctx, "file", rootfs, "/var/lib/app/conf"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("copy up a file: %v", err)
	}
	if err := s.CopyUp(ctx, "nope", rootfs, "/"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("copy up a missing volume: %v", err)
	}
}

// TestCopyUpFailureLeavesVolumeUnfilled: a copy that stops halfway leaves
// the volume empty and not marked, so the next container fills it.
func TestCopyUpFailureLeavesVolumeUnfilled(t *testing.T) {
	rootfs, _ := copyUpFixture(t)
	s := newStore(t)
	_, err := s.Create(context.Background(), CreateOptions{Name: "cut"})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.CopyUp(ctx, "cut", rootfs, "/var/lib/app"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled copy: %v", err)
	}
	v, err := s.Get(context.Background(), "cut")
	must(t, err)
	if ents, _ := os.ReadDir(v.Mountpoint); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
	must(t, s.CopyUp(context.Background(), "cut", rootfs, "/var/lib/app"))
	if _, err := os.Stat(filepath.Join(v.Mountpoint, "conf")); err != nil {
		t.Fatalf("second try did not fill: %v", err)
	}
}

// FuzzCheckName: an accepted name is one directory entry under the
// store's root, never a path out of it or a store file.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"data", "../x", ".lock", "a/b", "ab", strings.Repeat("z", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckName(name) != nil {
			return
		}
		j := filepath.Join("/root", name)
		if filepath.Dir(j) != "/root" || filepath.Base(j) != name || strings.HasPrefix(name, ".") {
			t.Fatalf("accepted %q", name)
		}
	})
}
