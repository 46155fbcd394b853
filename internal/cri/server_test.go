package cri

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/testutil"
)

// testEnv is a Server on a unix socket with a fresh store, its gRPC
// clients, and a registry served on loopback.
type testEnv struct {
	root     string
	socket   string
	runtime  runtimeapi.RuntimeServiceClient
	images   runtimeapi.ImageServiceClient
	regHost  string // 127.0.0.1:PORT
	regCli   *registry.Client
	ctx      context.Context
	cniDirs  []string
	serveErr chan error
	// requireAuth makes the registry ask for puller:s3cret (basic auth).
	requireAuth atomic.Bool
}

func newTestEnv(t *testing.T, cniDirs ...string) *testEnv {
	t.Helper()
	return newTestEnvWith(t, nil, cniDirs...)
}

// newTestEnvWith is newTestEnv whose registry client has the settings
// regConfig makes, given the test registry's host:port.
func newTestEnvWith(t *testing.T, regConfig func(regHost string) registry.Config, cniDirs ...string) *testEnv {
	t.Helper()
	testutil.RequiresRoot(t) // overlay snapshots
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := &testEnv{root: t.TempDir(), ctx: ctx, cniDirs: cniDirs}
	e.socket = filepath.Join(t.TempDir(), "berth.sock")

	regHandler := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.requireAuth.Load() {
			if u, p, ok := r.BasicAuth(); !ok || u != "puller" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		regHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(reg.Close)
	e.regHost = strings.TrimPrefix(reg.URL, "http://")
	regOpts := registry.Options{Backoff: 10 * time.Millisecond}
	if regConfig != nil {
		regOpts.Config = regConfig(e.regHost)
	}
	e.regCli = registry.New(regOpts)

	store, err := image.Open(e.root, e.regCli)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Images: store, Root: e.root, CNIPluginDirs: cniDirs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(ctx, e.socket)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	e.serveErr = make(chan error, 1)
	go func() { e.serveErr <- g.Serve(l) }()
	conn, err := grpc.NewClient("unix://"+e.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		<-e.serveErr
		store.Close()
		if m := testutil.MountsUnder(e.root); len(m) > 0 {
			t.Errorf("mounts left under the store: %v", m)
		}
	})
	e.runtime = runtimeapi.NewRuntimeServiceClient(conn)
	e.images = runtimeapi.NewImageServiceClient(conn)
	return e
}

// pushImage builds a one-layer image holding one file and pushes it as
// 127.0.0.1:PORT/repo:tag; it returns the config digest (the image ID)
// and the manifest digest.
func (e *testEnv) pushImage(t *testing.T, repoTag, body string) (id, manifest digest.Digest) {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBuf.Bytes())
	zw.Close()

	created := time.Unix(1700000000, 0).UTC()
	cfg := ocispec.Image{Created: &created, Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{User: "1000", Cmd: []string{"/hello"}},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(tarBuf.Bytes())}}}
	cb, _ := json.Marshal(cfg)
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(gz.Bytes()), Size: int64(gz.Len())}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))},
		Layers: []ocispec.Descriptor{layer}}
	mb, _ := json.Marshal(m)

	ref, err := reference.Parse(e.regHost + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := e.regCli.Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{cb, gz.Bytes()} {
		if err := repo.PushBlob(e.ctx, ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	if err := repo.PushManifest(e.ctx, md, mb, ref.Tag); err != nil {
		t.Fatal(err)
	}
	return m.Config.Digest, md.Digest
}

func wantCode(t *testing.T, err error, want codes.Code, what string) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: got code %v (%v), want %v", what, got, err, want)
	}
}

func TestVersionStatusRuntimeConfig(t *testing.T) {
	e := newTestEnv(t, "/usr/lib/cni")
	v, err := e.runtime.Version(e.ctx, &runtimeapi.VersionRequest{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "berth" || v.RuntimeApiVersion != "v1" {
		t.Errorf("Version = %+v, want runtime berth, API v1", v)
	}
	st, err := e.runtime.Status(e.ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range st.Status.Conditions {
		conds[c.Type] = c
	}
	if !conds[runtimeapi.RuntimeReady].GetStatus() {
		t.Errorf("RuntimeReady = %v", conds[runtimeapi.RuntimeReady])
	}
	// Debian's containernetworking-plugins puts bridge and host-local in /usr/lib/cni.
	if !conds[runtimeapi.NetworkReady].GetStatus() {
		t.Errorf("NetworkReady = %v (needs containernetworking-plugins in /usr/lib/cni)", conds[runtimeapi.NetworkReady])
	}
	rc, err := e.runtime.RuntimeConfig(e.ctx, &runtimeapi.RuntimeConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("cgroup driver = %v", rc.GetLinux().GetCgroupDriver())
	}
	// Without an engine (an image-only server) the pod RPCs say so.
	_, err = e.runtime.RunPodSandbox(e.ctx, &runtimeapi.RunPodSandboxRequest{})
	wantCode(t, err, codes.Unavailable, "RunPodSandbox")
	if !strings.Contains(err.Error(), "RunPodSandbox") {
		t.Errorf("the error does not name the RPC: %v", err)
	}
	// An RPC Berth does not serve on purpose names itself.
	_, err = e.runtime.CheckpointContainer(e.ctx, &runtimeapi.CheckpointContainerRequest{})
	wantCode(t, err, codes.Unimplemented, "CheckpointContainer")
	if !strings.Contains(err.Error(), "CheckpointContainer") {
		t.Errorf("Unimplemented error does not name the RPC: %v", err)
	}
}

func TestStatusNetworkNotReady(t *testing.T) {
	e := newTestEnv(t, t.TempDir())
	st, err := e.runtime.Status(e.ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Status.Conditions {
		if c.Type == runtimeapi.NetworkReady && (c.Status || !strings.Contains(c.Message, "bridge")) {
			t.Errorf("NetworkReady with no plugins = %+v, want false naming bridge", c)
		}
	}
}

func TestImages(t *testing.T) {
	e := newTestEnv(t)
	id, mdig := e.pushImage(t, "cri/hello:v1", "hello from the CRI test")
	name := e.regHost + "/cri/hello:v1"

	pulled, err := e.images.PullImage(e.ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: name}})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.ImageRef != id.String() {
		t.Errorf("PullImage ImageRef = %q, want the config digest %s", pulled.ImageRef, id)
	}

	list, err := e.images.ListImages(e.ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Images) != 1 {
		t.Fatalf("ListImages = %v, want one image", list.Images)
	}
	img := list.Images[0]
	wantDigest := e.regHost + "/cri/hello@" + mdig.String()
	if img.Id != id.String() || len(img.RepoTags) != 1 || img.RepoTags[0] != name ||
		len(img.RepoDigests) != 1 || img.RepoDigests[0] != wantDigest || img.Size == 0 {
		t.Errorf("ListImages = %+v, want id %s, tag %s, digest %s, a size", img, id, name, wantDigest)
	}

	// Found by name, by ID and by repo digest; the user is the image's.
	for _, q := range []string{name, id.String(), wantDigest} {
		st, err := e.images.ImageStatus(e.ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: q}})
		if err != nil {
			t.Fatalf("ImageStatus %s: %v", q, err)
		}
		if st.Image.GetId() != id.String() || st.Image.GetUid().GetValue() != 1000 {
			t.Errorf("ImageStatus %s = %+v, want id %s, uid 1000", q, st.Image, id)
		}
	}
	vst, err := e.images.ImageStatus(e.ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: name}, Verbose: true})
	if err != nil || !strings.Contains(vst.Info["info"], `"Cmd":["/hello"]`) {
		t.Errorf("verbose ImageStatus info = %v, %v; want the image's config", vst.GetInfo(), err)
	}
	st, err := e.images.ImageStatus(e.ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: e.regHost + "/cri/absent:v1"}})
	if err != nil || st.Image != nil {
		t.Errorf("ImageStatus of a missing image = %v, %v; want an empty answer", st, err)
	}

	fs, err := e.images.ImageFsInfo(e.ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.ImageFilesystems) != 1 || fs.ImageFilesystems[0].UsedBytes.GetValue() == 0 || fs.ImageFilesystems[0].InodesUsed.GetValue() < 2 {
		t.Errorf("ImageFsInfo = %+v, want bytes and inodes of the unpacked layer", fs.ImageFilesystems)
	}

	if _, err := e.images.RemoveImage(e.ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: id.String()}}); err != nil {
		t.Fatal(err)
	}
	list, err = e.images.ListImages(e.ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 0 {
		t.Fatalf("ListImages after RemoveImage = %v, %v; want none", list.GetImages(), err)
	}
	// Removing again succeeds, as the CRI requires.
	if _, err := e.images.RemoveImage(e.ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: id.String()}}); err != nil {
		t.Errorf("RemoveImage of a removed image: %v", err)
	}
}

func TestPullImageErrors(t *testing.T) {
	e := newTestEnv(t)
	for _, bad := range []string{"", "UPPERCASE", "a b", "name:tag:tag", "x@sha256:1234"} {
		_, err := e.images.PullImage(e.ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: bad}})
		wantCode(t, err, codes.InvalidArgument, "PullImage "+bad)
	}
	missing := e.regHost + "/cri/missing:v1"
	_, err := e.images.PullImage(e.ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: missing}})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "cri/missing") {
		t.Errorf("PullImage of a missing image = %v, want NotFound naming it", err)
	}
	list, err := e.images.ListImages(e.ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 0 {
		t.Errorf("ListImages after failed pulls = %v, %v; want none", list.GetImages(), err)
	}
}

func TestListenRefusesLiveSocketReplacesStale(t *testing.T) {
	e := newTestEnv(t)
	if _, err := Listen(e.ctx, e.socket); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("Listen on a live socket = %v, want a refusal", err)
	}
	// A stale socket: bound, then its listener gone without unlinking.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := Listen(e.ctx, stale)
	if err != nil {
		t.Fatal(err)
	}
	if ul, ok := l.(interface{ SetUnlinkOnClose(bool) }); ok {
		ul.SetUnlinkOnClose(false)
	}
	l.Close()
	l, err = Listen(e.ctx, stale)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l.Close()
}

// PullImage presents kubelet's credentials (an image pull secret) to the
// registry, in each of the forms kubelet sends; without them the pull is
// refused, and a credential is not reused by a pull that has none.
func TestPullImageAuth(t *testing.T) {
	e := newTestEnv(t)
	e.pushImage(t, "cri/private:v1", "secret layer")
	name := e.regHost + "/cri/private:v1"
	e.requireAuth.Store(true)
	pull := func(a *runtimeapi.AuthConfig) error {
		_, err := e.images.PullImage(e.ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: name}, Auth: a})
		return err
	}
	if err := pull(nil); err == nil {
		t.Fatal("a pull without credentials succeeded from a registry that wants them")
	}
	if err := pull(&runtimeapi.AuthConfig{Username: "puller", Password: "wrong"}); err == nil {
		t.Fatal("a pull with a wrong password succeeded")
	}
	if err := pull(&runtimeapi.AuthConfig{Username: "puller", Password: "s3cret"}); err != nil {
		t.Fatalf("pull with username and password: %v", err)
	}
	e.images.RemoveImage(e.ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: name}})
	if err := pull(&runtimeapi.AuthConfig{Auth: base64.StdEncoding.EncodeToString([]byte("puller:s3cret")), ServerAddress: e.regHost}); err != nil {
		t.Fatalf("pull with auth: %v", err)
	}
	e.images.RemoveImage(e.ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: name}})
	if err := pull(nil); err == nil {
		t.Error("a pull without credentials succeeded after one with them: a credential leaked into the shared client")
	}
	wantCode(t, pull(&runtimeapi.AuthConfig{Auth: "%%%"}), codes.InvalidArgument, "auth that is not base64")
}

// A short name is pulled from the first of registries.conf's
// unqualified-search-registries that has it, and ImageStatus finds the
// image by that short name afterwards (kubelet asks by the pod's name).
func TestPullImageShortName(t *testing.T) {
	e := newTestEnvWith(t, func(host string) registry.Config {
		return registry.Config{UnqualifiedSearch: []string{host}, UnqualifiedSearchSource: "test registries.conf", ShortNameMode: registry.ShortNamePermissive}
	})
	id, _ := e.pushImage(t, "cri/short:v1", "short")
	resp, err := e.images.PullImage(e.ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "cri/short:v1"}})
	if err != nil || resp.ImageRef != id.String() {
		t.Fatalf("PullImage cri/short:v1 = %v, %v; want %s", resp, err, id)
	}
	st, err := e.images.ImageStatus(e.ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "cri/short:v1"}})
	if err != nil || st.Image == nil || st.Image.Id != id.String() {
		t.Fatalf("ImageStatus cri/short:v1 = %v, %v; want %s", st, err, id)
	}
	_, err = e.images.PullImage(e.ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "cri/absent:v1"}})
	if err == nil || !strings.Contains(err.Error(), e.regHost) {
		t.Errorf("PullImage of a short name no registry has = %v; want an error naming the registries tried", err)
	}
}
