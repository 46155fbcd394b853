package fscopy

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
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

// fixture is a rootfs beside a host directory holding a secret that no
// copy may read or write through a container's symlinks.
type fixture struct {
	rootfs, host, out string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	testutil.RequiresRoot(t)
	tmp := t.TempDir()
	f := fixture{rootfs: filepath.Join(tmp, "rootfs"), host: filepath.Join(tmp, "host"), out: filepath.Join(tmp, "out")}
	for _, d := range []string{f.rootfs, f.host, f.out} {
		must(t, os.Mkdir(d, 0o755))
	}
	write(t, filepath.Join(f.host, "secret"), "host secret")
	// What the container's symlinks point at, inside the rootfs: in-root
	// resolution finds these decoys, a host-side resolution the secret.
	must(t, os.MkdirAll(filepath.Join(f.rootfs, f.host), 0o755))
	write(t, filepath.Join(f.rootfs, f.host, "secret"), "decoy inside")
	must(t, os.MkdirAll(filepath.Join(f.rootfs, "etc"), 0o755))
	write(t, filepath.Join(f.rootfs, "etc/hostname"), "ctr")
	must(t, os.MkdirAll(filepath.Join(f.rootfs, "app/sub"), 0o750))
	write(t, filepath.Join(f.rootfs, "app/a.txt"), "a")
	write(t, filepath.Join(f.rootfs, "app/sub/b.txt"), "b")
	must(t, os.Chown(filepath.Join(f.rootfs, "app/a.txt"), 1234, 5678))
	must(t, os.Link(filepath.Join(f.rootfs, "app/a.txt"), filepath.Join(f.rootfs, "app/sub/a-link")))
	must(t, os.Symlink("../a.txt", filepath.Join(f.rootfs, "app/sub/rel")))
	// Hostile links: absolute and relative, to the host secret and to
	// the host directory.
	must(t, os.Symlink(filepath.Join(f.host, "secret"), filepath.Join(f.rootfs, "abs-secret")))
	must(t, os.Symlink("../../../../../../.."+filepath.Join(f.host, "secret"), filepath.Join(f.rootfs, "rel-secret")))
	must(t, os.Symlink(f.host, filepath.Join(f.rootfs, "abs-dir")))
	must(t, os.Symlink("../../../../../.."+f.host, filepath.Join(f.rootfs, "app/rel-dir")))
	must(t, os.Symlink("/", filepath.Join(f.rootfs, "to-root")))
	t.Cleanup(func() { f.checkHost(t) })
	return f
}

// checkHost fails the test if anything but the secret is in the host
// directory, or the secret changed.
func (f fixture) checkHost(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(f.host)
	must(t, err)
	if len(ents) != 1 || ents[0].Name() != "secret" {
		t.Errorf("host directory was written: %v", ents)
	}
	if got := read(t, filepath.Join(f.host, "secret")); got != "host secret" {
		t.Errorf("host secret changed: %q", got)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t testing.TB, p, s string) {
	t.Helper()
	must(t, os.WriteFile(p, []byte(s), 0o644))
}

func read(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}

func TestCopyOutFile(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// To a new name.
	must(t, CopyOut(ctx, f.rootfs, "/app/a.txt", filepath.Join(f.out, "new"), nil))
	if got := read(t, filepath.Join(f.out, "new")); got != "a" {
		t.Fatalf("content %q", got)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(f.out, "new"), &st))
	if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("without Archive the copy belongs to the caller, got %d:%d", st.Uid, st.Gid)
	}
	// Into an existing directory, keeping owners.
	must(t, CopyOut(ctx, f.rootfs, "app/a.txt", f.out, nil, Options{Archive: true}))
	must(t, unix.Lstat(filepath.Join(f.out, "a.txt"), &st))
	if st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("Archive keeps owners, got %d:%d", st.Uid, st.Gid)
	}
	// Onto an existing file.
	write(t, filepath.Join(f.out, "old"), "old content")
	must(t, CopyOut(ctx, f.rootfs, "/etc/hostname", filepath.Join(f.out, "old"), nil))
	if got := read(t, filepath.Join(f.out, "old")); got != "ctr" {
		t.Fatalf("overwritten content %q", got)
	}
	// A file to "missing/" names a directory that does not exist.
	err := CopyOut(ctx, f.rootfs, "/etc/hostname", filepath.Join(f.out, "missing")+"/", nil)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("file to missing dir/: %v", err)
	}
	// A directory cannot go onto a file.
	err = CopyOut(ctx, f.rootfs, "/app", filepath.Join(f.out, "old"), nil)
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("dir onto file: %v", err)
	}
	// The parent of the destination must exist.
	err = CopyOut(ctx, f.rootfs, "/etc/hostname", filepath.Join(f.out, "no/such"), nil)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing parent: %v", err)
	}
}

func TestCopyOutDirectory(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Into an existing directory: out/app/...
	must(t, CopyOut(ctx, f.rootfs, "/app", f.out, nil, Options{Archive: true}))
	checkAppTree(t, filepath.Join(f.out, "app"))
	// Its contents only.
	into := filepath.Join(f.out, "contents")
	must(t, os.Mkdir(into, 0o700))
	must(t, CopyOut(ctx, f.rootfs, "/app/.", into, nil, Options{Archive: true}))
	checkAppTree(t, into)
	fi, err := os.Stat(into)
	must(t, err)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("contents copy changed the destination's own mode to %v", fi.Mode())
	}
	// To a new name.
	must(t, CopyOut(ctx, f.rootfs, "/app/", filepath.Join(f.out, "renamed"), nil, Options{Archive: true}))
	checkAppTree(t, filepath.Join(f.out, "renamed"))
}

func checkAppTree(t *testing.T, dir string) {
	t.Helper()
	if got := read(t, filepath.Join(dir, "sub/b.txt")); got != "b" {
		t.Errorf("sub/b.txt: %q", got)
	}
	var a, l unix.Stat_t
	must(t, unix.Lstat(filepath.Join(dir, "a.txt"), &a))
	must(t, unix.Lstat(filepath.Join(dir, "sub/a-link"), &l))
	if a.Ino != l.Ino {
		t.Errorf("hard link not kept")
	}
	if a.Uid != 1234 || a.Gid != 5678 {
		t.Errorf("owner %d:%d", a.Uid, a.Gid)
	}
	if got, err := os.Readlink(filepath.Join(dir, "sub/rel")); err != nil || got != "../a.txt" {
		t.Errorf("symlink: %q %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sub")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("sub mode: %v %v", fi, err)
	}
}

func TestCopyOutSymlinksStayInside(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, src := range []string{"/abs-secret", "/rel-secret"} {
		// The last component: the link itself is copied...
		dst := filepath.Join(f.out, strings.TrimPrefix(src, "/"))
		must(t, CopyOut(ctx, f.rootfs, src, dst, nil))
		if fi, err := os.Lstat(dst); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s: want the link copied, got %v %v", src, fi, err)
		}
		must(t, os.Remove(dst))
		// ... and followed, it resolves inside the rootfs.
		must(t, CopyOut(ctx, f.rootfs, src, dst, nil, Options{FollowLink: true}))
		if got := read(t, dst); got != "decoy inside" {
			t.Fatalf("%s followed: %q", src, got)
		}
	}
	// Symlinks in the middle of the path.
	for _, src := range []string{"/abs-dir/secret", "/app/rel-dir/secret", "/to-root" + f.host + "/secret"} {
		dst := filepath.Join(f.out, "mid")
		must(t, CopyOut(ctx, f.rootfs, src, dst, nil))
		if got := read(t, dst); got != "decoy inside" {
			t.Fatalf("%s: %q", src, got)
		}
		must(t, os.Remove(dst))
	}
	// Without the decoy the host file is simply not there.
	must(t, os.Remove(filepath.Join(f.rootfs, f.host, "secret")))
	err := CopyOut(ctx, f.rootfs, "/abs-dir/secret", filepath.Join(f.out, "x"), nil)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "/abs-dir/secret") {
		t.Fatalf("want ErrNotFound naming the path, got %v", err)
	}
}

func TestCopyOutTarStream(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	if err := CopyOut(context.Background(), f.rootfs, "/app", "-", nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("no writer: %v", err)
	}
	must(t, CopyOut(context.Background(), f.rootfs, "/app", "-", &buf))
	names := tarNames(t, buf.Bytes())
	want := "app/ app/a.txt app/rel-dir app/sub/ app/sub/a-link app/sub/b.txt app/sub/rel"
	if strings.Join(names, " ") != want {
		t.Fatalf("entries %v, want %s", names, want)
	}
	buf.Reset()
	must(t, CopyOut(context.Background(), f.rootfs, "/app/sub/.", "-", &buf))
	if got := strings.Join(tarNames(t, buf.Bytes()), " "); got != "a-link b.txt rel" {
		t.Fatalf("contents entries %s", got)
	}
}

func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		names = append(names, h.Name)
	}
	sort.Strings(names)
	return names
}

func TestCopyInFiles(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := filepath.Join(f.out, "src")
	must(t, os.MkdirAll(filepath.Join(src, "d"), 0o755))
	write(t, filepath.Join(src, "d/f"), "file")
	must(t, os.Chown(filepath.Join(src, "d/f"), 1000, 1000))

	// A file into an existing directory, owned by the container's root.
	must(t, CopyIn(ctx, f.rootfs, "/etc", filepath.Join(src, "d/f"), nil))
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(f.rootfs, "etc/f"), &st))
	if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("copied in as %d:%d, want 0:0", st.Uid, st.Gid)
	}
	// With Archive, owners kept; a directory to a new name.
	must(t, CopyIn(ctx, f.rootfs, "/newdir", src, nil, Options{Archive: true}))
	must(t, unix.Lstat(filepath.Join(f.rootfs, "newdir/d/f"), &st))
	if st.Uid != 1000 {
		t.Errorf("Archive: uid %d", st.Uid)
	}
	// A file copied onto an existing directory lands inside it.
	must(t, CopyIn(ctx, f.rootfs, "/app/sub", filepath.Join(src, "d/f"), nil))
	if got := read(t, filepath.Join(f.rootfs, "app/sub/f")); got != "file" {
		t.Fatal(got)
	}
	// Missing source names it.
	err := CopyIn(ctx, f.rootfs, "/etc", filepath.Join(src, "nope"), nil)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing source: %v", err)
	}
	// Missing parent in the container.
	err = CopyIn(ctx, f.rootfs, "/no/such", filepath.Join(src, "d/f"), nil)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing parent: %v", err)
	}
}

func TestCopyInSymlinksStayInside(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := filepath.Join(f.out, "payload")
	write(t, src, "pwned")
	// A directory symlink in the middle, absolute and relative, and the
	// root symlink: all land inside the rootfs.
	for _, dst := range []string{"/abs-dir", "/app/rel-dir/", "/to-root" + f.host} {
		must(t, CopyIn(ctx, f.rootfs, dst, src, nil))
		if got := read(t, filepath.Join(f.rootfs, f.host, "payload")); got != "pwned" {
			t.Fatalf("%s: %q", dst, got)
		}
		must(t, os.Remove(filepath.Join(f.rootfs, f.host, "payload")))
	}
	// The last component a symlink to the host file.
	for _, dst := range []string{"/abs-secret", "/rel-secret"} {
		must(t, CopyIn(ctx, f.rootfs, dst, src, nil))
	}
	// A tar stream that makes a symlink and writes through it.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: f.host}))
	must(t, tw.WriteHeader(&tar.Header{Name: "esc/through", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}))
	tw.Write([]byte("x"))
	must(t, tw.Close())
	must(t, CopyIn(ctx, f.rootfs, "/", "-", &buf))
	if got := read(t, filepath.Join(f.rootfs, f.host, "through")); got != "x" {
		t.Fatalf("through: %q", got)
	}
}

func TestCopyInTarStreamRefusesEscapes(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"../escape", "/abs", "a/../../b"} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		must(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}))
		must(t, tw.Close())
		err := CopyIn(context.Background(), f.rootfs, "/etc", "-", &buf)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: want ErrInvalidArgument naming the entry, got %v", name, err)
		}
	}
	// A hard link to a host file.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "../../../../" + f.host + "/secret"}))
	must(t, tw.Close())
	if err := CopyIn(context.Background(), f.rootfs, "/etc", "-", &buf); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("hard link out: %v", err)
	}
	// A tar stream onto a file, or a missing directory.
	if err := CopyIn(context.Background(), f.rootfs, "/etc/hostname", "-", &buf); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("stream onto a file: %v", err)
	}
	if err := CopyIn(context.Background(), f.rootfs, "/nope", "-", &buf); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("stream into a missing dir: %v", err)
	}
}

func TestCopyInOverwriteRules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := filepath.Join(f.out, "app")
	write(t, src, "a file named app")
	// A file cannot replace a directory of the same name inside dst.
	err := CopyIn(ctx, f.rootfs, "/", src, nil)
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("file over directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.rootfs, "app/sub/b.txt")); err != nil {
		t.Fatalf("directory damaged: %v", err)
	}
}

// TestSwappedDirectoryRace swaps a directory in the container for a
// symlink to the host while copies run both ways: whatever each copy
// sees, nothing is read from or written to the host directory.
func TestSwappedDirectoryRace(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dir := filepath.Join(f.rootfs, "race")
	real := filepath.Join(f.rootfs, "race-real")
	must(t, os.Mkdir(real, 0o755))
	write(t, filepath.Join(real, "secret"), "decoy inside")
	link := filepath.Join(f.rootfs, "race-link")
	must(t, os.Symlink(f.host, link))
	must(t, os.Rename(real, dir))
	payload := filepath.Join(f.out, "payload")
	write(t, payload, "pwned")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Exchange the directory and the symlink atomically.
			unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE)
		}
	}()
	for i := range 300 {
		dst := filepath.Join(f.out, "got")
		err := CopyOut(ctx, f.rootfs, "/race/secret", dst, nil)
		if err == nil {
			if got := read(t, dst); got != "decoy inside" {
				t.Errorf("iteration %d: read %q", i, got)
			}
			os.Remove(dst)
		}
		CopyIn(ctx, f.rootfs, "/race", payload, nil)
	}
	close(stop)
	wg.Wait()
}

// TestCopyOutTamesPrivilege: a setuid-root file or a device node in a
// container does not become one on the host unless Archive asks for it.
func TestCopyOutTamesPrivilege(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	suid := filepath.Join(f.rootfs, "app/suid")
	write(t, suid, "#!/bin/sh")
	must(t, unix.Chmod(suid, 0o4755))
	must(t, unix.Mknod(filepath.Join(f.rootfs, "app/mem"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 1))))

	must(t, CopyOut(ctx, f.rootfs, "/app", filepath.Join(f.out, "tame"), nil))
	fi, err := os.Stat(filepath.Join(f.out, "tame/suid"))
	must(t, err)
	if fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("setuid kept: %v", fi.Mode())
	}
	if _, err := os.Lstat(filepath.Join(f.out, "tame/mem")); !os.IsNotExist(err) {
		t.Errorf("device node copied out: %v", err)
	}

	must(t, CopyOut(ctx, f.rootfs, "/app", filepath.Join(f.out, "archive"), nil, Options{Archive: true}))
	fi, err = os.Stat(filepath.Join(f.out, "archive/suid"))
	must(t, err)
	if fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("Archive drops setuid: %v", fi.Mode())
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(f.out, "archive/mem"), &st))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 1) {
		t.Errorf("Archive device node: %o %x", st.Mode, st.Rdev)
	}
}
