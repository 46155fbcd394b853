package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/reference"
	berthregistry "github.com/berth-project/berth/internal/registry"
)

// tarEntry is one file of a test layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: time.Unix(1700000000, 0), Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// randomBytes returns n incompressible bytes (xorshift), so that a layer
// made of them is as big compressed as not.
func randomBytes(n int) []byte {
	data := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range data {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		data[i] = byte(x)
	}
	return data
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zstdBytes(b []byte) []byte {
	zw, _ := zstd.NewWriter(nil)
	return zw.EncodeAll(b, nil)
}

// testImage is an image built in a test, ready to push.
type testImage struct {
	blobs    map[digest.Digest][]byte
	manifest []byte
	desc     ocispec.Descriptor
	config   ocispec.Image
}

type testLayer struct {
	tar       []byte
	mediaType string // gzip when empty
}

func buildImage(t *testing.T, layers []testLayer, cfg ocispec.ImageConfig, platform ocispec.Platform) testImage {
	t.Helper()
	ti := testImage{blobs: map[digest.Digest][]byte{}}
	created := time.Unix(1700000000, 0).UTC()
	img := ocispec.Image{Created: &created, Platform: platform, Config: cfg, RootFS: ocispec.RootFS{Type: "layers"}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, digest.FromBytes(l.tar))
		var blob []byte
		mt := l.mediaType
		switch mt {
		case "", ocispec.MediaTypeImageLayerGzip:
			mt, blob = ocispec.MediaTypeImageLayerGzip, gzipBytes(l.tar)
		case ocispec.MediaTypeImageLayerZstd:
			blob = zstdBytes(l.tar)
		default:
			blob = l.tar
		}
		ti.blobs[digest.FromBytes(blob)] = blob
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))})
	}
	cb, _ := json.Marshal(img)
	ti.blobs[digest.FromBytes(cb)] = cb
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	ti.manifest, _ = json.Marshal(m)
	ti.desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(ti.manifest), Size: int64(len(ti.manifest))}
	ti.config = img
	return ti
}

func hostPlatform() ocispec.Platform { p, _ := ParsePlatform(""); return p }

// busyboxImage is Debian's static busybox with a few applet links.
func busyboxImage(t *testing.T) testImage {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("needs Debian's busybox-static at /bin/busybox: %v", err)
	}
	entries := []tarEntry{{name: "bin/", typ: tar.TypeDir}, {name: "bin/busybox", body: string(bb), mode: 0o755}}
	for _, a := range []string{"sh", "ls", "cat", "echo"} {
		entries = append(entries, tarEntry{name: "bin/" + a, typ: tar.TypeSymlink, link: "busybox"})
	}
	return buildImage(t, []testLayer{{tar: makeTar(t, entries)}}, ocispec.ImageConfig{
		Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}, WorkingDir: "/root", User: "1000:1000",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}}, Volumes: map[string]struct{}{"/data": {}}, StopSignal: "SIGQUIT",
	}, hostPlatform())
}

// layeredImage has three layers with whiteouts, a hard link and an opaque
// directory; the last layer is zstd.
func layeredImage(t *testing.T) testImage {
	l1 := makeTar(t, []tarEntry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/gone", body: "removed by layer 2"},
		{name: "etc/kept", body: "kept"},
		{name: "etc/link", typ: tar.TypeLink, link: "etc/kept"},
		{name: "opq/", typ: tar.TypeDir},
		{name: "opq/old", body: "hidden by the opaque dir"},
	})
	l2 := makeTar(t, []tarEntry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/.wh.gone"},
		{name: "opq/", typ: tar.TypeDir},
		{name: "opq/.wh..wh..opq"},
		{name: "opq/new", body: "new"},
	})
	l3 := makeTar(t, []tarEntry{{name: "top", body: "zstd layer"}})
	return buildImage(t, []testLayer{{tar: l1}, {tar: l2}, {tar: l3, mediaType: ocispec.MediaTypeImageLayerZstd}}, ocispec.ImageConfig{}, hostPlatform())
}

// push puts ti into the registry at host as repo:tag.
func (ti testImage) push(t *testing.T, c *berthregistry.Client, ref string) {
	t.Helper()
	r, err := reference.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for d, b := range ti.blobs {
		if err := repo.PushBlob(ctx, ocispec.Descriptor{Digest: d, Size: int64(len(b))}, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.PushManifest(ctx, ti.desc, ti.manifest, r.Tag); err != nil {
		t.Fatal(err)
	}
}

// imagesTestEnv is a registry served in-process and an empty store.
type imagesTestEnv struct {
	host   string // 127.0.0.1:PORT
	svc    *Service
	root   string
	client *berthregistry.Client
}

// newImagesTestEnv serves go-containerregistry's registry, its handler
// wrapped by wrap (for fault injection) if given, and opens a store in a
// temporary directory.
func newImagesTestEnv(t *testing.T, wrap func(http.Handler) http.Handler) *imagesTestEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay snapshots")
	}
	var h http.Handler = registry.New(registry.Logger(nullLogger()))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	root := t.TempDir()
	return &imagesTestEnv{host: host, root: root, svc: openTestService(t, root, nil), client: berthregistry.New(berthregistry.Options{Backoff: 10 * time.Millisecond})}
}

func openTestService(t *testing.T, root string, rc *berthregistry.Client) *Service {
	t.Helper()
	if rc == nil {
		rc = berthregistry.New(berthregistry.Options{Backoff: 10 * time.Millisecond})
	}
	svc, err := Open(root, rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}
