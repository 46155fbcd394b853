package image

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/content"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/snapshot"
)

// GCResult says what a collection removed.
type GCResult struct {
	Blobs     int
	Bytes     int64
	Snapshots int
}

// GC removes the blobs and snapshots that no image, pin or live lease
// references. Roots:
//   - every image's target and what it leads to (present children of an
//     index, a manifest's config and layers, the chain IDs of its layers);
//   - every pin (Service.Pin: the engine's hook for containers): its image
//     target, leading to the same, and its own snapshots with their parents;
//   - what live leases hold (operations in progress);
//   - every active or view snapshot that is not an abandoned extraction,
//     with its parents, so a container's root file system survives even if
//     its pin is missing.
//
// A collection runs alone: it waits for the pulls, loads and imports in
// progress in any process on the store to end, and they wait for it.
func (s *Service) GC(ctx context.Context) (GCResult, error) {
	var res GCResult
	l, err := s.lockStore(ctx, true, "garbage collection")
	if err != nil {
		return res, err
	}
	defer l.Release()
	blobs := map[digest.Digest]bool{}
	snaps := map[string]bool{}
	leaseIDs := map[string]bool{}

	leases, err := s.DB.ActiveLeases(time.Now())
	if err != nil {
		return res, err
	}
	for _, l := range leases {
		leaseIDs[l.ID] = true
		for _, b := range l.Content {
			blobs[digest.Digest(b)] = true
		}
		for _, k := range l.Snapshots {
			snaps[k] = true
		}
	}
	imgs, err := s.DB.Images()
	if err != nil {
		return res, err
	}
	for _, img := range imgs {
		if err := s.mark(ctx, img.Target, blobs, snaps); err != nil {
			return res, fmt.Errorf("gc: image %s: %w", img.Name, err)
		}
	}
	pins, err := s.DB.Pins()
	if err != nil {
		return res, err
	}
	for _, p := range pins {
		if err := s.mark(ctx, p.Target, blobs, snaps); err != nil {
			return res, fmt.Errorf("gc: image %s pinned by %s: %w", p.Image, p.Owner, err)
		}
		for _, k := range p.Snapshots {
			snaps[k] = true
		}
	}

	if s.Snapshots != nil {
		n, err := s.sweepSnapshots(ctx, snaps, leaseIDs)
		res.Snapshots = n
		if err != nil {
			return res, err
		}
	}

	if l, ok := s.Content.(interface{ CleanLocks(context.Context) error }); ok {
		if err := l.CleanLocks(ctx); err != nil {
			return res, err
		}
	}
	var doomed []content.Info
	if err := s.Content.Walk(ctx, func(i content.Info) error {
		if !blobs[i.Digest] {
			doomed = append(doomed, i)
		}
		return nil
	}); err != nil {
		return res, err
	}
	for _, i := range doomed {
		if err := s.Content.Delete(ctx, i.Digest); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return res, fmt.Errorf("gc: %w", err)
		}
		res.Blobs++
		res.Bytes += i.Size
	}
	return res, nil
}

// mark records desc and what it references. Missing children of an index
// (other platforms) are expected; a missing manifest or config is not.
func (s *Service) mark(ctx context.Context, desc ocispec.Descriptor, blobs map[digest.Digest]bool, snaps map[string]bool) error {
	blobs[desc.Digest] = true
	switch {
	case IsIndex(desc.MediaType):
		b, err := content.ReadBlob(ctx, s.Content, desc.Digest, registry.MaxManifestSize)
		if err != nil {
			return err
		}
		idx, err := DecodeIndex(desc.MediaType, b)
		if err != nil {
			return err
		}
		for _, child := range idx.Manifests {
			if _, err := s.Content.Info(ctx, child.Digest); err != nil {
				continue
			}
			if err := s.mark(ctx, child, blobs, snaps); err != nil {
				return err
			}
		}
	case IsManifest(desc.MediaType):
		b, err := content.ReadBlob(ctx, s.Content, desc.Digest, registry.MaxManifestSize)
		if err != nil {
			return err
		}
		m, err := DecodeManifest(desc.MediaType, b)
		if err != nil {
			return err
		}
		blobs[m.Config.Digest] = true
		for _, l := range m.Layers {
			blobs[l.Digest] = true
		}
		cb, err := content.ReadBlob(ctx, s.Content, m.Config.Digest, maxConfigSize)
		if err != nil {
			return err
		}
		cfg, err := DecodeConfig(cb)
		if err != nil {
			return err
		}
		for _, c := range ChainIDs(cfg.RootFS.DiffIDs) {
			snaps[c.String()] = true
		}
	}
	return nil
}

// sweepSnapshots removes unreferenced snapshots, children before parents.
func (s *Service) sweepSnapshots(ctx context.Context, keep map[string]bool, leaseIDs map[string]bool) (int, error) {
	var all []snapshot.Info
	if err := s.Snapshots.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		all = append(all, i)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("gc: walk snapshots: %w", err)
	}
	byName := map[string]snapshot.Info{}
	for _, i := range all {
		byName[i.Name] = i
	}
	for _, i := range all {
		if i.Kind == snapshot.KindCommitted || abandonedExtraction(i.Name, leaseIDs) {
			continue
		}
		// Someone's working snapshot: it and its parents stay.
		for n := i.Name; n != ""; n = byName[n].Parent {
			keep[n] = true
		}
	}
	for n := range keep {
		for p := byName[n].Parent; p != ""; p = byName[p].Parent {
			keep[p] = true
		}
	}
	removed := 0
	for {
		hasChild := map[string]bool{}
		for _, i := range byName {
			hasChild[i.Parent] = true
		}
		progress := false
		for name := range byName {
			if keep[name] || hasChild[name] {
				continue
			}
			if err := s.Snapshots.Remove(ctx, name); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				return removed, fmt.Errorf("gc: remove snapshot %s: %w", name, err)
			}
			delete(byName, name)
			removed++
			progress = true
		}
		if !progress {
			return removed, nil
		}
	}
}

// abandonedExtraction reports whether an active snapshot is a layer
// extraction whose operation no longer holds a lease.
func abandonedExtraction(name string, leaseIDs map[string]bool) bool {
	rest, ok := strings.CutPrefix(name, extractPrefix)
	if !ok {
		return false
	}
	id, _, _ := strings.Cut(rest, "/")
	return !leaseIDs[id]
}
