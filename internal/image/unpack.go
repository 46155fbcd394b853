package image

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/archive"
	"github.com/berth-project/berth/internal/errdefs"
)

// layerSource gives the bytes of one compressed layer and, once they are
// all read, whether they were the right ones (the digest check of the
// download writing them to the content store).
type layerSource interface {
	open(ctx context.Context) (io.ReadCloser, error)
	wait(ctx context.Context) error
}

// unpack applies layers in order into snapshots named by chain ID, skipping
// those already there. It returns the top chain ID.
func (s *Service) unpack(ctx context.Context, leaseID string, layers []ocispec.Descriptor, diffIDs []digest.Digest,
	source func(i int) layerSource, progress func(ProgressEvent)) (string, error) {
	if len(layers) != len(diffIDs) {
		return "", fmt.Errorf("malformed image: %d layers but %d diff_ids in the config", len(layers), len(diffIDs))
	}
	chain := ChainIDs(diffIDs)
	parent := ""
	for i, l := range layers {
		id := chain[i].String()
		if _, err := s.Snapshots.Stat(ctx, id); err == nil {
			progress(ProgressEvent{Digest: l.Digest, Status: StatusUnpacked, Total: l.Size, Current: l.Size})
			parent = id
			continue
		}
		if err := s.applyLayer(ctx, leaseID, i, l, diffIDs[i], id, parent, source(i)); err != nil {
			return "", err
		}
		progress(ProgressEvent{Digest: l.Digest, Status: StatusUnpacked, Total: l.Size, Current: l.Size})
		parent = id
	}
	return parent, nil
}

func (s *Service) applyLayer(ctx context.Context, leaseID string, i int, l ocispec.Descriptor, diffID digest.Digest,
	chainID, parent string, src layerSource) (retErr error) {
	key := extractPrefix + leaseID + "/" + chainID
	if _, err := s.Snapshots.Prepare(ctx, key, parent, nil); err != nil {
		return fmt.Errorf("layer %d (%s): prepare snapshot: %w", i, l.Digest, err)
	}
	defer func() {
		if retErr != nil {
			s.Snapshots.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	upper, err := s.Snapshots.UpperDir(ctx, key)
	if err != nil {
		return err
	}
	parents, err := s.Snapshots.ParentDirs(ctx, key)
	if err != nil {
		return err
	}
	rc, err := src.open(ctx)
	if err != nil {
		return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
	}
	defer rc.Close()
	tr, err := archive.Decompress(rc)
	if err != nil {
		return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
	}
	defer tr.Close()
	h := sha256.New()
	tee := io.TeeReader(tr, h)
	if _, err := archive.Apply(ctx, upper, tee, archive.ApplyOptions{Parents: parents}); err != nil {
		// A download failure shows up here as a read error; report that.
		if werr := src.wait(ctx); werr != nil {
			return werr
		}
		return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
	}
	// The tar stream may end with padding past its end-of-archive marker;
	// the diff ID covers all of it.
	if _, err := io.Copy(h, tr); err != nil {
		if werr := src.wait(ctx); werr != nil {
			return werr
		}
		return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
	}
	if err := src.wait(ctx); err != nil {
		return err
	}
	if got := digest.NewDigest(digest.SHA256, h); got != diffID {
		return fmt.Errorf("layer %d (%s): uncompressed content has digest %s, the config says %s: %w", i, l.Digest, got, diffID, errdefs.ErrFailedPrecondition)
	}
	if err := s.Snapshots.Commit(ctx, chainID, key, nil); err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			// A concurrent unpack of the same layer won.
			s.Snapshots.Remove(context.WithoutCancel(ctx), key)
			return nil
		}
		return fmt.Errorf("layer %d (%s): commit snapshot: %w", i, l.Digest, err)
	}
	return nil
}

// storedLayer reads a layer already in the content store.
type storedLayer struct {
	s    *Service
	desc ocispec.Descriptor
}

func (l storedLayer) open(ctx context.Context) (io.ReadCloser, error) {
	return l.s.Content.Open(ctx, l.desc.Digest)
}

func (l storedLayer) wait(context.Context) error { return nil }
