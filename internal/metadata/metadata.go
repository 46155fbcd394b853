// Package metadata keeps Berth's image records, and the leases that protect
// what an operation in progress has written from garbage collection, in a
// bbolt database.
//
// The database file is opened for each transaction and closed after it, so
// that several berth processes (a pull, an `images` listing) share one store
// without a daemon; bbolt's file lock serialises the transactions.
//
// Schema (bucket → key → value):
//
//	v1/images  → image name ("docker.io/library/busybox:latest") → JSON Image
//	v1/leases  → lease ID → JSON Lease
//	v1/pins    → owner ("container/ID") → JSON Pin
//
// Leases and pins are both roots of garbage collection. A lease is short
// and expires (what a pull in progress has written); a pin lasts until its
// owner removes it (what a container needs of its image).
package metadata

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berth-project/berth/internal/errdefs"
)

var (
	bucketV1     = []byte("v1")
	bucketImages = []byte("images")
	bucketLeases = []byte("leases")
	bucketPins   = []byte("pins")
)

// lockTimeout is how long a transaction waits for another process's.
const lockTimeout = 60 * time.Second

// Image is a named image: a name bound to the descriptor of a manifest or index.
type Image struct {
	Name   string             `json:"name"`
	Target ocispec.Descriptor `json:"target"`
	// Manifest is the platform manifest chosen from Target when Target is an
	// index (equal to Target.Digest otherwise).
	Manifest ocispec.Descriptor `json:"manifest"`
	// Snapshot is the chain ID of the image's top layer once unpacked.
	Snapshot  string            `json:"snapshot,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// Lease protects content and snapshots an operation is still creating.
type Lease struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Content and Snapshots are the blob digests and snapshot keys held.
	Content   []string `json:"content,omitempty"`
	Snapshots []string `json:"snapshots,omitempty"`
}

// Pin keeps what a long-lived user of the store needs from garbage
// collection until the user removes it: the image it was made from (the
// target and everything it leads to: manifests, config, layers, the
// snapshots of the layers) and snapshots of its own (a container's root
// file system).
type Pin struct {
	Owner string `json:"owner"`
	// Image is the name the image had when pinned, for messages.
	Image     string             `json:"image,omitempty"`
	Target    ocispec.Descriptor `json:"target"`
	Snapshots []string           `json:"snapshots,omitempty"`
	CreatedAt time.Time          `json:"createdAt"`
}

// DB is the metadata database at one path.
type DB struct {
	path string
}

// Open prepares the database at path, creating it and its buckets if needed.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("metadata database: %w", err)
	}
	db := &DB{path: path}
	err := db.update(func(tx *bolt.Tx) error { return nil })
	return db, err
}

func (db *DB) open(readOnly bool) (*bolt.DB, error) {
	b, err := bolt.Open(db.path, 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: readOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		// Transactions last milliseconds: a minute means a stuck process.
		return nil, fmt.Errorf("metadata database %s: another process has held it for over %s (is a berth process stuck?): %w", db.path, lockTimeout, err)
	} else if err != nil {
		return nil, fmt.Errorf("open metadata database %s: %w", db.path, err)
	}
	return b, nil
}

func (db *DB) update(fn func(tx *bolt.Tx) error) error {
	b, err := db.open(false)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bucketImages, bucketLeases, bucketPins} {
			if _, err := v1.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

func (db *DB) view(fn func(tx *bolt.Tx) error) error {
	b, err := db.open(true)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.View(fn)
}

func bucket(tx *bolt.Tx, name []byte) *bolt.Bucket {
	return tx.Bucket(bucketV1).Bucket(name)
}

// PutImage creates or replaces the image record of img.Name.
func (db *DB) PutImage(img Image) error {
	now := time.Now().UTC()
	return db.update(func(tx *bolt.Tx) error {
		b := bucket(tx, bucketImages)
		var old Image
		if v := b.Get([]byte(img.Name)); v != nil && json.Unmarshal(v, &old) == nil {
			img.CreatedAt = old.CreatedAt
		}
		if img.CreatedAt.IsZero() {
			img.CreatedAt = now
		}
		img.UpdatedAt = now
		v, err := json.Marshal(img)
		if err != nil {
			return err
		}
		return b.Put([]byte(img.Name), v)
	})
}

// GetImage returns the image named name, or an error wrapping errdefs.ErrNotFound.
func (db *DB) GetImage(name string) (Image, error) {
	var img Image
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketV1)
		var v []byte
		if b != nil {
			v = b.Bucket(bucketImages).Get([]byte(name))
		}
		if v == nil {
			return fmt.Errorf("image %s: %w", name, errdefs.ErrNotFound)
		}
		return json.Unmarshal(v, &img)
	})
	return img, err
}

// Images lists every image, sorted by name.
func (db *DB) Images() ([]Image, error) {
	var out []Image
	err := db.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketV1) == nil {
			return nil
		}
		return bucket(tx, bucketImages).ForEach(func(k, v []byte) error {
			var img Image
			if err := json.Unmarshal(v, &img); err != nil {
				return fmt.Errorf("image record %s: %w", k, err)
			}
			out = append(out, img)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// DeleteImage removes the image record name.
func (db *DB) DeleteImage(name string) error {
	return db.update(func(tx *bolt.Tx) error {
		b := bucket(tx, bucketImages)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("image %s: %w", name, errdefs.ErrNotFound)
		}
		return b.Delete([]byte(name))
	})
}

// CreateLease records a new lease that lasts ttl unless deleted first; a
// lease left by a crashed process stops protecting anything when it expires.
func (db *DB) CreateLease(id string, ttl time.Duration) error {
	now := time.Now().UTC()
	l := Lease{ID: id, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	return db.update(func(tx *bolt.Tx) error {
		b := bucket(tx, bucketLeases)
		if b.Get([]byte(id)) != nil {
			return fmt.Errorf("lease %s: %w", id, errdefs.ErrAlreadyExists)
		}
		v, _ := json.Marshal(l)
		return b.Put([]byte(id), v)
	})
}

// AddToLease records that lease id holds the given blobs and snapshots.
func (db *DB) AddToLease(id string, content, snapshots []string) error {
	return db.update(func(tx *bolt.Tx) error {
		b := bucket(tx, bucketLeases)
		v := b.Get([]byte(id))
		if v == nil {
			return fmt.Errorf("lease %s: %w", id, errdefs.ErrNotFound)
		}
		var l Lease
		if err := json.Unmarshal(v, &l); err != nil {
			return err
		}
		l.Content = append(l.Content, content...)
		l.Snapshots = append(l.Snapshots, snapshots...)
		v, _ = json.Marshal(l)
		return b.Put([]byte(id), v)
	})
}

// DeleteLease drops lease id; what it held is then collectable unless
// something else references it.
func (db *DB) DeleteLease(id string) error {
	return db.update(func(tx *bolt.Tx) error {
		err := bucket(tx, bucketLeases).Delete([]byte(id))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// ActiveLeases lists the leases that have not expired.
func (db *DB) ActiveLeases(now time.Time) ([]Lease, error) {
	var out []Lease
	err := db.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketV1) == nil {
			return nil
		}
		return bucket(tx, bucketLeases).ForEach(func(k, v []byte) error {
			var l Lease
			if json.Unmarshal(v, &l) == nil && now.Before(l.ExpiresAt) {
				out = append(out, l)
			}
			return nil
		})
	})
	return out, err
}

// PutPin records p, replacing any pin of p.Owner.
func (db *DB) PutPin(p Pin) error {
	if p.Owner == "" {
		return fmt.Errorf("pin without an owner: %w", errdefs.ErrInvalidArgument)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now().UTC()
	}
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return db.update(func(tx *bolt.Tx) error {
		return bucket(tx, bucketPins).Put([]byte(p.Owner), v)
	})
}

// DeletePin removes owner's pin, or fails with errdefs.ErrNotFound.
func (db *DB) DeletePin(owner string) error {
	return db.update(func(tx *bolt.Tx) error {
		b := bucket(tx, bucketPins)
		if b.Get([]byte(owner)) == nil {
			return fmt.Errorf("pin of %s: %w", owner, errdefs.ErrNotFound)
		}
		return b.Delete([]byte(owner))
	})
}

// Pins lists every pin, sorted by owner.
func (db *DB) Pins() ([]Pin, error) {
	var out []Pin
	err := db.view(func(tx *bolt.Tx) error {
		// A database written before pins existed has no bucket yet.
		b := tx.Bucket(bucketV1)
		if b == nil || b.Bucket(bucketPins) == nil {
			return nil
		}
		return b.Bucket(bucketPins).ForEach(func(k, v []byte) error {
			var p Pin
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("pin record %s: %w", k, err)
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}
