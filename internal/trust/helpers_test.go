package trust

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/berth-project/berth/internal/content"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/reference"
	berthregistry "github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/trust/sigstore"
)

// testEnv is an in-process registry, an image store and a checker over
// a policy file the test writes.
type testEnv struct {
	t       testing.TB
	host    string
	srv     *httptest.Server
	root    string
	svc     *image.Service
	client  *berthregistry.Client
	checker *Checker
	policy  string
	rules   string
	// hits counts the registry's requests.
	hits int
}

func newTestEnv(t testing.TB, wrap func(http.Handler) http.Handler) *testEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the image store's overlay snapshots")
	}
	e := &testEnv{t: t, root: t.TempDir()}
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	inner := h
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits++
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.host = strings.TrimPrefix(e.srv.URL, "http://")
	e.client = berthregistry.New(berthregistry.Options{Backoff: 5 * time.Millisecond, BlobAttempts: 1})
	svc, err := image.Open(e.root, e.client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	e.svc = svc
	e.policy = filepath.Join(e.root, "policy.json")
	e.rules = filepath.Join(e.root, "admission.yaml")
	e.checker = New(Options{Root: e.root, PolicyPaths: []string{e.policy}, AdmissionPath: e.rules, Registry: e.client, Images: svc})
	svc.Verify = e.checker.VerifyPull
	return e
}

func (e *testEnv) writePolicy(doc string) {
	e.t.Helper()
	if err := os.WriteFile(e.policy, []byte(doc), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) writeRules(doc string) {
	e.t.Helper()
	if err := os.WriteFile(e.rules, []byte(doc), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// testKey is a signing key with its public half in a file.
type testKey struct {
	priv *ecdsa.PrivateKey
	path string
}

func (e *testEnv) newKey(name string) testKey {
	e.t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.root, name+".pub")
	if err := os.WriteFile(path, pem, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return testKey{priv: k, path: path}
}

func (k testKey) sign(data []byte) []byte {
	sum := sha256.Sum256(data)
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, sum[:])
	if err != nil {
		panic(err)
	}
	return sig
}

var _ = crypto.SHA256

// testImage is a one-layer image.
type testImage struct {
	blobs    map[digest.Digest][]byte
	manifest []byte
	desc     ocispec.Descriptor
}

func newTestImage(t testing.TB, body string, cfg ocispec.ImageConfig) testImage {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "file", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tb.Bytes())
	zw.Close()
	created := time.Unix(1700000000, 0).UTC()
	p, _ := image.ParsePlatform("")
	img := ocispec.Image{Created: &created, Platform: p, Config: cfg, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(tb.Bytes())}}}
	cb, _ := json.Marshal(img)
	ti := testImage{blobs: map[digest.Digest][]byte{digest.FromBytes(cb): cb, digest.FromBytes(gz.Bytes()): gz.Bytes()}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(gz.Bytes()), Size: int64(gz.Len())}}}
	ti.manifest, _ = json.Marshal(m)
	ti.desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(ti.manifest), Size: int64(len(ti.manifest))}
	return ti
}

func (e *testEnv) push(ti testImage, ref string) {
	e.t.Helper()
	r, err := reference.Parse(ref)
	if err != nil {
		e.t.Fatal(err)
	}
	repo, err := e.client.Repository(r)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	for d, b := range ti.blobs {
		if err := repo.PushBlob(ctx, ocispec.Descriptor{Digest: d, Size: int64(len(b))}, bytes.NewReader(b)); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := repo.PushManifest(ctx, ti.desc, ti.manifest, r.Tag); err != nil {
		e.t.Fatal(err)
	}
}

// attachmentLayer is one layer of a .sig or .att manifest.
type attachmentLayer struct {
	mediaType   string
	blob        []byte
	annotations map[string]string
}

// pushAttachment pushes a cosign-shaped manifest under repo's tag.
func (e *testEnv) pushAttachment(repoRef, tag string, layers ...attachmentLayer) {
	e.t.Helper()
	cfg := []byte(`{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`)
	ti := testImage{blobs: map[digest.Digest][]byte{digest.FromBytes(cfg): cfg}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}}
	for _, l := range layers {
		ti.blobs[digest.FromBytes(l.blob)] = l.blob
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: l.mediaType, Digest: digest.FromBytes(l.blob), Size: int64(len(l.blob)), Annotations: l.annotations})
	}
	ti.manifest, _ = json.Marshal(m)
	ti.desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(ti.manifest), Size: int64(len(ti.manifest))}
	e.push(ti, repoRef+":"+tag)
}

// signature makes cosign's simple-signing layer for manifest d claiming identity.
func signature(k testKey, identity string, d digest.Digest) attachmentLayer {
	payload := []byte(`{"critical":{"identity":{"docker-reference":"` + identity + `"},"image":{"docker-manifest-digest":"` + d.String() + `"},"type":"cosign container image signature"},"optional":null}`)
	return attachmentLayer{mediaType: "application/vnd.dev.cosign.simplesigning.v1+json", blob: payload,
		annotations: map[string]string{sigstore.AnnotationSignature: base64.StdEncoding.EncodeToString(k.sign(payload))}}
}

// attestation makes cosign's DSSE layer of an in-toto statement about d.
func attestation(k testKey, d digest.Digest, predicateType string, predicate []byte) attachmentLayer {
	st, _ := json.Marshal(map[string]any{
		"_type": "https://in-toto.io/Statement/v0.1", "predicateType": predicateType,
		"subject":   []map[string]any{{"name": "x", "digest": map[string]string{"sha256": d.Encoded()}}},
		"predicate": json.RawMessage(predicate),
	})
	env, _ := json.Marshal(map[string]any{"payloadType": sigstore.PayloadTypeInToto, "payload": base64.StdEncoding.EncodeToString(st),
		"signatures": []map[string]string{{"keyid": "", "sig": base64.StdEncoding.EncodeToString(k.sign(sigstore.PAE(sigstore.PayloadTypeInToto, st)))}}})
	return attachmentLayer{mediaType: sigstore.MediaTypeDSSE, blob: env,
		annotations: map[string]string{sigstore.AnnotationSignature: "", sigstore.AnnotationPredicate: predicateType}}
}

func sigTag(d digest.Digest) string { return attachmentTag(d, "sig") }
func attTag(d digest.Digest) string { return attachmentTag(d, "att") }

// assertEmptyStore checks that a refused pull left nothing: no image, no blob.
func (e *testEnv) assertEmptyStore() {
	e.t.Helper()
	ctx := context.Background()
	imgs, err := e.svc.List(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(imgs) != 0 {
		e.t.Errorf("store has images: %v", imgs)
	}
	n := 0
	e.svc.Content.Walk(ctx, func(content.Info) error { n++; return nil })
	if n != 0 {
		e.t.Errorf("store has %d blobs", n)
	}
}
