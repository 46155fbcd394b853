package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
)

// imagesGate is a reverse proxy on 127.0.0.1 in front of a registry that
// counts blob GETs by path and holds every blob GET until release is
// called; fetched is closed once n manifest GETs have come in.
type imagesGate struct {
	host    string
	fetched chan struct{}
	release func()

	mu     sync.Mutex
	counts map[string]int
}

func newImagesGate(t *testing.T, reg string, n int) *imagesGate {
	t.Helper()
	target, _ := url.Parse("http://" + reg)
	proxy := httputil.NewSingleHostReverseProxy(target)
	g := &imagesGate{fetched: make(chan struct{}), counts: map[string]int{}}
	open := make(chan struct{})
	var once sync.Once
	g.release = func() { once.Do(func() { close(open) }) }
	seen := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			blob := strings.Contains(r.URL.Path, "/blobs/")
			g.mu.Lock()
			if blob {
				g.counts[r.URL.Path]++
			} else if strings.Contains(r.URL.Path, "/manifests/") {
				if seen++; seen == n {
					close(g.fetched)
				}
			}
			g.mu.Unlock()
			if blob {
				<-open
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(g.release) // before srv.Close: never leave a handler blocked
	g.host = strings.TrimPrefix(srv.URL, "http://")
	return g
}

func (g *imagesGate) blobGets() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.counts {
		out[k] = v
	}
	return out
}

// TestImagesPullTwiceAtOnceDownloadsOnce runs two `berth pull` processes of
// one image into one --root, both in flight at once (the registry holds
// back blobs until both have the manifest): both succeed, every blob is
// downloaded once, and the image is listed once. `berth image prune` run
// meanwhile waits for the pulls, says so, and gives up after --lock-timeout.
func TestImagesPullTwiceAtOnceDownloadsOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay snapshots")
	}
	berth := imagesBerth(t)
	reg := imagesRegistry(t)
	builder, puller := t.TempDir(), t.TempDir()
	imagesRun(t, berth, builder, "import", imagesRootfs(t), reg+"/berth-test/busybox:1")
	imagesRun(t, berth, builder, "push", reg+"/berth-test/busybox:1")
	gate := newImagesGate(t, reg, 2)
	name := gate.host + "/berth-test/busybox:1"

	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Go(func() { outs[i], errs[i] = imagesTry(berth, puller, "pull", name) })
	}
	pullsDone := make(chan struct{})
	go func() { wg.Wait(); close(pullsDone) }()
	select {
	case <-gate.fetched:
	case <-pullsDone:
		t.Fatalf("the pulls ended before both fetched the manifest:\n%s\n%s", outs[0], outs[1])
	}

	prune, err := imagesTry(berth, puller, "--lock-timeout", "300ms", "image", "prune")
	if err == nil || !strings.Contains(prune, "waiting for other berth processes' pulls, loads or imports") ||
		!strings.Contains(prune, "did not finish within 300ms") {
		t.Errorf("prune during two pulls: %v\n%s", err, prune)
	}

	gate.release()
	<-pullsDone
	for i := range outs {
		if errs[i] != nil || !strings.Contains(outs[i], "Pulled "+name) {
			t.Fatalf("pull %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	gets := gate.blobGets()
	for p, n := range gets {
		if n != 1 {
			t.Errorf("%s downloaded %d times, want once", p, n)
		}
	}
	if len(gets) != 2 {
		t.Errorf("%d blobs downloaded, want 2 (config and layer): %v", len(gets), gets)
	}
	if list := imagesList(t, berth, puller); len(list) != 1 || list[0].Name != name {
		t.Errorf("images after the pulls: %+v", list)
	}
	if out := imagesRun(t, berth, puller, "image", "prune"); !strings.Contains(out, "Removed 0 blobs and 0 snapshots") {
		t.Errorf("prune after the pulls: %s", out)
	}
}
