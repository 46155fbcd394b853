// Package testsuite is the conformance suite every snapshot.Snapshotter
// runs: prepare/commit chains, views, removal rules, errors, and mounts that
// are really mounted (as root, in temporary directories, unmounted in
// cleanup on every path) so that what a container would see is checked, not
// what the mount options look like.
package testsuite

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
	"github.com/berth-project/berth/internal/snapshot"
)

// New makes a Snapshotter stored under root. The suite calls it once per
// test with a fresh root, and again with the same root to check that
// snapshots survive a reopen. The suite closes what New returns.
type New func(t *testing.T, root string) snapshot.Snapshotter

// Run runs the suite. It needs root (mount(2)); without it the tests skip
// and say so.
func Run(t *testing.T, newSnapshotter New) {
	tests := []struct {
		name string
		fn   func(*testing.T, context.Context, snapshot.Snapshotter)
	}{
		{"PrepareCommitChain", testPrepareCommitChain},
		{"WhiteoutsAndOpaqueDirs", testWhiteoutsAndOpaqueDirs},
		{"ViewIsReadOnly", testViewIsReadOnly},
		{"DeepView", testDeepView},
		{"RemoveRules", testRemoveRules},
		{"Errors", testErrors},
		{"WalkAndStat", testWalkAndStat},
		{"Usage", testUsage},
		{"ConcurrentPrepare", testConcurrentPrepare},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireRoot(t)
			sn := newSnapshotter(t, t.TempDir())
			t.Cleanup(func() { sn.Close() })
			tt.fn(t, context.Background(), sn)
		})
	}
	t.Run("Reopen", func(t *testing.T) {
		requireRoot(t)
		testReopen(t, newSnapshotter)
	})
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the suite mounts snapshots with mount(2)")
	}
}

// mountAt mounts ms on a fresh directory and returns it with an unmount
// function; the unmount also runs in cleanup, so a failing test leaves no
// mount behind.
func mountAt(t *testing.T, ms []snapshot.Mount) (string, func()) {
	t.Helper()
	target, err := os.MkdirTemp("", "berth-snapshot-mnt-")
	if err != nil {
		t.Fatal(err)
	}
	unmount := func() {
		if err := snapshot.UnmountAll(target); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	}
	t.Cleanup(func() {
		unmount()
		os.Remove(target)
	})
	if err := snapshot.MountAll(ms, target); err != nil {
		t.Fatalf("mount %+v: %v", ms, err)
	}
	return target, unmount
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// expect checks what a user of the mounted tree sees: files with content,
// and names that must not be there ("" content).
func expect(t *testing.T, root string, want map[string]string) {
	t.Helper()
	for name, content := range want {
		b, err := os.ReadFile(filepath.Join(root, name))
		switch {
		case content == "" && !errors.Is(err, os.ErrNotExist):
			t.Errorf("%s: exists (err %v) but must be hidden", name, err)
		case content != "" && err != nil:
			t.Errorf("%s: %v, want %q", name, err, content)
		case content != "" && string(b) != content:
			t.Errorf("%s = %q, want %q", name, b, content)
		}
	}
}

// layer prepares an active snapshot on parent, lets write change its
// mounted tree, and commits it as name.
func layer(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, name, parent string, write func(root string)) {
	t.Helper()
	key := name + "-active"
	ms, err := sn.Prepare(ctx, key, parent, nil)
	if err != nil {
		t.Fatalf("Prepare(%q, %q): %v", key, parent, err)
	}
	root, unmount := mountAt(t, ms)
	write(root)
	unmount()
	if err := sn.Commit(ctx, name, key, nil); err != nil {
		t.Fatalf("Commit(%q, %q): %v", name, key, err)
	}
}

func testPrepareCommitChain(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) {
	layer(t, ctx, sn, "base", "", func(root string) {
		writeFile(t, filepath.Join(root, "etc/os-release"), "base")
		writeFile(t, filepath.Join(root, "bin/sh"), "shell v1")
	})
	layer(t, ctx, sn, "app", "base", func(root string) {
		expect(t, root, map[string]string{"etc/os-release": "base", "bin/sh": "shell v1"})
		writeFile(t, filepath.Join(root, "bin/sh"), "shell v2")
		writeFile(t, filepath.Join(root, "app/main"), "app")
	})
	ms, err := sn.Prepare(ctx, "container", "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := mountAt(t, ms)
	expect(t, root, map[string]string{"etc/os-release": "base", "bin/sh": "shell v2", "app/main": "app"})
	writeFile(t, filepath.Join(root, "tmp/scratch"), "scratch")

	// Mounts returns the same tree again.
	again, err := sn.Mounts(ctx, "container")
	if err != nil {
		t.Fatal(err)
	}
	root2, _ := mountAt(t, again)
	expect(t, root2, map[string]string{"tmp/scratch": "scratch", "app/main": "app"})

	if _, err := sn.Stat(ctx, "app-active"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Stat of a committed active key: %v, want ErrNotFound", err)
	}
}

func testWhiteoutsAndOpaqueDirs(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) {
	layer(t, ctx, sn, "lower", "", func(root string) {
		writeFile(t, filepath.Join(root, "etc/motd"), "hello")
		writeFile(t, filepath.Join(root, "etc/keep"), "keep")
		writeFile(t, filepath.Join(root, "cache/old1"), "old")
		writeFile(t, filepath.Join(root, "cache/sub/old2"), "old")
	})
	layer(t, ctx, sn, "upper", "lower", func(root string) {
		if err := os.Remove(filepath.Join(root, "etc/motd")); err != nil {
			t.Fatal(err)
		}
		// Removing a lower directory and making it again gives an opaque
		// directory in the upper layer.
		if err := os.RemoveAll(filepath.Join(root, "cache")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "cache/new"), "new")
	})
	ms, err := sn.View(ctx, "look", "upper", nil)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := mountAt(t, ms)
	expect(t, root, map[string]string{
		"etc/motd": "", "etc/keep": "keep",
		"cache/old1": "", "cache/sub/old2": "", "cache/new": "new",
	})
	names := readDir(t, filepath.Join(root, "cache"))
	if strings.Join(names, ",") != "new" {
		t.Errorf("cache holds %v, want only [new]", names)
	}
}

func readDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func assertReadOnly(t *testing.T, root string) {
	t.Helper()
	err := os.WriteFile(filepath.Join(root, "new-file"), []byte("x"), 0o644)
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into a view: %v, want EROFS", err)
	}
}

func testViewIsReadOnly(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) {
	layer(t, ctx, sn, "one", "", func(root string) { writeFile(t, filepath.Join(root, "f"), "one") })
	ms, err := sn.View(ctx, "view", "one", map[string]string{"purpose": "test"})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := mountAt(t, ms)
	expect(t, root, map[string]string{"f": "one"})
	assertReadOnly(t, root)

	inf, err := sn.Stat(ctx, "view")
	if err != nil || inf.Kind != snapshot.KindView || inf.Parent != "one" || inf.Labels["purpose"] != "test" {
		t.Errorf("Stat(view) = %+v, %v", inf, err)
	}
	if err := sn.Commit(ctx, "from-view", "view", nil); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Commit of a view: %v, want ErrFailedPrecondition", err)
	}
	// A view with no parent is an empty read-only tree.
	ms, err = sn.View(ctx, "empty-view", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	root, _ = mountAt(t, ms)
	if names := readDir(t, root); len(names) != 0 {
		t.Errorf("empty view holds %v", names)
	}
	assertReadOnly(t, root)
}

func testDeepView(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) {
	parent := ""
	for i := range 5 {
		name := "layer" + string(rune('0'+i))
		layer(t, ctx, sn, name, parent, func(root string) {
			writeFile(t, filepath.Join(root, name), name)
			writeFile(t, filepath.Join(root, "top"), name)
		})
		parent = name
	}
	ms, err := sn.View(ctx, "deep", parent, nil)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := mountAt(t, ms)
	expect(t, root, map[string]string{"layer0": "layer0", "layer2": "layer2", "layer4": "layer4", "top": "layer4"})
	assertReadOnly(t, root)
}

func testRemoveRules(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) {
	layer(t, ctx, sn, "parent", "", func(root string) { writeFile(t, filepath.Join(root, "f"), "p") })
	if _, err := sn.Prepare(ctx, "child", "parent", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.View(ctx, "view", "parent", nil); err != nil {
		t.Fatal(err)
	}
	err := sn.Remove(ctx, "parent")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Remove of a parent with children: %v, want ErrFailedPrecondition", err)
	}
	if _, err := sn.Stat(ctx, "parent"); err != nil {
		t.Errorf("parent gone after a refused Remove: %v", err)
	}
	for _, key := range []string{"child", "view"} {
		if err := sn.Remove(ctx, key); err != nil {
			t.Fatalf("Remove(%q): %v", key, err)
		}
		if _, err := sn.Stat(ctx, key); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Stat(%q) after Remove: %v, want ErrNotFound", key, err)
		}
	}
	if err := sn.Remove(ctx, "parent"); err != nil {
		t.Fatalf("Remove of a parent without children: %v", err)
	}
	if err := sn.Remove(ctx, "parent"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Remove: %v, want ErrNotFound", err)
	}
	if got := walk(t, ctx, sn); len(got) != 0 {
		t.Errorf("Walk after removing everything: %v", got)
	}
}

func testErrors(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) {
	layer(t, ctx, sn, "base", "", func(root string) { writeFile(t, filepath.Join(root, "f"), "base") })
	if _, err := sn.Prepare(ctx, "active", "base", nil); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what string
		err  error
		want error
	}{
		{"Prepare of an existing key", second(sn.Prepare(ctx, "active", "", nil)), errdefs.ErrAlreadyExists},
		{"Prepare named like a committed snapshot", second(sn.Prepare(ctx, "base", "", nil)), errdefs.ErrAlreadyExists},
		{"Prepare on a missing parent", second(sn.Prepare(ctx, "orphan", "no-such-parent", nil)), errdefs.ErrNotFound},
		{"Prepare on an active parent", second(sn.Prepare(ctx, "on-active", "active", nil)), errdefs.ErrInvalidArgument},
		{"Prepare with an empty key", second(sn.Prepare(ctx, "", "base", nil)), errdefs.ErrInvalidArgument},
		{"View of a missing parent", second(sn.View(ctx, "v", "no-such-parent", nil)), errdefs.ErrNotFound},
		{"Commit onto an existing name", sn.Commit(ctx, "base", "active", nil), errdefs.ErrAlreadyExists},
		{"Commit of a missing key", sn.Commit(ctx, "x", "no-such-key", nil), errdefs.ErrNotFound},
		{"Commit of a committed snapshot", sn.Commit(ctx, "x", "base", nil), errdefs.ErrFailedPrecondition},
		{"Stat of a missing key", second(sn.Stat(ctx, "no-such-key")), errdefs.ErrNotFound},
		{"Mounts of a missing key", second(sn.Mounts(ctx, "no-such-key")), errdefs.ErrNotFound},
		{"Usage of a missing key", second(sn.Usage(ctx, "no-such-key")), errdefs.ErrNotFound},
		{"Remove of a missing key", sn.Remove(ctx, "no-such-key"), errdefs.ErrNotFound},
	}
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.err, c.want)
		}
	}
	// The failed calls changed nothing.
	got := walk(t, ctx, sn)
	if strings.Join(got, " ") != "active:active:base base:committed:" {
		t.Errorf("snapshots after failed calls: %v", got)
	}
	// A failed Commit leaves the active snapshot usable.
	if err := sn.Commit(ctx, "second", "active", nil); err != nil {
		t.Errorf("Commit after a failed Commit: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// walk lists snapshots as "name:kind:parent".
func walk(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) []string {
	t.Helper()
	var got []string
	err := sn.Walk(ctx, func(_ context.Context, inf snapshot.Info) error {
		got = append(got, inf.Name+":"+inf.Kind.String()+":"+inf.Parent)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	sort.Strings(got)
	return got
}

func testWalkAndStat(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) {
	layer(t, ctx, sn, "a", "", func(string) {})
	if err := sn.Commit(ctx, "b", "b-tmp", nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Commit of a missing key: %v", err)
	}
	if _, err := sn.Prepare(ctx, "b-active", "a", map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "b", "b-active", map[string]string{"chain": "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.View(ctx, "v", "b", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "w", "", nil); err != nil {
		t.Fatal(err)
	}
	want := "a:committed: b:committed:a v:view:b w:active:"
	if got := strings.Join(walk(t, ctx, sn), " "); got != want {
		t.Errorf("Walk = %s, want %s", got, want)
	}
	inf, err := sn.Stat(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if inf.Labels["chain"] != "b" || inf.Created.IsZero() || inf.Updated.Before(inf.Created) {
		t.Errorf("Stat(b) = %+v; want commit labels and sane times", inf)
	}
	stop := errors.New("stop")
	n := 0
	err = sn.Walk(ctx, func(context.Context, snapshot.Info) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Walk with a failing fn: %v after %d calls; want the fn's error after 1", err, n)
	}
}

func testUsage(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) {
	ms, err := sn.Prepare(ctx, "active", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	root, unmount := mountAt(t, ms)
	const size = 1 << 20
	writeFile(t, filepath.Join(root, "big"), strings.Repeat("x", size))
	if err := os.Link(filepath.Join(root, "big"), filepath.Join(root, "big-link")); err != nil {
		t.Fatal(err)
	}
	unmount()
	u, err := sn.Usage(ctx, "active")
	if err != nil {
		t.Fatal(err)
	}
	// The hard link counts once: 1 MiB plus the root directory, not 2 MiB.
	if u.Size < size || u.Size >= 2*size || u.Inodes != 2 {
		t.Errorf("Usage(active) = %+v; want 2 inodes and 1 MiB to 2 MiB", u)
	}
	if err := sn.Commit(ctx, "committed", "active", nil); err != nil {
		t.Fatal(err)
	}
	uc, err := sn.Usage(ctx, "committed")
	if err != nil || uc != u {
		t.Errorf("Usage(committed) = %+v, %v; want %+v as measured before", uc, err, u)
	}
}

func testReopen(t *testing.T, newSnapshotter New) {
	ctx := context.Background()
	dir := t.TempDir()
	sn := newSnapshotter(t, dir)
	layer(t, ctx, sn, "kept", "", func(root string) { writeFile(t, filepath.Join(root, "f"), "kept") })
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	sn = newSnapshotter(t, dir)
	t.Cleanup(func() { sn.Close() })
	ms, err := sn.View(ctx, "view", "kept", nil)
	if err != nil {
		t.Fatalf("View after reopen: %v", err)
	}
	root, _ := mountAt(t, ms)
	expect(t, root, map[string]string{"f": "kept"})
}

// testConcurrentPrepare races Prepares of one key: exactly one wins, the
// others get ErrAlreadyExists, and only one snapshot exists afterwards.
func testConcurrentPrepare(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = sn.Prepare(ctx, "contended", "", nil) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, errdefs.ErrAlreadyExists):
			t.Errorf("losing Prepare: %v, want ErrAlreadyExists", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent Prepares of one key succeeded, want 1", won, n)
	}
	if got := walk(t, ctx, sn); strings.Join(got, " ") != "contended:active:" {
		t.Errorf("snapshots after the race: %v", got)
	}
}
