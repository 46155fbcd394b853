package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/content"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/lockfile"
	"github.com/berth-project/berth/internal/metadata"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/snapshot"
	"github.com/berth-project/berth/internal/snapshot/overlay"
)

// Snapshotter is what unpacking needs of a snapshotter: the common
// interface, plus where an active snapshot's upper directory is and which
// directories lie below it (internal/snapshot/overlay has both).
type Snapshotter interface {
	snapshot.Snapshotter
	UpperDir(ctx context.Context, key string) (string, error)
	ParentDirs(ctx context.Context, key string) ([]string, error)
	// LowerDirs and CommitOnto let a layer be extracted before its
	// parent is committed (see unpack).
	LowerDirs(ctx context.Context, parent string) ([]string, error)
	CommitOnto(ctx context.Context, name, key, parent string, labels map[string]string) error
}

// Service is the image store: content, metadata and snapshots together.
type Service struct {
	Content   content.Store
	DB        *metadata.DB
	Snapshots Snapshotter
	Registry  *registry.Client
	// MaxDownloads bounds parallel blob downloads (default 3).
	MaxDownloads int
	// MaxUnpacks bounds the layers extracted at once (default 2).
	MaxUnpacks int
	// LockTimeout bounds how long an operation waits for other berth
	// processes on the same store: a collection for the pulls, loads and
	// imports in progress, and they for a collection (default 10 minutes).
	LockTimeout time.Duration
	// Waiting, if set, is told when an operation starts waiting for
	// another process, so that a CLI can say why it is not moving.
	Waiting func(msg string)
	// Verify, if set, is asked about what a reference resolved to (its
	// manifest or index) before anything of the image is fetched or
	// stored; an error refuses the pull (internal/trust's signature policy).
	Verify func(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor) error

	// root is the store's directory; root/lock is the store lock.
	root string
}

const (
	maxConfigSize = 16 << 20
	leaseTTL      = 24 * time.Hour
	// extractPrefix names the active snapshots a layer is unpacked into
	// before it is committed under its chain ID.
	extractPrefix = "extract-"
)

// Summary is an image as `berth images` lists it.
type Summary struct {
	Name     string        `json:"name"`
	ID       digest.Digest `json:"id"`     // the config digest, as Docker's image ID
	Digest   digest.Digest `json:"digest"` // what the name points at (manifest or index)
	Size     int64         `json:"size"`   // compressed: manifest, config and layers
	Created  time.Time     `json:"created"`
	Platform string        `json:"platform"`
}

// Details is an image as `berth image inspect` shows it.
type Details struct {
	Summary
	Manifest      ocispec.Manifest `json:"manifest"`
	Config        ocispec.Image    `json:"config"`
	RuntimeConfig RuntimeConfig    `json:"runtimeConfig"`
	Snapshot      string           `json:"snapshot"`
}

// NameOf is the name an image pulled by ref is stored under: the tagged
// name, or name@digest when ref has no tag.
func NameOf(ref reference.Reference) string {
	if ref.Tag != "" {
		return ref.Name() + ":" + ref.Tag
	}
	return ref.Name() + "@" + ref.Digest.String()
}

// Resolve finds a stored image by reference ("busybox"), full name, or
// image ID (config digest, or a unique prefix of its hex of 4+ characters).
func (s *Service) Resolve(ctx context.Context, nameOrID string) (metadata.Image, error) {
	if ref, err := reference.Parse(nameOrID); err == nil {
		if img, err := s.DB.GetImage(NameOf(ref)); err == nil {
			return img, nil
		}
	}
	id := strings.TrimPrefix(nameOrID, "sha256:")
	if len(id) >= 4 && strings.Trim(id, "0123456789abcdef") == "" {
		imgs, err := s.DB.Images()
		if err != nil {
			return metadata.Image{}, err
		}
		var found []metadata.Image
		for _, img := range imgs {
			sum, err := s.summary(ctx, img)
			if err == nil && strings.HasPrefix(sum.ID.Encoded(), id) {
				found = append(found, img)
			}
		}
		if len(found) >= 1 {
			// Several names of one ID are one image; different IDs are ambiguous.
			first, _ := s.summary(ctx, found[0])
			for _, img := range found[1:] {
				if sum, _ := s.summary(ctx, img); sum.ID != first.ID {
					return metadata.Image{}, fmt.Errorf("image ID prefix %q is ambiguous: %w", nameOrID, errdefs.ErrInvalidArgument)
				}
			}
			return found[0], nil
		}
	}
	return metadata.Image{}, fmt.Errorf("image %q: %w", nameOrID, errdefs.ErrNotFound)
}

func (s *Service) readManifest(ctx context.Context, img metadata.Image) (ocispec.Manifest, ocispec.Image, error) {
	b, err := content.ReadBlob(ctx, s.Content, img.Manifest.Digest, registry.MaxManifestSize)
	if err != nil {
		return ocispec.Manifest{}, ocispec.Image{}, err
	}
	m, err := DecodeManifest(img.Manifest.MediaType, b)
	if err != nil {
		return m, ocispec.Image{}, err
	}
	cb, err := content.ReadBlob(ctx, s.Content, m.Config.Digest, maxConfigSize)
	if err != nil {
		return m, ocispec.Image{}, err
	}
	cfg, err := DecodeConfig(cb)
	return m, cfg, err
}

func (s *Service) summary(ctx context.Context, img metadata.Image) (Summary, error) {
	m, cfg, err := s.readManifest(ctx, img)
	if err != nil {
		return Summary{}, fmt.Errorf("image %s: %w", img.Name, err)
	}
	size := img.Manifest.Size + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	sum := Summary{Name: img.Name, ID: m.Config.Digest, Digest: img.Target.Digest, Size: size,
		Platform: FormatPlatform(ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})}
	if cfg.Created != nil {
		sum.Created = *cfg.Created
	}
	return sum, nil
}

// List returns every image.
func (s *Service) List(ctx context.Context) ([]Summary, error) {
	imgs, err := s.DB.Images()
	if err != nil {
		return nil, err
	}
	out := make([]Summary, 0, len(imgs))
	for _, img := range imgs {
		sum, err := s.summary(ctx, img)
		if err != nil {
			return nil, err
		}
		out = append(out, sum)
	}
	return out, nil
}

// Inspect returns everything known about an image.
func (s *Service) Inspect(ctx context.Context, nameOrID string) (Details, error) {
	img, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return Details{}, err
	}
	sum, err := s.summary(ctx, img)
	if err != nil {
		return Details{}, err
	}
	m, cfg, err := s.readManifest(ctx, img)
	if err != nil {
		return Details{}, err
	}
	return Details{Summary: sum, Manifest: m, Config: cfg, RuntimeConfig: RuntimeConfigOf(cfg), Snapshot: img.Snapshot}, nil
}

// RuntimeConfig returns the container defaults of a stored image and the
// snapshot (chain ID) its root file system is in.
func (s *Service) RuntimeConfig(ctx context.Context, nameOrID string) (RuntimeConfig, string, error) {
	d, err := s.Inspect(ctx, nameOrID)
	if err != nil {
		return RuntimeConfig{}, "", err
	}
	return d.RuntimeConfig, d.Snapshot, nil
}

// Tag gives the image src the name dst too.
func (s *Service) Tag(ctx context.Context, src, dst string) (string, error) {
	img, err := s.Resolve(ctx, src)
	if err != nil {
		return "", err
	}
	ref, err := reference.Parse(dst)
	if err != nil {
		return "", err
	}
	if ref.Digest != "" {
		return "", fmt.Errorf("tag %q: a new name cannot pin a digest: %w", dst, errdefs.ErrInvalidArgument)
	}
	img.Name = NameOf(ref)
	img.CreatedAt = time.Time{}
	return img.Name, s.DB.PutImage(img)
}

// Remove deletes the name of an image, then collects what no image uses.
func (s *Service) Remove(ctx context.Context, nameOrID string) (string, error) {
	if err := s.errNoSnapshots("remove"); err != nil {
		return "", err
	}
	img, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return "", err
	}
	if err := s.errPinned(img); err != nil {
		return "", err
	}
	if err := s.DB.DeleteImage(img.Name); err != nil {
		return "", err
	}
	_, err = s.GC(ctx)
	return img.Name, err
}

// errPinned refuses to remove the last name of an image a pin holds: the
// data would stay (the pin keeps it) but the image would vanish from
// `berth images` while something still runs from it, as Docker refuses
// `rmi` of an image a container uses.
func (s *Service) errPinned(img metadata.Image) error {
	imgs, err := s.DB.Images()
	if err != nil {
		return err
	}
	for _, other := range imgs {
		if other.Name != img.Name && other.Target.Digest == img.Target.Digest {
			return nil // another name keeps the image listed
		}
	}
	pins, err := s.DB.Pins()
	if err != nil {
		return err
	}
	for _, p := range pins {
		if p.Target.Digest == img.Target.Digest {
			return fmt.Errorf("image %s is used by %s (remove that first): %w", img.Name, p.Owner, errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

// Pin records that owner (the engine will say "container/ID") uses the
// image nameOrID and the snapshots keys of its own (its root file system,
// an active snapshot Prepared on the image's Snapshot): garbage collection
// keeps all of them, and rmi refuses to remove the image's last name, until
// Unpin(owner). It returns the image pinned.
//
// Collection also keeps every active or view snapshot that is not a pull's
// extraction, with its parents, pinned or not: a pin is what keeps the
// image's content (manifest, config, layers) and its name.
func (s *Service) Pin(ctx context.Context, owner, nameOrID string, snapshots ...string) (metadata.Image, error) {
	// Shared, as a pull: a collection must not run between finding the
	// image and recording the pin.
	l, err := s.lockStore(ctx, false, "pin")
	if err != nil {
		return metadata.Image{}, err
	}
	defer l.Release()
	img, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return metadata.Image{}, fmt.Errorf("pin for %s: %w", owner, err)
	}
	if err := s.DB.PutPin(metadata.Pin{Owner: owner, Image: img.Name, Target: img.Target, Snapshots: snapshots}); err != nil {
		return metadata.Image{}, fmt.Errorf("pin for %s: %w", owner, err)
	}
	return img, nil
}

// Unpin drops owner's pin; what only it kept goes at the next collection.
func (s *Service) Unpin(ctx context.Context, owner string) error {
	return s.DB.DeletePin(owner)
}

func newLeaseID(what string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return what + "-" + hex.EncodeToString(b[:])
}

const defaultLockTimeout = 10 * time.Minute

// lockStore takes the store lock of root/lock: shared by operations that
// add to the store (pull, load, import) for as long as they run, exclusive
// by a collection. Leases alone do not make a collection safe beside them:
// a collection that read the leases just before an operation created its
// own could delete a blob that operation then finds present and uses.
// Shared holders run side by side, in one process or several.
func (s *Service) lockStore(ctx context.Context, exclusive bool, what string) (*lockfile.Lock, error) {
	timeout := s.LockTimeout
	if timeout <= 0 {
		timeout = defaultLockTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	others := "a garbage collection (rmi, image prune)"
	if exclusive {
		others = "pulls, loads or imports"
	}
	path := filepath.Join(s.root, "lock")
	l, err := lockfile.Acquire(ctx, path, exclusive, func() {
		if s.Waiting != nil {
			s.Waiting(fmt.Sprintf("%s: waiting for other berth processes' %s in %s to finish", what, others, s.root))
		}
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("%s: other berth processes' %s in %s did not finish within %s: %w", what, others, s.root, timeout, err)
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return l, nil
}

// withLease runs fn holding a new lease; fn's blobs and snapshots are
// registered with add. When fn fails the lease goes and a collection
// reclaims what fn wrote (once other operations in progress end, since a
// collection runs alone).
func (s *Service) withLease(ctx context.Context, what string, fn func(leaseID string, add func(blobs []digest.Digest, snaps []string) error) error) error {
	if err := s.withStoreShared(ctx, what, fn); err != nil {
		// A fresh context: the failure may be ctx's own cancellation.
		if _, gcErr := s.GC(context.WithoutCancel(ctx)); gcErr != nil {
			err = errors.Join(err, fmt.Errorf("reclaim after failure: %w", gcErr))
		}
		return err
	}
	return nil
}

func (s *Service) withStoreShared(ctx context.Context, what string, fn func(leaseID string, add func(blobs []digest.Digest, snaps []string) error) error) error {
	l, err := s.lockStore(ctx, false, what)
	if err != nil {
		return err
	}
	defer l.Release()
	id := newLeaseID(what)
	if err := s.DB.CreateLease(id, leaseTTL); err != nil {
		return err
	}
	add := func(blobs []digest.Digest, snaps []string) error {
		bs := make([]string, len(blobs))
		for i, b := range blobs {
			bs[i] = b.String()
		}
		return s.DB.AddToLease(id, bs, snaps)
	}
	err = fn(id, add)
	if derr := s.DB.DeleteLease(id); derr != nil && err == nil {
		err = derr
	}
	return err
}

// Open opens the image store under root: root/content (blobs),
// root/metadata.db (image records, leases) and root/snapshots (overlay
// snapshots). Close it when done.
func Open(root string, rc *registry.Client) (*Service, error) {
	s, err := OpenWithoutSnapshots(root, rc)
	if err != nil {
		return nil, err
	}
	sn, err := overlay.New(filepath.Join(root, "snapshots"))
	if err != nil {
		return nil, fmt.Errorf("open snapshots: %w", err)
	}
	s.Snapshots = sn
	return s, nil
}

// OpenWithoutSnapshots opens the store for what needs no snapshots (List,
// Inspect, Tag, Push, Save), sparing them the snapshotter's start-up
// (which may clean up after a crash).
func OpenWithoutSnapshots(root string, rc *registry.Client) (*Service, error) {
	cs, err := content.New(filepath.Join(root, "content"))
	if err != nil {
		return nil, err
	}
	db, err := metadata.Open(filepath.Join(root, "metadata.db"))
	if err != nil {
		return nil, err
	}
	return &Service{Content: cs, DB: db, Registry: rc, root: root}, nil
}

// Close releases the snapshotter.
func (s *Service) Close() error {
	if s.Snapshots == nil {
		return nil
	}
	return s.Snapshots.Close()
}

// errNoSnapshots guards what needs the snapshotter.
func (s *Service) errNoSnapshots(what string) error {
	if s.Snapshots == nil {
		return fmt.Errorf("%s: the store was opened without snapshots: %w", what, errdefs.ErrFailedPrecondition)
	}
	return nil
}
