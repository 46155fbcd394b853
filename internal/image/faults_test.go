package image

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// countBlobGets counts GETs of blobs by path.
func countBlobGets(mu *sync.Mutex, counts map[string]int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isBlobGet(r) {
				mu.Lock()
				counts[r.URL.Path]++
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	}
}

func isBlobGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
}

// faultyBlobs lets fault decide, per blob GET, what goes wrong.
func faultyBlobs(fault func(w http.ResponseWriter, r *http.Request) http.ResponseWriter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isBlobGet(r) {
				if w = fault(w, r); w == nil {
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// dropAfter passes n bytes of the body, then cuts the connection.
type dropAfter struct {
	http.ResponseWriter
	left int
}

func (d *dropAfter) Write(p []byte) (int, error) {
	if len(p) > d.left {
		n, _ := d.ResponseWriter.Write(p[:d.left])
		d.ResponseWriter.(http.Flusher).Flush()
		if conn, _, err := d.ResponseWriter.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
		d.left = 0
		return n, http.ErrHijacked
	}
	d.left -= len(p)
	return d.ResponseWriter.Write(p)
}

// corrupt flips one byte of the body.
type corrupt struct {
	http.ResponseWriter
	done bool
}

func (c *corrupt) Write(p []byte) (int, error) {
	if !c.done && len(p) > 100 {
		q := append([]byte{}, p...)
		q[len(q)/2] ^= 0xff
		c.done = true
		return c.ResponseWriter.Write(q)
	}
	return c.ResponseWriter.Write(p)
}

func bigLayer(t *testing.T, mb int) testImage {
	data := randomBytes(mb << 20)
	return buildImage(t, []testLayer{{tar: makeTar(t, []tarEntry{{name: "big", body: string(data)}})}}, ocispec.ImageConfig{}, hostPlatform())
}

func TestPullRetriesAndResumes(t *testing.T) {
	var fails, drops, ranges atomic.Int32
	env := newImagesTestEnv(t, faultyBlobs(func(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
		if r.Header.Get("Range") != "" {
			ranges.Add(1)
			return w
		}
		if fails.Add(1) <= 2 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return nil
		}
		if drops.Add(1) <= 3 {
			return &dropAfter{ResponseWriter: w, left: 64 << 10}
		}
		return w
	}))
	img := bigLayer(t, 2)
	img.push(t, env.client, env.host+"/big:1")
	got, err := env.svc.Pull(context.Background(), mustParse(t, env.host+"/big:1"), PullOptions{})
	if err != nil {
		t.Fatalf("pull through 503s and dropped connections: %v", err)
	}
	if ranges.Load() == 0 {
		t.Errorf("no Range request: the dropped download was not resumed")
	}
	if got.Target.Digest != img.desc.Digest {
		t.Errorf("pulled %s, want %s", got.Target.Digest, img.desc.Digest)
	}
}

func TestPullFailuresLeaveNothing(t *testing.T) {
	cases := []struct {
		name  string
		fault func(w http.ResponseWriter, r *http.Request) http.ResponseWriter
		want  string
	}{
		{"always 500", func(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
			http.Error(w, "broken", http.StatusInternalServerError)
			return nil
		}, "500 Internal Server Error"},
		{"always dropped", func(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
			return &dropAfter{ResponseWriter: w, left: 1000}
		}, "after 5 attempts"},
		{"corrupted", func(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
			return &corrupt{ResponseWriter: w}
		}, "digest"},
	}
	img := bigLayer(t, 1)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var on atomic.Bool
			env := newImagesTestEnv(t, faultyBlobs(func(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
				if on.Load() {
					return c.fault(w, r)
				}
				return w
			}))
			img.push(t, env.client, env.host+"/big:1")
			on.Store(true)
			_, err := env.svc.Pull(context.Background(), mustParse(t, env.host+"/big:1"), PullOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
			assertStoreEmpty(t, env.svc)
		})
	}
}

func TestPullRejectsBadManifests(t *testing.T) {
	env := newImagesTestEnv(t, nil)
	ctx := context.Background()
	bb := layeredImage(t)

	var m ocispec.Manifest
	json.Unmarshal(bb.manifest, &m)
	m.Layers[0].MediaType = "application/x-berth-unknown"
	odd := bb
	odd.manifest, _ = json.Marshal(m)
	odd.desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(odd.manifest), Size: int64(len(odd.manifest))}
	odd.push(t, env.client, env.host+"/odd:1")
	_, err := env.svc.Pull(ctx, mustParse(t, env.host+"/odd:1"), PullOptions{})
	if err == nil || !strings.Contains(err.Error(), `"application/x-berth-unknown"`) {
		t.Errorf("unknown layer media type: %v", err)
	}

	// An index with amd64 and arm64 entries: --platform picks, an unknown
	// platform is named with what the index has.
	bb.push(t, env.client, env.host+"/multi:amd64")
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, p := range []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		d := bb.desc
		d.Platform = &p
		idx.Manifests = append(idx.Manifests, d)
	}
	multi := testImage{blobs: map[digest.Digest][]byte{}}
	multi.manifest, _ = json.Marshal(idx)
	multi.desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(multi.manifest), Size: int64(len(multi.manifest))}
	multi.push(t, env.client, env.host+"/multi:latest")
	_, err = env.svc.Pull(ctx, mustParse(t, env.host+"/multi"), PullOptions{Platform: mustPlatform(t, "linux/riscv64")})
	if err == nil || !strings.Contains(err.Error(), "linux/riscv64") || !strings.Contains(err.Error(), "linux/arm64/v8") {
		t.Errorf("unknown platform: %v", err)
	}
	got, err := env.svc.Pull(ctx, mustParse(t, env.host+"/multi"), PullOptions{Platform: mustPlatform(t, "linux/amd64")})
	if err != nil || got.Manifest.Digest != bb.desc.Digest || got.Target.Digest != multi.desc.Digest {
		t.Fatalf("pull of an index: %+v, %v", got, err)
	}
}

// withManifest returns ti with its manifest bytes replaced by b, served
// as mediaType.
func (ti testImage) withManifest(mediaType string, b []byte) testImage {
	ti.manifest = b
	ti.desc = ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	return ti
}

// serveManifest answers requests for manifests under prefix with doc, as
// desc describes it, whatever the registry would say.
func serveManifest(prefix string, desc ocispec.Descriptor, doc []byte) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, prefix) {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", desc.MediaType)
			w.Header().Set("Docker-Content-Digest", desc.Digest.String())
			w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
			if r.Method == http.MethodGet {
				w.Write(doc)
			}
		})
	}
}

// TestPullRejectsWrongSizesAndDocuments: a blob whose size or digest is not
// what the manifest says, a blob the registry does not have, a layer whose content is not the config's
// diff_id, a malformed manifest and a manifest of an unknown media type
// each fail the pull with an error that says which, and leave nothing in
// the store.
func TestPullRejectsWrongSizesAndDocuments(t *testing.T) {
	ctx := context.Background()
	base := layeredImage(t)
	var m ocispec.Manifest
	if err := json.Unmarshal(base.manifest, &m); err != nil {
		t.Fatal(err)
	}
	edit := func(fn func(m *ocispec.Manifest)) testImage {
		var c ocispec.Manifest
		json.Unmarshal(base.manifest, &c)
		fn(&c)
		b, _ := json.Marshal(c)
		return base.withManifest(ocispec.MediaTypeImageManifest, b)
	}
	wrongDiffID := base
	cfg := base.config
	cfg.RootFS.DiffIDs = append([]digest.Digest{}, cfg.RootFS.DiffIDs...)
	cfg.RootFS.DiffIDs[1] = digest.FromString("not the layer")
	cb, _ := json.Marshal(cfg)
	wrongDiffID.blobs = map[digest.Digest][]byte{digest.FromBytes(cb): cb}
	for d, b := range base.blobs {
		wrongDiffID.blobs[d] = b
	}
	wrongDiffID = func() testImage {
		c := m
		c.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
		b, _ := json.Marshal(c)
		return wrongDiffID.withManifest(ocispec.MediaTypeImageManifest, b)
	}()

	cases := []struct {
		name string
		img  testImage
		want string
		raw  bool // served as it is, not pushed
	}{
		{"layer larger than declared", edit(func(m *ocispec.Manifest) { m.Layers[0].Size-- }),
			"content has digest", false},
		{"layer smaller than declared", edit(func(m *ocispec.Manifest) { m.Layers[0].Size += 100 }),
			fmt.Sprintf("got %d of %d bytes", m.Layers[0].Size, m.Layers[0].Size+100), false},
		{"config missing from the registry", edit(func(m *ocispec.Manifest) { m.Config.Digest = digest.FromString("other config") }),
			"download blob " + digest.FromString("other config").String(), false},
		{"layer content not the diff_id", wrongDiffID,
			"uncompressed content has digest", false},
		// go-containerregistry's registry refuses to store these two.
		{"malformed manifest", base.withManifest(ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"layers":[`)),
			"malformed manifest", true},
		{"unknown manifest media type", base.withManifest("application/vnd.docker.distribution.manifest.v1+prettyjws", []byte(`{"schemaVersion":1,"name":"bad"}`)),
			`unsupported manifest media type "application/vnd.docker.distribution.manifest.v1+prettyjws"`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newImagesTestEnv(t, serveManifest("/v2/raw/manifests/", c.img.desc, c.img.manifest))
			ref := env.host + "/raw:1"
			if !c.raw {
				ref = env.host + "/bad:1"
				c.img.push(t, env.client, ref)
			}
			_, err := env.svc.Pull(ctx, mustParse(t, ref), PullOptions{})
			t.Logf("pull: %v", err)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
			assertStoreEmpty(t, env.svc)
		})
	}
}

func TestDecodeManifestErrors(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{`{`, "malformed manifest"},
		{`{"schemaVersion":1}`, "schemaVersion 1"},
		{`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:zz","size":1}}`, `config digest "sha256:zz"`},
		{`{"schemaVersion":2,"config":{"mediaType":"text/plain","digest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","size":1}}`, `config media type "text/plain"`},
	} {
		_, err := DecodeManifest(ocispec.MediaTypeImageManifest, []byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DecodeManifest(%s) = %v, want %q", c.doc, err, c.want)
		}
	}
}

// FuzzDecodeManifest: decoding never panics, and what it accepts has
// well-formed digests everywhere.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","size":2},"layers":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, mt := range []string{ocispec.MediaTypeImageManifest, MediaTypeDockerManifest} {
			if m, err := DecodeManifest(mt, b); err == nil {
				for _, d := range append(m.Layers, m.Config) {
					if d.Digest.Validate() != nil || d.Size < 0 {
						t.Fatalf("accepted bad descriptor %+v", d)
					}
				}
			}
		}
		if idx, err := DecodeIndex(ocispec.MediaTypeImageIndex, b); err == nil {
			for _, d := range idx.Manifests {
				if d.Digest.Validate() != nil {
					t.Fatalf("accepted bad index entry %+v", d)
				}
			}
		}
	})
}

// TestPullOnFullDisk pulls onto a small tmpfs: the pull fails, no image
// is recorded and the space is given back.
func TestPullOnFullDisk(t *testing.T) {
	env := newImagesTestEnv(t, nil)
	img := bigLayer(t, 6)
	img.push(t, env.client, env.host+"/big:1")
	root := filepath.Join(t.TempDir(), "berth-tmpfs")
	os.MkdirAll(root, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "berth-test", root).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs as the store (the test runs as root): %v %s", err, out)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	svc := openTestService(t, root, env.client)
	var before unix.Statfs_t
	unix.Statfs(root, &before)
	_, err := svc.Pull(context.Background(), mustParse(t, env.host+"/big:1"), PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("pull onto a full disk: %v", err)
	}
	assertStoreEmpty(t, svc)
	var after unix.Statfs_t
	unix.Statfs(root, &after)
	if used := int64(before.Bfree-after.Bfree) * after.Bsize; used > 256<<10 {
		t.Errorf("the failed pull still holds %d bytes", used)
	}
}
