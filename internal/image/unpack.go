package image

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

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

// defaultMaxUnpacks is how many layers are extracted at once by default:
// decompression and extraction keep a core busy each, and the machines
// Berth is measured on have two.
const defaultMaxUnpacks = 2

// unpack applies layers into snapshots named by chain ID, skipping those
// already there. It returns the top chain ID.
//
// Layers are extracted side by side, each as its bytes come, at most
// MaxUnpacks at once, and committed strictly in chain order. A layer whose
// parent is committed when it starts is prepared on it; one whose parent
// is still being applied is prepared on no parent, extracted with
// archive.ApplyOptions.ParentsLater (it reads the layers below only where
// it must, once they are committed) and committed onto its parent
// (CommitOnto) once that one is. So no snapshot record ever names an
// uncommitted parent, nothing is visible under a chain ID before its
// layer is whole and verified, and an extraction that fails (or that a
// crash abandons) is an active snapshot under the lease's prefix, removed
// here (or by the collector once the lease is gone) as before.
func (s *Service) unpack(ctx context.Context, leaseID string, layers []ocispec.Descriptor, diffIDs []digest.Digest,
	source func(i int) layerSource, progress func(ProgressEvent)) (string, error) {
	if len(layers) != len(diffIDs) {
		return "", fmt.Errorf("malformed image: %d layers but %d diff_ids in the config", len(layers), len(diffIDs))
	}
	if len(layers) == 0 {
		return "", nil
	}
	chain := ChainIDs(diffIDs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
	)
	// The first failure is the one to report; the others it causes (the
	// layers cancelled because of it) are not.
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	committed := make([]chan struct{}, len(layers))
	for i := range committed {
		committed[i] = make(chan struct{})
	}
	limit := s.MaxUnpacks
	if limit <= 0 {
		limit = defaultMaxUnpacks
	}
	slots := make(chan struct{}, limit)
	var wg sync.WaitGroup
dispatch:
	for i, l := range layers {
		// Slots are taken in layer order, so the lowest layer not yet
		// committed never waits for one: the layers above it may hold
		// theirs while they wait for it, but it took its own first.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break dispatch
		}
		var below <-chan struct{}
		parent := ""
		if i > 0 {
			below, parent = committed[i-1], chain[i-1].String()
		}
		u := &layerUnpack{s: s, leaseID: leaseID, i: i, desc: l, diffID: diffIDs[i], chainID: chain[i].String(),
			parent: parent, below: below, src: source(i), slots: slots}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer u.release()
			if err := u.run(ctx); err != nil {
				fail(err)
				return
			}
			progress(ProgressEvent{Digest: l.Digest, Status: StatusUnpacked, Total: l.Size, Current: l.Size})
			close(committed[i])
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return "", firstErr
	}
	if err := ctx.Err(); err != nil {
		return "", err // cancelled before every layer was dispatched
	}
	return chain[len(chain)-1].String(), nil
}

// layerUnpack is one layer of an unpack.
type layerUnpack struct {
	s               *Service
	leaseID         string
	i               int
	desc            ocispec.Descriptor
	diffID          digest.Digest
	chainID, parent string
	below           <-chan struct{} // closed once parent is committed; nil for the first layer
	src             layerSource
	slots           chan struct{}
	once            sync.Once
}

// release gives back the layer's slot, once.
func (u *layerUnpack) release() { u.once.Do(func() { <-u.slots }) }

// waitBelow waits until the parent is committed.
func (u *layerUnpack) waitBelow(ctx context.Context) error {
	if u.below == nil {
		return nil
	}
	select {
	case <-u.below:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (u *layerUnpack) belowCommitted() bool {
	if u.below == nil {
		return true
	}
	select {
	case <-u.below:
		return true
	default:
		return false
	}
}

// run applies the layer into an active snapshot and commits it once its
// parent is.
func (u *layerUnpack) run(ctx context.Context) (retErr error) {
	s := u.s
	if _, err := s.Snapshots.Stat(ctx, u.chainID); err == nil {
		// There already (its parents too): reported in order all the same.
		u.release()
		return u.waitBelow(ctx)
	}
	key := extractPrefix + u.leaseID + "/" + u.chainID
	early := !u.belowCommitted()
	prepareOn := u.parent
	if early {
		prepareOn = ""
	}
	if _, err := s.Snapshots.Prepare(ctx, key, prepareOn, nil); err != nil {
		return fmt.Errorf("layer %d (%s): prepare snapshot: %w", u.i, u.desc.Digest, err)
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
	var opts archive.ApplyOptions
	if early {
		opts.ParentsLater = func(ctx context.Context) ([]string, error) {
			// The layer stops competing for a core while it waits. What
			// it has left to extract afterwards is the lowest layer's,
			// which the layers holding slots wait for: it goes on
			// without one rather than queue behind them.
			u.release()
			if err := u.waitBelow(ctx); err != nil {
				return nil, err
			}
			return s.Snapshots.LowerDirs(ctx, u.parent)
		}
	} else if opts.Parents, err = s.Snapshots.ParentDirs(ctx, key); err != nil {
		return err
	}
	if err := u.apply(ctx, upper, opts); err != nil {
		return err
	}
	u.release()
	if err := u.waitBelow(ctx); err != nil {
		return err
	}
	if err := s.Snapshots.CommitOnto(ctx, u.chainID, key, u.parent, nil); err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			// A concurrent unpack of the same layer won.
			s.Snapshots.Remove(context.WithoutCancel(ctx), key)
			return nil
		}
		return fmt.Errorf("layer %d (%s): commit snapshot: %w", u.i, u.desc.Digest, err)
	}
	return nil
}

// apply extracts the layer into upper and checks its diff ID.
func (u *layerUnpack) apply(ctx context.Context, upper string, opts archive.ApplyOptions) error {
	l, src := u.desc, u.src
	rc, err := src.open(ctx)
	if err != nil {
		return fmt.Errorf("layer %d (%s): %w", u.i, l.Digest, err)
	}
	defer rc.Close()
	// A download's reader waits for its bytes, not for ctx: when another
	// layer fails, closing it is what stops this one at once rather than
	// when its download ends.
	defer context.AfterFunc(ctx, func() { rc.Close() })()
	tr, err := archive.Decompress(rc)
	if err != nil {
		return fmt.Errorf("layer %d (%s): %w", u.i, l.Digest, err)
	}
	defer tr.Close()
	h := sha256.New()
	tee := io.TeeReader(tr, h)
	if _, err := archive.Apply(ctx, upper, tee, opts); err != nil {
		// A download failure shows up here as a read error; report that.
		if werr := src.wait(ctx); werr != nil {
			return werr
		}
		return fmt.Errorf("layer %d (%s): %w", u.i, l.Digest, err)
	}
	// The tar stream may end with padding past its end-of-archive marker;
	// the diff ID covers all of it.
	if _, err := io.Copy(h, tr); err != nil {
		if werr := src.wait(ctx); werr != nil {
			return werr
		}
		return fmt.Errorf("layer %d (%s): %w", u.i, l.Digest, err)
	}
	if err := src.wait(ctx); err != nil {
		return err
	}
	if got := digest.NewDigest(digest.SHA256, h); got != u.diffID {
		return fmt.Errorf("layer %d (%s): uncompressed content has digest %s, the config says %s: %w", u.i, l.Digest, got, u.diffID, errdefs.ErrFailedPrecondition)
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
