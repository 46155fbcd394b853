package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// An old-style docker-archive (docker save before 25): uncompressed
// ID/layer.tar files and a manifest.json naming them.
func TestLoadOldDockerArchive(t *testing.T) {
	env := newImagesTestEnv(t, nil)
	ctx := context.Background()
	layer := makeTar(t, []tarEntry{{name: "hello", body: "from an old docker save"}})
	cfg, _ := json.Marshal(ocispec.Image{Platform: hostPlatform(), RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer)}},
		Config: ocispec.ImageConfig{Cmd: []string{"cat", "/hello"}}})
	cfgName := digest.FromBytes(cfg).Encoded() + ".json"
	manifest, _ := json.Marshal([]dockerManifestEntry{{Config: cfgName, RepoTags: []string{"berth-test/old:1"}, Layers: []string{"abc/layer.tar"}}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		b    []byte
	}{{"abc/layer.tar", layer}, {cfgName, cfg}, {"manifest.json", manifest}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.b))})
		tw.Write(f.b)
	}
	tw.Close()
	names, err := env.svc.Load(ctx, &buf)
	if err != nil || len(names) != 1 || names[0] != "docker.io/berth-test/old:1" {
		t.Fatalf("Load = %v, %v", names, err)
	}
	rc, snap, err := env.svc.RuntimeConfig(ctx, "berth-test/old:1")
	if err != nil || len(rc.Cmd) != 2 {
		t.Fatalf("RuntimeConfig = %+v, %v", rc, err)
	}
	root, release := mountImage(t, env.svc, snap)
	if b, err := os.ReadFile(filepath.Join(root, "hello")); err != nil || string(b) != "from an old docker save" {
		t.Errorf("hello = %q, %v", b, err)
	}
	release()

	// Save it, load the save into another store, and the image is the same.
	var saved bytes.Buffer
	if err := env.svc.Save(ctx, &saved, []string{"berth-test/old:1"}, true); err != nil {
		t.Fatal(err)
	}
	other := openTestService(t, t.TempDir(), nil)
	if names, err := other.Load(ctx, &saved); err != nil || len(names) != 1 {
		t.Fatalf("Load of an OCI archive = %v, %v", names, err)
	}
	a, _ := env.svc.Inspect(ctx, "berth-test/old:1")
	b, _ := other.Inspect(ctx, "berth-test/old:1")
	if a.ID != b.ID || a.Digest != b.Digest || a.Snapshot != b.Snapshot {
		t.Errorf("loaded image differs: %+v vs %+v", a.Summary, b.Summary)
	}

	// A blob whose bytes do not match its name is refused, and nothing stays.
	bad := openTestService(t, t.TempDir(), nil)
	var evil bytes.Buffer
	tw = tar.NewWriter(&evil)
	tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + digest.FromString("x").Encoded(), Mode: 0o644, Size: 1})
	tw.Write([]byte("y"))
	tw.Close()
	if _, err := bad.Load(ctx, &evil); err == nil {
		t.Fatal("loaded a blob that does not match its digest")
	}
	assertStoreEmpty(t, bad)
}

func TestImportAndPullByDigestAndDockerMediaTypes(t *testing.T) {
	env := newImagesTestEnv(t, nil)
	ctx := context.Background()
	rootfs := gzipBytes(makeTar(t, []tarEntry{{name: "etc/", typ: tar.TypeDir}, {name: "etc/os-release", body: "ID=berth"}}))
	img, err := env.svc.Import(ctx, bytes.NewReader(rootfs), ImportOptions{Name: env.host + "/imported:1", Config: ocispec.ImageConfig{Cmd: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.Push(ctx, img.Name, "", nil); err != nil {
		t.Fatal(err)
	}

	// Pull it back by digest into a fresh store.
	fresh := openTestService(t, t.TempDir(), env.client)
	byDigest := mustParse(t, env.host+"/imported@"+img.Target.Digest.String())
	got, err := fresh.Pull(ctx, byDigest, PullOptions{})
	if err != nil || got.Name != env.host+"/imported@"+img.Target.Digest.String() {
		t.Fatalf("pull by digest = %+v, %v", got, err)
	}
	root, release := mountImage(t, fresh, got.Snapshot)
	if b, err := os.ReadFile(filepath.Join(root, "etc/os-release")); err != nil || string(b) != "ID=berth" {
		t.Errorf("etc/os-release = %q, %v", b, err)
	}
	release()

	// Docker schema 2 media types pull as well.
	docker := layeredImage(t)
	var m ocispec.Manifest
	json.Unmarshal(docker.manifest, &m)
	m.MediaType = MediaTypeDockerManifest
	m.Config.MediaType = MediaTypeDockerConfig
	for i := range m.Layers[:2] {
		m.Layers[i].MediaType = MediaTypeDockerLayer
	}
	docker.manifest, _ = json.Marshal(m)
	docker.desc = ocispec.Descriptor{MediaType: MediaTypeDockerManifest, Digest: digest.FromBytes(docker.manifest), Size: int64(len(docker.manifest))}
	docker.push(t, env.client, env.host+"/docker:1")
	if _, err := fresh.Pull(ctx, mustParse(t, env.host+"/docker:1"), PullOptions{}); err != nil {
		t.Fatalf("pull of a Docker schema 2 image: %v", err)
	}
}
