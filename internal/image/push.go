package image

import (
	"context"
	"fmt"

	"github.com/berth-project/berth/internal/content"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
)

// Push uploads a stored image to the registry dst names (dst's tag, or the
// image's own name when dst is empty). An image pulled from an index is
// pushed as its one platform manifest.
func (s *Service) Push(ctx context.Context, nameOrID, dst string, progress func(ProgressEvent)) (reference.Reference, error) {
	img, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return reference.Reference{}, err
	}
	if dst == "" {
		dst = img.Name
	}
	ref, err := reference.Parse(dst)
	if err != nil {
		return reference.Reference{}, err
	}
	if ref.Tag == "" {
		return reference.Reference{}, fmt.Errorf("push to %q: name a tag", dst)
	}
	repo, err := s.Registry.Repository(ref)
	if err != nil {
		return reference.Reference{}, err
	}
	m, _, err := s.readManifest(ctx, img)
	if err != nil {
		return reference.Reference{}, err
	}
	for _, d := range append(m.Layers, m.Config) {
		if ok, err := repo.BlobExists(ctx, d); err == nil && ok {
			if progress != nil {
				progress(ProgressEvent{Digest: d.Digest, Status: StatusExists, Current: d.Size, Total: d.Size})
			}
			continue
		}
		r, err := s.Content.Open(ctx, d.Digest)
		if err != nil {
			return reference.Reference{}, err
		}
		err = repo.PushBlob(ctx, d, r)
		r.Close()
		if err != nil {
			return reference.Reference{}, err
		}
		if progress != nil {
			progress(ProgressEvent{Digest: d.Digest, Status: "pushed", Current: d.Size, Total: d.Size})
		}
	}
	b, err := content.ReadBlob(ctx, s.Content, img.Manifest.Digest, registry.MaxManifestSize)
	if err != nil {
		return reference.Reference{}, err
	}
	if err := repo.PushManifest(ctx, img.Manifest, b, ref.Tag); err != nil {
		return reference.Reference{}, err
	}
	return ref.WithDigest(img.Manifest.Digest), nil
}
