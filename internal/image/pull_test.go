package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/content"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/snapshot"
)

func nullLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func mustParse(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mountImage mounts a read-only view of the image's snapshot and returns
// its path and a function that unmounts and removes it (also run at cleanup).
func mountImage(t *testing.T, svc *Service, chainID string) (string, func()) {
	t.Helper()
	ctx := context.Background()
	key := "berth-test-view-" + filepath.Base(t.TempDir())
	ms, err := svc.Snapshots.View(ctx, key, chainID, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := snapshot.MountAll(ms, dir); err != nil {
		svc.Snapshots.Remove(ctx, key)
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			unix.Unmount(dir, unix.MNT_DETACH)
			svc.Snapshots.Remove(ctx, key)
		})
	}
	t.Cleanup(release)
	return dir, release
}

func TestPullUnpacksAndRecords(t *testing.T) {
	env := newImagesTestEnv(t, nil)
	ctx := context.Background()
	bb := busyboxImage(t)
	bb.push(t, env.client, env.host+"/library/busybox:1")
	layered := layeredImage(t)
	layered.push(t, env.client, env.host+"/layered:latest")

	var events []ProgressEvent
	img, err := env.svc.Pull(ctx, mustParse(t, env.host+"/library/busybox:1"), PullOptions{Progress: func(e ProgressEvent) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != env.host+"/library/busybox:1" || img.Target.Digest != bb.desc.Digest {
		t.Fatalf("image record %+v", img)
	}
	if last := events[len(events)-1]; last.Status != StatusUnpacked {
		t.Errorf("last progress event %+v, want unpacked", last)
	}
	rc, snap, err := env.svc.RuntimeConfig(ctx, env.host+"/library/busybox:1")
	if err != nil {
		t.Fatal(err)
	}
	want := RuntimeConfig{User: "1000:1000", Env: []string{"PATH=/bin"}, WorkingDir: "/root", Cmd: []string{"sh"},
		ExposedPorts: []string{"8080/tcp"}, Volumes: []string{"/data"}, StopSignal: "SIGQUIT", Entrypoint: []string{}}
	if !reflect.DeepEqual(rc, want) {
		t.Errorf("RuntimeConfig = %+v\nwant %+v", rc, want)
	}
	root, release1 := mountImage(t, env.svc, snap)
	if target, err := os.Readlink(filepath.Join(root, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh -> %q, %v", target, err)
	}

	img, err = env.svc.Pull(ctx, mustParse(t, env.host+"/layered"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root, release2 := mountImage(t, env.svc, img.Snapshot)
	if _, err := os.Lstat(filepath.Join(root, "etc/gone")); !os.IsNotExist(err) {
		t.Errorf("whiteout etc/gone still visible: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "opq/old")); !os.IsNotExist(err) {
		t.Errorf("opaque dir shows lower opq/old: %v", err)
	}
	for f, want := range map[string]string{"etc/kept": "kept", "etc/link": "kept", "opq/new": "new", "top": "zstd layer"} {
		if b, err := os.ReadFile(filepath.Join(root, f)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", f, b, err, want)
		}
	}
	var a, b unix.Stat_t
	unix.Stat(filepath.Join(root, "etc/kept"), &a)
	unix.Stat(filepath.Join(root, "etc/link"), &b)
	if a.Ino != b.Ino {
		t.Errorf("etc/link is not a hard link of etc/kept")
	}

	list, err := env.svc.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}

	release1()
	release2()
	// Tag, then remove both names: the store ends empty.
	if _, err := env.svc.Tag(ctx, env.host+"/layered", "berth-test/copy:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.Remove(ctx, env.host+"/layered"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.Inspect(ctx, "berth-test/copy:v1"); err != nil {
		t.Fatalf("tag lost with its source name: %v", err)
	}
	for _, n := range []string{"berth-test/copy:v1", env.host + "/library/busybox:1"} {
		if _, err := env.svc.Remove(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	assertStoreEmpty(t, env.svc)
}

// assertStoreEmpty checks no blob and no snapshot is left.
func assertStoreEmpty(t *testing.T, svc *Service) {
	t.Helper()
	ctx := context.Background()
	n := 0
	svc.Content.Walk(ctx, func(i content.Info) error { n++; return nil })
	svc.Snapshots.Walk(ctx, func(_ context.Context, i snapshot.Info) error { n++; t.Logf("snapshot left: %+v", i); return nil })
	if n != 0 {
		t.Fatalf("%d blobs and snapshots left in the store", n)
	}
	if imgs, _ := svc.DB.Images(); len(imgs) != 0 {
		t.Fatalf("images left: %+v", imgs)
	}
}

func TestPullErrorsNameTheProblem(t *testing.T) {
	env := newImagesTestEnv(t, nil)
	ctx := context.Background()
	bb := busyboxImage(t)
	bb.push(t, env.client, env.host+"/bb:1")

	_, err := env.svc.Pull(ctx, mustParse(t, env.host+"/bb:missing"), PullOptions{})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("pull of a missing tag: %v", err)
	}
	_, err = env.svc.Pull(ctx, mustParse(t, env.host+"/bb:1"), PullOptions{Platform: mustPlatform(t, "linux/s390x")})
	if err == nil || !strings.Contains(err.Error(), "linux/s390x") {
		t.Errorf("pull for another platform: %v", err)
	}
	assertStoreEmpty(t, env.svc)
}

func mustPlatform(t *testing.T, s string) ocispec.Platform {
	p, err := ParsePlatform(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gate holds every blob GET until open is closed, so that pulls started
// together are all in flight at once rather than one after another.
func gate(open <-chan struct{}) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isBlobGet(r) {
				<-open
			}
			next.ServeHTTP(w, r)
		})
	}
}

// wrapAll applies wraps in order, the first outermost.
func wrapAll(wraps ...func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		for i := len(wraps) - 1; i >= 0; i-- {
			h = wraps[i](h)
		}
		return h
	}
}

// onManifestGets calls fn with the count of manifest GETs so far.
func onManifestGets(fn func(n int)) func(http.Handler) http.Handler {
	var n atomic.Int32
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
				fn(int(n.Add(1)))
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestConcurrentPullsDownloadOnce pulls one image four times at once: twice
// in each of two Services on one root (as two berth processes would be;
// their locks are files, so two opens in one process exclude each other as
// processes do). The registry holds back blobs until all four have fetched
// the manifest, so all four are in flight together. Each blob is
// downloaded once, and all four pulls succeed.
func TestConcurrentPullsDownloadOnce(t *testing.T) {
	const pulls = 4
	var mu sync.Mutex
	blobGets := map[string]int{}
	open := make(chan struct{})
	var once sync.Once
	env := newImagesTestEnv(t, wrapAll(countBlobGets(&mu, blobGets), gate(open), onManifestGets(func(n int) {
		if n == pulls {
			once.Do(func() { close(open) })
		}
	})))
	ctx := context.Background()
	layered := layeredImage(t)
	layered.push(t, env.client, env.host+"/layered:latest")
	other := openTestService(t, env.root, nil)
	var wg sync.WaitGroup
	errs := make([]error, pulls)
	for i := range errs {
		svc := env.svc
		if i%2 == 1 {
			svc = other
		}
		wg.Go(func() { _, errs[i] = svc.Pull(ctx, mustParse(t, env.host+"/layered"), PullOptions{}) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	assertDownloadedOnce(t, blobGets, 4) // config and 3 layers
	if list, err := other.List(ctx); err != nil || len(list) != 1 {
		t.Errorf("images after the pulls: %+v, %v", list, err)
	}
}

// TestCollectionWaitsForPullsInProgress: a collection in another process
// (a second Service on the root) waits for a pull in progress, says so,
// and gives up after its LockTimeout with an error that says why; once the
// pull is done it runs and keeps the pulled image.
func TestCollectionWaitsForPullsInProgress(t *testing.T) {
	open := make(chan struct{})
	fetching := make(chan struct{})
	var once sync.Once
	env := newImagesTestEnv(t, wrapAll(onManifestGets(func(int) { once.Do(func() { close(fetching) }) }), gate(open)))
	ctx := context.Background()
	layered := layeredImage(t)
	layered.push(t, env.client, env.host+"/layered:latest")
	pulled := make(chan error)
	go func() {
		_, err := env.svc.Pull(ctx, mustParse(t, env.host+"/layered"), PullOptions{})
		pulled <- err
	}()
	<-fetching // the pull holds its lease and the store lock, its blobs held back

	other := openTestService(t, env.root, nil)
	other.LockTimeout = 100 * time.Millisecond
	var told []string
	other.Waiting = func(msg string) { told = append(told, msg) }
	_, err := other.GC(ctx)
	if err == nil || !strings.Contains(err.Error(), "pulls, loads or imports in "+env.root+" did not finish within 100ms") {
		t.Errorf("collection during a pull: %v", err)
	}
	if len(told) != 1 || !strings.Contains(told[0], "garbage collection: waiting for other berth processes' pulls") {
		t.Errorf("told while waiting: %q", told)
	}

	close(open)
	if err := <-pulled; err != nil {
		t.Fatal(err)
	}
	res, err := other.GC(ctx)
	if err != nil || res.Blobs != 0 || res.Snapshots != 0 {
		t.Fatalf("collection after the pull: %+v, %v", res, err)
	}
	if list, err := other.List(ctx); err != nil || len(list) != 1 {
		t.Errorf("images after the collection: %+v, %v", list, err)
	}
}

// pauseAfter passes n bytes of the body, then waits for resume before
// passing the rest.
type pauseAfter struct {
	http.ResponseWriter
	left   int
	resume <-chan struct{}
}

func (p *pauseAfter) Write(b []byte) (int, error) {
	if p.left < 0 || len(b) <= p.left {
		p.left -= len(b)
		return p.ResponseWriter.Write(b)
	}
	n, err := p.ResponseWriter.Write(b[:p.left])
	if err != nil {
		return n, err
	}
	p.ResponseWriter.(http.Flusher).Flush()
	p.left = -1
	<-p.resume
	m, err := p.ResponseWriter.Write(b[n:])
	return n + m, err
}

// waitFor returns a channel closed once cond holds, or once it has not
// held for a long while, so that a broken pipeline fails the test (through
// *gaveUp) instead of hanging it. The limit is far beyond what the
// condition needs; nothing is measured.
func waitFor(cond func() bool, gaveUp *atomic.Bool) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Since(start) > 30*time.Second {
				gaveUp.Store(true)
				return
			}
		}
	}()
	return ch
}

// TestPullStreamsAndOverlapsLayers checks the unpack pipeline as the
// registry sees it: the first layer's files appear in its snapshot while
// the rest of its download is held back (download, decompression and
// extraction are one pass), and the first layer is unpacked while the last
// layer's download is held back (layers download in parallel and are
// applied as they arrive; TestPullExtractsTwoLayersAtOnce shows two at once).
func TestPullStreamsAndOverlapsLayers(t *testing.T) {
	random := randomBytes(1 << 20)
	img := buildImage(t, []testLayer{
		{tar: makeTar(t, []tarEntry{{name: "early", body: "first file of the first layer"}, {name: "big", body: string(random)}})},
		{tar: makeTar(t, []tarEntry{{name: "middle", body: "2"}})},
		{tar: makeTar(t, []tarEntry{{name: "last", body: "3"}})},
	}, ocispec.ImageConfig{}, hostPlatform())
	var m ocispec.Manifest
	json.Unmarshal(img.manifest, &m)
	first, last := m.Layers[0].Digest.String(), m.Layers[2].Digest.String()

	var root string
	var firstUnpacked, streamGaveUp, overlapGaveUp atomic.Bool
	env := newImagesTestEnv(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case !isBlobGet(r):
			case strings.HasSuffix(r.URL.Path, first):
				early := func() bool {
					m, _ := filepath.Glob(filepath.Join(root, "snapshots/snapshots/*/fs/early"))
					return len(m) > 0
				}
				w = &pauseAfter{ResponseWriter: w, left: 512 << 10, resume: waitFor(early, &streamGaveUp)}
			case strings.HasSuffix(r.URL.Path, last):
				<-waitFor(firstUnpacked.Load, &overlapGaveUp)
			}
			next.ServeHTTP(w, r)
		})
	})
	root = env.root
	img.push(t, env.client, env.host+"/pipeline:1")
	_, err := env.svc.Pull(context.Background(), mustParse(t, env.host+"/pipeline:1"), PullOptions{Progress: func(e ProgressEvent) {
		if e.Digest == m.Layers[0].Digest && e.Status == StatusUnpacked {
			firstUnpacked.Store(true)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if streamGaveUp.Load() {
		t.Error("the first layer's first file did not appear while the rest of its download was held back: the layer is not extracted as it downloads")
	}
	if overlapGaveUp.Load() {
		t.Error("the first layer was not unpacked while the last layer's download was held back: layers are not applied as they arrive")
	}
}

// TestPullBoundsParallelDownloads pulls five layers with MaxDownloads 2:
// the registry answers layer downloads one at a time, each only once as
// many are in flight as may be, so two are at once (they run in parallel)
// and a pull that ignored the bound would have more.
func TestPullBoundsParallelDownloads(t *testing.T) {
	const layers, limit = 5, 2
	var ls []testLayer
	for i := range layers {
		ls = append(ls, testLayer{tar: makeTar(t, []tarEntry{{name: fmt.Sprintf("f%d", i), body: strings.Repeat("x", i+1)}})})
	}
	img := buildImage(t, ls, ocispec.ImageConfig{}, hostPlatform())
	var m ocispec.Manifest
	json.Unmarshal(img.manifest, &m)
	sizeOf := func(path string) int64 {
		for _, l := range m.Layers {
			if strings.HasSuffix(path, l.Digest.String()) {
				return l.Size
			}
		}
		return -1
	}
	var mu sync.Mutex
	started, finished, most := 0, 0, 0
	var gaveUp atomic.Bool
	env := newImagesTestEnv(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			size := sizeOf(r.URL.Path)
			if !isBlobGet(r) || size < 0 {
				next.ServeHTTP(w, r)
				return
			}
			mu.Lock()
			ticket := started
			started++
			most = max(most, started-finished)
			mu.Unlock()
			// One at a time, in arrival order, and only once as many are
			// in flight as may be: a pull that does not wait for a free
			// slot sends the rest meanwhile.
			<-waitFor(func() bool {
				mu.Lock()
				defer mu.Unlock()
				return finished == ticket && started-finished >= min(limit, layers-finished)
			}, &gaveUp)
			// Counted as finished before its last bytes go out: the
			// client cannot have started the next download before.
			next.ServeHTTP(&beforeLastByte{ResponseWriter: w, left: size, fn: func() {
				mu.Lock()
				finished++
				mu.Unlock()
			}}, r)
		})
	})
	img.push(t, env.client, env.host+"/five:1")
	env.svc.MaxDownloads = limit
	if _, err := env.svc.Pull(context.Background(), mustParse(t, env.host+"/five:1"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if most != limit || gaveUp.Load() {
		t.Errorf("at most %d layer downloads at once (gave up waiting for %d: %v), want %d", most, limit, gaveUp.Load(), limit)
	}
}

// beforeLastByte calls fn once, just before the body's last byte of left
// is written.
type beforeLastByte struct {
	http.ResponseWriter
	left int64
	fn   func()
}

func (b *beforeLastByte) Write(p []byte) (int, error) {
	if b.left > 0 && int64(len(p)) >= b.left {
		b.fn()
	}
	b.left -= int64(len(p))
	return b.ResponseWriter.Write(p)
}

// TestSharedLayersStoredOnce pulls two images that share their first two
// layers: the second pull downloads only its own layer, and the shared
// layers' blobs and snapshots are stored once.
func TestSharedLayersStoredOnce(t *testing.T) {
	var mu sync.Mutex
	blobGets := map[string]int{}
	env := newImagesTestEnv(t, countBlobGets(&mu, blobGets))
	ctx := context.Background()
	base := []testLayer{
		{tar: makeTar(t, []tarEntry{{name: "base", body: "shared"}})},
		{tar: makeTar(t, []tarEntry{{name: "lib", body: "shared too"}})},
	}
	a := buildImage(t, base, ocispec.ImageConfig{Cmd: []string{"a"}}, hostPlatform())
	b := buildImage(t, append(base, testLayer{tar: makeTar(t, []tarEntry{{name: "app", body: "b's own"}})}), ocispec.ImageConfig{Cmd: []string{"b"}}, hostPlatform())
	a.push(t, env.client, env.host+"/a:1")
	b.push(t, env.client, env.host+"/b:1")
	var bEvents []ProgressEvent
	if _, err := env.svc.Pull(ctx, mustParse(t, env.host+"/a:1"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.Pull(ctx, mustParse(t, env.host+"/b:1"), PullOptions{Progress: func(e ProgressEvent) { bEvents = append(bEvents, e) }}); err != nil {
		t.Fatal(err)
	}
	assertDownloadedOnce(t, blobGets, 5) // a: config and 2 layers; b: config and its own layer
	exists := 0
	for _, e := range bEvents {
		if e.Status == StatusExists {
			exists++
		}
	}
	if exists != 2 {
		t.Errorf("the second pull reported %d layers already there, want 2: %+v", exists, bEvents)
	}
	var snaps []string
	env.svc.Snapshots.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		snaps = append(snaps, i.Name)
		return nil
	})
	if len(snaps) != 3 {
		t.Errorf("snapshots %v, want 3 (the two shared layers' and b's top)", snaps)
	}
}

// assertDownloadedOnce checks that want blobs were downloaded, each once.
func assertDownloadedOnce(t *testing.T, blobGets map[string]int, want int) {
	t.Helper()
	for p, n := range blobGets {
		if n != 1 {
			t.Errorf("%s downloaded %d times", p, n)
		}
	}
	if len(blobGets) != want {
		t.Errorf("%d blobs downloaded, want %d", len(blobGets), want)
	}
}
