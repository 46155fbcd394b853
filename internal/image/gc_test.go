package image

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
)

// TestPinKeepsAContainersImage plays the engine: a container's root file
// system is an active snapshot on the image's, and the container pins the
// image. rmi refuses the image's last name while the pin holds; with the
// name gone anyway (a forced removal), a collection keeps the pinned
// image's content and snapshots; once the pin and the container's snapshot
// go, a collection empties the store.
func TestPinKeepsAContainersImage(t *testing.T) {
	env := newImagesTestEnv(t, nil)
	ctx := context.Background()
	layered := layeredImage(t)
	name := env.host + "/layered:latest"
	layered.push(t, env.client, name)
	img, err := env.svc.Pull(ctx, mustParse(t, name), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.Snapshots.Prepare(ctx, "container-1", img.Snapshot, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.Pin(ctx, "container/1", name, "container-1"); err != nil {
		t.Fatal(err)
	}

	if _, err := env.svc.Tag(ctx, name, "berth-test/other:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.Remove(ctx, name); err != nil {
		t.Fatalf("rmi of one of two names of a pinned image: %v", err)
	}
	_, err = env.svc.Remove(ctx, "berth-test/other:1")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "used by container/1") {
		t.Fatalf("rmi of the last name of a pinned image: %v", err)
	}

	// As if removed by force: the record goes, the pin stays.
	if err := env.svc.DB.DeleteImage("docker.io/berth-test/other:1"); err != nil {
		t.Fatal(err)
	}
	res, err := env.svc.GC(ctx)
	if err != nil || res.Blobs != 0 || res.Snapshots != 0 {
		t.Fatalf("collection with the image pinned removed %+v, %v", res, err)
	}
	if _, err := env.svc.Content.Info(ctx, layered.desc.Digest); err != nil {
		t.Errorf("pinned image's manifest: %v", err)
	}
	if _, err := env.svc.Snapshots.Stat(ctx, img.Snapshot); err != nil {
		t.Errorf("pinned image's snapshot: %v", err)
	}

	if err := env.svc.Unpin(ctx, "container/1"); err != nil {
		t.Fatal(err)
	}
	if err := env.svc.Unpin(ctx, "container/1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second unpin: %v", err)
	}
	// The container's snapshot, active, still keeps the layers under it;
	// the blobs no longer have anything keeping them.
	if res, err := env.svc.GC(ctx); err != nil || res.Blobs != 5 || res.Snapshots != 0 {
		t.Fatalf("collection after unpin: %+v, %v; want the 5 blobs (manifest, config, 3 layers) and no snapshot", res, err)
	}
	if err := env.svc.Snapshots.Remove(ctx, "container-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.GC(ctx); err != nil {
		t.Fatal(err)
	}
	assertStoreEmpty(t, env.svc)
}
