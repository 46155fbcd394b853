// Package snapshot defines the Snapshotter: a store of layered filesystem
// trees, in containerd's shape, on which images are unpacked and containers
// get their root filesystems.
//
// Lifecycle. A snapshot is made Active by Prepare(key, parent): a writable
// tree on top of the committed snapshot parent (or empty). An image unpack
// applies one layer into the active snapshot and then Commit(name, key)
// turns it into a Committed snapshot called name — for images, the layer's
// chain ID — which can be the parent of further snapshots but never changes
// again. View(key, parent) makes a read-only snapshot of parent. Remove
// deletes an active, view or committed snapshot, but a committed snapshot only
// once nothing names it as parent (errdefs.ErrFailedPrecondition).
//
// Keys and names share one namespace. Errors wrap the sentinels of package
// errdefs: ErrNotFound, ErrAlreadyExists, ErrInvalidArgument,
// ErrFailedPrecondition.
package snapshot

import (
	"context"
	"time"
)

// Kind is the state of a snapshot.
type Kind int

const (
	KindUnknown Kind = iota
	// KindView is a read-only snapshot made by View; it cannot be committed.
	KindView
	// KindActive is a writable snapshot made by Prepare.
	KindActive
	// KindCommitted is an immutable snapshot made by Commit.
	KindCommitted
)

func (k Kind) String() string {
	switch k {
	case KindView:
		return "view"
	case KindActive:
		return "active"
	case KindCommitted:
		return "committed"
	}
	return "unknown"
}

// Info describes a snapshot.
type Info struct {
	Kind    Kind
	Name    string
	Parent  string // empty for a snapshot with no parent
	Labels  map[string]string
	Created time.Time
	Updated time.Time
}

// Mount is one mount that, applied in order with the others a Snapshotter
// returns, makes a snapshot's tree appear at a target. Type and Source are
// mount(2)'s; Options mixes flags ("ro", "rbind") and filesystem data
// ("lowerdir=...") exactly as in a runtime-spec mount, and MountAll turns
// them into a mount(2) call.
type Mount struct {
	Type    string
	Source  string
	Options []string
}

// Usage is the disk space a snapshot uses by itself, without its parents.
// Size is in bytes of allocated blocks; hard-linked files count once.
type Usage struct {
	Inodes int64
	Size   int64
}

// Snapshotter stores snapshots. Implementations are safe for concurrent
// use.
type Snapshotter interface {
	// Stat returns the snapshot called key.
	Stat(ctx context.Context, key string) (Info, error)
	// Usage returns the space key uses. For an active snapshot it is
	// measured now; for a committed one it was measured at Commit.
	Usage(ctx context.Context, key string) (Usage, error)
	// Mounts returns the mounts for an active or view snapshot again.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Prepare makes an active snapshot key on top of the committed
	// snapshot parent ("" for none) and returns its mounts.
	Prepare(ctx context.Context, key, parent string, labels map[string]string) ([]Mount, error)
	// View makes a read-only snapshot key of the committed snapshot parent
	// and returns its mounts.
	View(ctx context.Context, key, parent string, labels map[string]string) ([]Mount, error)
	// Commit turns the active snapshot key into the committed snapshot
	// name; key no longer exists afterwards. The snapshot must not be
	// mounted anywhere when it is committed.
	Commit(ctx context.Context, name, key string, labels map[string]string) error
	// Remove deletes key. A committed snapshot that is the parent of
	// another is refused with ErrFailedPrecondition.
	Remove(ctx context.Context, key string) error
	// Walk calls fn for every snapshot, in name order, until fn fails.
	Walk(ctx context.Context, fn func(context.Context, Info) error) error
	// Close releases the store; the Snapshotter is unusable afterwards.
	Close() error
}
