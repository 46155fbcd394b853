package metadata

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestImagesAndLeases(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}
	for _, n := range []string{"docker.io/library/b:latest", "docker.io/library/a:latest"} {
		if err := db.PutImage(Image{Name: n, Target: target}); err != nil {
			t.Fatal(err)
		}
	}
	imgs, err := db.Images()
	if err != nil || len(imgs) != 2 || imgs[0].Name != "docker.io/library/a:latest" || imgs[0].Target.Digest != target.Digest {
		t.Fatalf("Images = %+v, %v", imgs, err)
	}
	first := imgs[0].CreatedAt
	db.PutImage(Image{Name: imgs[0].Name, Target: target})
	again, _ := db.GetImage(imgs[0].Name)
	if !again.CreatedAt.Equal(first) {
		t.Errorf("replacing an image changed its creation time")
	}
	if err := db.DeleteImage("docker.io/library/a:latest"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetImage("docker.io/library/a:latest"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("GetImage after delete: %v", err)
	}
	if err := db.DeleteImage("docker.io/library/a:latest"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}

	if err := db.CreateLease("pull-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateLease("expired", -time.Second); err != nil {
		t.Fatal(err)
	}
	db.AddToLease("pull-1", []string{"sha256:x"}, []string{"sha256:c"})
	ls, err := db.ActiveLeases(time.Now())
	if err != nil || len(ls) != 1 || ls[0].Content[0] != "sha256:x" || ls[0].Snapshots[0] != "sha256:c" {
		t.Fatalf("ActiveLeases = %+v, %v", ls, err)
	}
	db.DeleteLease("pull-1")
	if ls, _ := db.ActiveLeases(time.Now()); len(ls) != 0 {
		t.Fatalf("lease survived deletion: %+v", ls)
	}
}
