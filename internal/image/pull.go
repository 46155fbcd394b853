package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/content"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/metadata"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
)

// Status is a step of a layer's pull.
type Status string

const (
	StatusWaiting     Status = "waiting"
	StatusDownloading Status = "downloading"
	StatusExists      Status = "already exists"
	StatusDownloaded  Status = "downloaded"
	StatusUnpacked    Status = "unpacked"
	StatusFailed      Status = "failed"
)

// ProgressEvent reports a blob's progress.
type ProgressEvent struct {
	Digest         digest.Digest
	Status         Status
	Current, Total int64
}

// PullOptions tune Pull.
type PullOptions struct {
	// Platform chooses from an index; the zero value means this machine's.
	Platform ocispec.Platform
	// Progress, if set, receives events from several goroutines, one at a time.
	Progress func(ProgressEvent)
	// Registry, if set, replaces the service's client for this pull (one
	// with the caller's credentials: kubelet's pull secrets).
	Registry *registry.Client
}

// Pull fetches ref, verifies and stores its blobs, unpacks its layers and
// then, only then, records the image.
func (s *Service) Pull(ctx context.Context, ref reference.Reference, opts PullOptions) (metadata.Image, error) {
	if opts.Platform.OS == "" {
		opts.Platform, _ = ParsePlatform("")
	}
	var mu sync.Mutex
	progress := func(e ProgressEvent) {
		if opts.Progress != nil {
			mu.Lock()
			opts.Progress(e)
			mu.Unlock()
		}
	}
	var img metadata.Image
	err := s.withLease(ctx, "pull", func(leaseID string, add func([]digest.Digest, []string) error) error {
		var err error
		reg := s.Registry
		if opts.Registry != nil {
			reg = opts.Registry
		}
		img, err = s.pull(ctx, reg, leaseID, ref, opts.Platform, progress, add)
		return err
	})
	if err != nil {
		return metadata.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	return img, nil
}

func (s *Service) pull(ctx context.Context, reg *registry.Client, leaseID string, ref reference.Reference, platform ocispec.Platform,
	progress func(ProgressEvent), add func([]digest.Digest, []string) error) (metadata.Image, error) {
	repo, target, err := reg.Resolve(ctx, ref)
	if err != nil {
		return metadata.Image{}, err
	}
	if s.Verify != nil {
		if err := s.Verify(ctx, ref, target); err != nil {
			return metadata.Image{}, err
		}
	}
	manifestDesc := target
	b, err := s.fetchManifest(ctx, repo, target, add)
	if err != nil {
		return metadata.Image{}, err
	}
	if mt := mediaTypeOf(b); target.MediaType == "" || (mt != "" && mt != target.MediaType) {
		return metadata.Image{}, fmt.Errorf("manifest %s: registry says media type %q, document says %q", target.Digest, target.MediaType, mt)
	}
	if IsIndex(target.MediaType) {
		idx, err := DecodeIndex(target.MediaType, b)
		if err != nil {
			return metadata.Image{}, fmt.Errorf("%s: %w", target.Digest, err)
		}
		manifestDesc, err = SelectManifest(idx, platform)
		if err != nil {
			return metadata.Image{}, err
		}
		if b, err = s.fetchManifest(ctx, repo, manifestDesc, add); err != nil {
			return metadata.Image{}, err
		}
	}
	m, err := DecodeManifest(manifestDesc.MediaType, b)
	if err != nil {
		return metadata.Image{}, fmt.Errorf("%s: %w", manifestDesc.Digest, err)
	}
	if m.Config.Size > maxConfigSize {
		return metadata.Image{}, fmt.Errorf("config %s: %d bytes is more than %d", m.Config.Digest, m.Config.Size, maxConfigSize)
	}
	blobs := []digest.Digest{m.Config.Digest}
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest)
	}
	if err := add(blobs, nil); err != nil {
		return metadata.Image{}, err
	}
	if err := s.download(ctx, repo, m.Config, nil, nil); err != nil {
		return metadata.Image{}, err
	}
	cb, err := content.ReadBlob(ctx, s.Content, m.Config.Digest, maxConfigSize)
	if err != nil {
		return metadata.Image{}, err
	}
	cfg, err := DecodeConfig(cb)
	if err != nil {
		return metadata.Image{}, fmt.Errorf("%s: %w", m.Config.Digest, err)
	}
	if p := (ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}); !IsIndex(target.MediaType) && !matches(platform, p) {
		return metadata.Image{}, fmt.Errorf("image is for platform %s, not %s", FormatPlatform(p), FormatPlatform(platform))
	}
	if err := add(nil, chainStrings(cfg.RootFS.DiffIDs)); err != nil {
		return metadata.Image{}, err
	}
	top, err := s.fetchAndUnpack(ctx, leaseID, repo, m.Layers, cfg.RootFS.DiffIDs, progress)
	if err != nil {
		return metadata.Image{}, err
	}
	img := metadata.Image{Name: NameOf(ref), Target: target, Manifest: manifestDesc, Snapshot: top}
	if err := s.DB.PutImage(img); err != nil {
		return metadata.Image{}, err
	}
	return s.DB.GetImage(img.Name)
}

func (s *Service) fetchManifest(ctx context.Context, repo *registry.Repo, desc ocispec.Descriptor, add func([]digest.Digest, []string) error) ([]byte, error) {
	if err := add([]digest.Digest{desc.Digest}, nil); err != nil {
		return nil, err
	}
	b, err := repo.FetchManifest(ctx, desc)
	if err != nil {
		return nil, err
	}
	if err := s.storeBytes(ctx, desc, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (s *Service) storeBytes(ctx context.Context, desc ocispec.Descriptor, b []byte) error {
	return s.writeBlob(ctx, desc, bytes.NewReader(b))
}

// download stores one blob unless it is there already. started, if not
// nil, gets the writer's Follow reader once the download begins.
func (s *Service) download(ctx context.Context, repo *registry.Repo, desc ocispec.Descriptor, started func(io.ReadCloser), progress func(ProgressEvent)) error {
	if _, err := s.Content.Info(ctx, desc.Digest); err == nil {
		return nil
	}
	w, err := s.Content.Writer(ctx, desc)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return nil
	} else if err != nil {
		return err
	}
	defer w.Close()
	if started != nil {
		started(w.Follow())
	}
	var body io.ReadCloser = repo.FetchBlob(ctx, desc)
	if progress != nil {
		body = &progressReader{r: body, fn: progress, desc: desc}
	}
	defer body.Close()
	if _, err := io.Copy(w, body); err != nil {
		return err
	}
	return w.Commit(ctx)
}

// pulledLayer is a layer being downloaded: open reads it as it arrives (or
// from the store if it was there already), wait reports the download.
type pulledLayer struct {
	s       *Service
	desc    ocispec.Descriptor
	started chan struct{} // closed when follow is set or the download ended
	follow  io.ReadCloser
	done    chan struct{}
	err     error
}

func (l *pulledLayer) open(ctx context.Context) (io.ReadCloser, error) {
	select {
	case <-l.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if l.follow != nil {
		return l.follow, nil
	}
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.s.Content.Open(ctx, l.desc.Digest)
}

func (l *pulledLayer) wait(ctx context.Context) error {
	select {
	case <-l.done:
		return l.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetchAndUnpack downloads the layers in parallel (at most MaxDownloads at
// once, in layer order) while unpacking them (see unpack), each straight
// from its download as the bytes land.
func (s *Service) fetchAndUnpack(ctx context.Context, leaseID string, repo *registry.Repo, layers []ocispec.Descriptor, diffIDs []digest.Digest, progress func(ProgressEvent)) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	limit := s.MaxDownloads
	if limit <= 0 {
		limit = 3
	}
	sem := make(chan struct{}, limit)
	pls := make([]*pulledLayer, len(layers))
	var wg sync.WaitGroup
	for i, l := range layers {
		pls[i] = &pulledLayer{s: s, desc: l, started: make(chan struct{}), done: make(chan struct{})}
		progress(ProgressEvent{Digest: l.Digest, Status: StatusWaiting, Total: l.Size})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, pl := range pls {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				pl.err = ctx.Err()
				close(pl.started)
				close(pl.done)
				continue
			}
			wg.Add(1)
			go func(pl *pulledLayer) {
				defer wg.Done()
				defer func() { <-sem }()
				var once sync.Once
				markStarted := func() { once.Do(func() { close(pl.started) }) }
				fetched := false
				pl.err = s.download(ctx, repo, pl.desc, func(f io.ReadCloser) {
					fetched = true
					pl.follow = f
					progress(ProgressEvent{Digest: pl.desc.Digest, Status: StatusDownloading, Total: pl.desc.Size})
					markStarted()
				}, progress)
				if pl.err != nil {
					progress(ProgressEvent{Digest: pl.desc.Digest, Status: StatusFailed, Total: pl.desc.Size})
				} else if !fetched {
					progress(ProgressEvent{Digest: pl.desc.Digest, Status: StatusExists, Total: pl.desc.Size, Current: pl.desc.Size})
				} else {
					progress(ProgressEvent{Digest: pl.desc.Digest, Status: StatusDownloaded, Total: pl.desc.Size, Current: pl.desc.Size})
				}
				markStarted()
				close(pl.done)
			}(pl)
		}
	}()
	top, err := s.unpack(ctx, leaseID, layers, diffIDs, func(i int) layerSource { return pls[i] }, progress)
	if err != nil {
		cancel()
	}
	wg.Wait()
	for _, pl := range pls {
		if pl.follow != nil {
			pl.follow.Close()
		}
		if err == nil && pl.err != nil {
			err = pl.err // a layer whose snapshot existed already
		}
	}
	return top, err
}

type progressReader struct {
	r    io.ReadCloser
	fn   func(ProgressEvent)
	desc ocispec.Descriptor
	n    int64
	last int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n-p.last >= 256<<10 || p.n == p.desc.Size {
		p.last = p.n
		p.fn(ProgressEvent{Digest: p.desc.Digest, Status: StatusDownloading, Current: p.n, Total: p.desc.Size})
	}
	return n, err
}

func (p *progressReader) Close() error { return p.r.Close() }
