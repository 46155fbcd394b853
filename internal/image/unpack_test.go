package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/snapshot"
)

// inSomeSnapshot reports whether a snapshot's tree under root has name.
func inSomeSnapshot(root, name string) bool {
	m, _ := filepath.Glob(filepath.Join(root, "snapshots/snapshots/*/fs", name))
	return len(m) > 0
}

// holdLayers serves the blob of each layer digest in hold by passing its
// first 512 KiB, then holding the rest back until the layer's condition
// (given the request) holds, or has not held for a long while (then
// *gaveUp is set: the pipeline did not do what the test expects).
func holdLayers(hold map[string]func(r *http.Request) bool, gaveUp *atomic.Bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for d, cond := range hold {
				if isBlobGet(r) && strings.HasSuffix(r.URL.Path, d) {
					w = &pauseAfter{ResponseWriter: w, left: 512 << 10, resume: waitFor(func() bool { return cond(r) }, gaveUp)}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// layerDigests returns the digests of img's layers as strings.
func layerDigests(img testImage) []string {
	var m ocispec.Manifest
	json.Unmarshal(img.manifest, &m)
	var ds []string
	for _, l := range m.Layers {
		ds = append(ds, l.Digest.String())
	}
	return ds
}

// TestPullExtractsTwoLayersAtOnce holds back the rest of each of two
// layers' downloads until both layers' first files are in their snapshots:
// a pull that applied layer 1 only after layer 0 would never get there.
// When the second first file appears, both layers are being extracted and
// neither download has ended. The image is then whole, layer 1 on layer 0.
func TestPullExtractsTwoLayersAtOnce(t *testing.T) {
	img := buildImage(t, []testLayer{
		{tar: makeTar(t, []tarEntry{{name: "early0", body: "layer 0"}, {name: "shared", body: "from layer 0"}, {name: "big0", body: string(randomBytes(1 << 20))}})},
		{tar: makeTar(t, []tarEntry{{name: "early1", body: "layer 1"}, {name: "shared", body: "from layer 1"}, {name: "big1", body: string(randomBytes(3 << 19))}})},
	}, ocispec.ImageConfig{}, hostPlatform())
	ds := layerDigests(img)
	var root string
	var gaveUp atomic.Bool
	both := func(*http.Request) bool { return inSomeSnapshot(root, "early0") && inSomeSnapshot(root, "early1") }
	env := newImagesTestEnv(t, holdLayers(map[string]func(*http.Request) bool{ds[0]: both, ds[1]: both}, &gaveUp))
	root = env.root
	img.push(t, env.client, env.host+"/two:1")
	var mu sync.Mutex
	var unpacked []string
	got, err := env.svc.Pull(context.Background(), mustParse(t, env.host+"/two:1"), PullOptions{Progress: func(e ProgressEvent) {
		if e.Status == StatusUnpacked {
			mu.Lock()
			unpacked = append(unpacked, e.Digest.String())
			mu.Unlock()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if gaveUp.Load() {
		t.Fatal("the two layers were not extracted at the same time: one's first file did not appear while the other's download was held back")
	}
	if strings.Join(unpacked, " ") != strings.Join(ds, " ") {
		t.Errorf("unpacked in the order %v, want the layers' %v", unpacked, ds)
	}
	chain := ChainIDs(img.config.RootFS.DiffIDs)
	if info, err := env.svc.Snapshots.Stat(context.Background(), got.Snapshot); err != nil || got.Snapshot != chain[1].String() || info.Parent != chain[0].String() {
		t.Errorf("top snapshot %s: %+v, %v; want %s on %s", got.Snapshot, info, err, chain[1], chain[0])
	}
	dir, _ := mountImage(t, env.svc, got.Snapshot)
	for name, want := range map[string]string{"early0": "layer 0", "early1": "layer 1", "shared": "from layer 1"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
}

// TestPullHardLinkToALowerLayersFile: layer 1 links to a file of layer 0
// and starts while layer 0's download is held back, so it is extracted
// before layer 0 is committed and its link waits for it. In the image the
// link and the file are one file.
func TestPullHardLinkToALowerLayersFile(t *testing.T) {
	img := buildImage(t, []testLayer{
		{tar: makeTar(t, []tarEntry{
			{name: "usr/", typ: tar.TypeDir}, {name: "usr/bin/", typ: tar.TypeDir}, {name: "usr/bin/tool", body: "the tool", mode: 0o755},
			{name: "big", body: string(randomBytes(1 << 20))},
		})},
		{tar: makeTar(t, []tarEntry{
			{name: "early1", body: "before the link"},
			{name: "bin/", typ: tar.TypeDir}, {name: "bin/tool", typ: tar.TypeLink, link: "usr/bin/tool"},
			{name: "late1", body: "after the link"},
		})},
	}, ocispec.ImageConfig{}, hostPlatform())
	ds := layerDigests(img)
	var root string
	var gaveUp atomic.Bool
	env := newImagesTestEnv(t, holdLayers(map[string]func(*http.Request) bool{
		ds[0]: func(*http.Request) bool { return inSomeSnapshot(root, "early1") },
	}, &gaveUp))
	root = env.root
	img.push(t, env.client, env.host+"/link:1")
	got, err := env.svc.Pull(context.Background(), mustParse(t, env.host+"/link:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gaveUp.Load() {
		t.Fatal("layer 1 was not extracted while layer 0's download was held back")
	}
	dir, _ := mountImage(t, env.svc, got.Snapshot)
	var link, file unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "bin/tool"), &link); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(filepath.Join(dir, "usr/bin/tool"), &file); err != nil {
		t.Fatal(err)
	}
	if link.Ino != file.Ino || link.Mode != unix.S_IFREG|0o755 {
		t.Errorf("bin/tool: inode %d mode %o; want usr/bin/tool's inode %d, 755", link.Ino, link.Mode, file.Ino)
	}
	for name, want := range map[string]string{"bin/tool": "the tool", "late1": "after the link"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
}

// TestPullFailureAboveWhileBelowApplies: layer 1 is hostile and fails
// while layer 0's download is held back, which it stays until the pull
// gives it up. The pull reports layer 1's fault, not the cancellation it
// caused, and leaves nothing: no snapshot, no directory, no blob.
func TestPullFailureAboveWhileBelowApplies(t *testing.T) {
	img := buildImage(t, []testLayer{
		{tar: makeTar(t, []tarEntry{{name: "early0", body: "layer 0"}, {name: "big", body: string(randomBytes(1 << 20))}})},
		{tar: makeTar(t, []tarEntry{{name: "early1", body: "layer 1"}, {name: "../escape", body: "hostile"}})},
	}, ocispec.ImageConfig{}, hostPlatform())
	ds := layerDigests(img)
	var gaveUp atomic.Bool
	var on atomic.Bool
	env := newImagesTestEnv(t, holdLayers(map[string]func(*http.Request) bool{
		ds[0]: func(r *http.Request) bool { return !on.Load() || r.Context().Err() != nil },
	}, &gaveUp))
	img.push(t, env.client, env.host+"/bad:1")
	on.Store(true)
	_, err := env.svc.Pull(context.Background(), mustParse(t, env.host+"/bad:1"), PullOptions{})
	t.Logf("pull: %v", err)
	if err == nil || !strings.Contains(err.Error(), "layer 1") || !strings.Contains(err.Error(), `"../escape"`) || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("err = %v, want layer 1's hostile entry", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("err = %v: the cancellation of layer 0 is reported, not its cause", err)
	}
	if gaveUp.Load() {
		t.Error("layer 0 was not given up when layer 1 failed: layer 1 was not extracted while layer 0 was")
	}
	assertStoreEmpty(t, env.svc)
	if ents, err := os.ReadDir(filepath.Join(env.root, "snapshots/snapshots")); err != nil || len(ents) != 0 {
		t.Errorf("snapshot directories left: %v, %v", ents, err)
	}
}

// TestPullKilledHelper is the pull TestPullKilledWhileLayersWaitIsReclaimed
// kills: it runs only in the process that test starts.
func TestPullKilledHelper(t *testing.T) {
	root, ref := os.Getenv("BERTH_TEST_KILLED_PULL_ROOT"), os.Getenv("BERTH_TEST_KILLED_PULL_REF")
	if root == "" {
		t.Skip("run by TestPullKilledWhileLayersWaitIsReclaimed")
	}
	svc := openTestService(t, root, nil)
	_, err := svc.Pull(context.Background(), mustParse(t, ref), PullOptions{})
	t.Fatalf("the pull was to be killed, it ended: %v", err)
}

// TestPullKilledWhileLayersWaitIsReclaimed kills a pull (another process,
// SIGKILL) once layer 1 is extracted, early, while layer 0's download is
// held back. What it leaves is not an image: no snapshot under a chain ID,
// only active extraction snapshots under its lease, layer 1's on no parent.
// Once the lease is gone (it expires; here it is deleted), a collection
// reclaims everything: snapshots, their directories, blobs, downloads.
func TestPullKilledWhileLayersWaitIsReclaimed(t *testing.T) {
	if os.Getenv("BERTH_TEST_KILLED_PULL_ROOT") != "" {
		t.Skip("in the helper process")
	}
	img := buildImage(t, []testLayer{
		{tar: makeTar(t, []tarEntry{{name: "early0", body: "layer 0"}, {name: "big", body: string(randomBytes(1 << 20))}})},
		{tar: makeTar(t, []tarEntry{{name: "d/", typ: tar.TypeDir}, {name: "d/early1", body: "layer 1"}, {name: "implied/.wh.x"}})},
	}, ocispec.ImageConfig{}, hostPlatform())
	ds := layerDigests(img)
	var killed, gaveUp atomic.Bool
	env := newImagesTestEnv(t, holdLayers(map[string]func(*http.Request) bool{
		ds[0]: func(*http.Request) bool { return killed.Load() },
	}, &gaveUp))
	ref := env.host + "/killed:1"
	img.push(t, env.client, ref)

	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPullKilledHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BERTH_TEST_KILLED_PULL_ROOT="+root, "BERTH_TEST_KILLED_PULL_REF="+ref)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Layer 1 is in, waiting for layer 0 to commit onto it: its implied
	// directory is the last thing it makes, before the wait.
	<-waitFor(func() bool { return inSomeSnapshot(root, "implied") }, &gaveUp)
	cmd.Process.Kill()
	cmd.Wait()
	killed.Store(true)
	if gaveUp.Load() {
		t.Fatalf("layer 1 was not extracted while layer 0 was held back; the pull said:\n%s", out.String())
	}

	svc := openTestService(t, root, nil)
	ctx := context.Background()
	chain := ChainIDs(img.config.RootFS.DiffIDs)
	var early bool
	svc.Snapshots.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		if i.Kind != snapshot.KindActive || !strings.HasPrefix(i.Name, extractPrefix) {
			t.Errorf("the killed pull left %s snapshot %s: only active extractions may be left", i.Kind, i.Name)
		}
		if strings.HasSuffix(i.Name, chain[1].String()) && i.Parent == "" {
			early = true
		}
		return nil
	})
	if !early {
		t.Error("no extraction of layer 1 on no parent: the kill did not catch it waiting for layer 0")
	}
	leases, err := svc.DB.ActiveLeases(time.Now())
	if err != nil || len(leases) != 1 {
		t.Fatalf("leases after the kill: %+v, %v; want the pull's", leases, err)
	}
	if err := svc.DB.DeleteLease(leases[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.GC(ctx); err != nil {
		t.Fatal(err)
	}
	assertStoreEmpty(t, svc)
	for _, dir := range []string{"snapshots/snapshots", "content/ingest"} {
		if ents, err := os.ReadDir(filepath.Join(root, dir)); err != nil || len(ents) != 0 {
			t.Errorf("%s holds %v, %v after the collection", dir, ents, err)
		}
	}
}
