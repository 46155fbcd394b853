package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/lockfile"
	"github.com/berth-project/berth/internal/snapshot"
)

var bucketSnapshots = []byte("snapshots")

const (
	// Temporary and doomed directories live beside the numbered ones so a
	// rename moves them in or out in one step; New removes any left by a
	// crash.
	newPrefix    = "new-"
	removePrefix = "rm-"

	// maxMountData is the most mount(2) accepts as filesystem data: one
	// page, with its terminating NUL.
	maxMountData = 4096 - 1
)

// record is what the metadata db stores per snapshot, as JSON under its
// name in bucketSnapshots.
type record struct {
	ID      uint64            `json:"id"`
	Kind    snapshot.Kind     `json:"kind"`
	Parent  string            `json:"parent,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	Updated time.Time         `json:"updated"`
	// Usage is measured at Commit; a committed tree never changes.
	Usage snapshot.Usage `json:"usage"`
}

// Snapshotter is the overlayfs snapshotter. It is safe for concurrent use,
// by goroutines and by processes: every change is one bbolt write
// transaction, and the directory renames that go with it happen inside that
// transaction. The database file is opened for each transaction and closed
// after it (bbolt holds a file lock for as long as it is open), so that
// several berth processes can pull at once into one store; a process
// waits at most lockTimeout for another's transaction.
type Snapshotter struct {
	root string
	// mu keeps this process's own transactions from polling each other's
	// file locks: writers take it exclusively, readers shared.
	mu sync.RWMutex
	// users is a shared lock on root/lock held while the Snapshotter is
	// open; New cleans up after crashes only when it can lock it
	// exclusively, i.e. when no other process has the store open and
	// might be between creating a directory and recording it.
	users *lockfile.Lock
}

// lockTimeout bounds the wait for another process's transaction. A
// transaction lasts milliseconds, so reaching it means that process is stuck.
const lockTimeout = 60 * time.Second

func (s *Snapshotter) dbPath() string { return filepath.Join(s.root, "metadata.db") }

func (s *Snapshotter) openDB(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(s.dbPath(), 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: readOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("snapshot metadata %s: another process has held it for over %s (is a berth process stuck?): %w", s.dbPath(), lockTimeout, err)
	} else if err != nil {
		return nil, fmt.Errorf("open snapshot metadata %s: %w", s.dbPath(), err)
	}
	return db, nil
}

// update runs fn in a write transaction.
func (s *Snapshotter) update(fn func(tx *bolt.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	db, err := s.openDB(false)
	if err != nil {
		return err
	}
	err = db.Update(fn)
	if cerr := db.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close snapshot metadata: %w", cerr)
	}
	return err
}

// view runs fn in a read transaction.
func (s *Snapshotter) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	db, err := s.openDB(true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

var _ snapshot.Snapshotter = (*Snapshotter)(nil)

// New opens (creating if needed) the snapshotter stored under root, and
// removes directories a crash left behind: half-made, half-removed and any
// snapshot directory the metadata does not know.
func New(root string) (*Snapshotter, error) {
	if strings.ContainsAny(root, ",:") {
		// overlayfs separates mount options with ',' and lower dirs with
		// ':'; containerd's escaping is not worth the trouble for a root.
		return nil, fmt.Errorf("overlay snapshotter root %q contains ',' or ':': %w", root, errdefs.ErrInvalidArgument)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("overlay snapshotter root %q: %w", root, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("create overlay snapshotter root: %w", err)
	}
	s := &Snapshotter{root: root}
	if err := s.update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketSnapshots)
		return err
	}); err != nil {
		return nil, err
	}
	lockPath := filepath.Join(root, "lock")
	l, alone, err := lockfile.TryExclusive(lockPath)
	if err != nil {
		return nil, fmt.Errorf("overlay snapshotter: %w", err)
	}
	if alone {
		// Nobody else has the store open: what is not recorded is debris.
		if err := s.cleanup(); err != nil {
			l.Release()
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
		defer cancel()
		if err := l.Downgrade(ctx); err != nil {
			l.Release()
			return nil, fmt.Errorf("overlay snapshotter: %w", err)
		}
	} else {
		// Another process has it open; its leftovers, if any, wait for
		// the next New that finds the store to itself. A shared lock is
		// only refused while another New cleans up, which is brief.
		ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
		defer cancel()
		if l, err = lockfile.Acquire(ctx, lockPath, false, nil); err != nil {
			return nil, fmt.Errorf("overlay snapshotter: lock %s: %w", lockPath, err)
		}
	}
	s.users = l
	return s, nil
}

func (s *Snapshotter) cleanup() error {
	known := map[string]bool{}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEach(func(_, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			known[strconv.FormatUint(r.ID, 10)] = true
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read snapshot metadata: %w", err)
	}
	ents, err := os.ReadDir(filepath.Join(s.root, "snapshots"))
	if err != nil {
		return fmt.Errorf("list snapshot directories: %w", err)
	}
	for _, e := range ents {
		if known[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.root, "snapshots", e.Name())); err != nil {
			return fmt.Errorf("remove leftover snapshot directory: %w", err)
		}
	}
	return nil
}

// Close releases the store.
func (s *Snapshotter) Close() error { return s.users.Release() }

func (s *Snapshotter) dir(id uint64) string {
	return filepath.Join(s.root, "snapshots", strconv.FormatUint(id, 10))
}

func (s *Snapshotter) fsDir(id uint64) string   { return filepath.Join(s.dir(id), "fs") }
func (s *Snapshotter) workDir(id uint64) string { return filepath.Join(s.dir(id), "work") }

func get(b *bolt.Bucket, key string) (record, bool, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return record{}, false, nil
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return record{}, false, fmt.Errorf("decode metadata of snapshot %q: %w", key, err)
	}
	return r, true, nil
}

func put(b *bolt.Bucket, key string, r record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), v)
}

func mustGet(b *bolt.Bucket, key string) (record, error) {
	r, ok, err := get(b, key)
	if err != nil {
		return record{}, err
	}
	if !ok {
		return record{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	return r, nil
}

// chain returns the ids of r's ancestors, nearest first.
func chain(b *bolt.Bucket, r record) ([]uint64, error) {
	var ids []uint64
	for parent := r.Parent; parent != ""; {
		p, err := mustGet(b, parent)
		if err != nil {
			return nil, fmt.Errorf("parent chain: %w", err)
		}
		ids = append(ids, p.ID)
		parent = p.Parent
	}
	return ids, nil
}

func info(name string, r record) snapshot.Info {
	return snapshot.Info{
		Kind: r.Kind, Name: name, Parent: r.Parent, Labels: maps.Clone(r.Labels),
		Created: r.Created, Updated: r.Updated,
	}
}

// lookup reads the record of key in a transaction of its own.
func (s *Snapshotter) lookup(key string) (record, error) {
	var r record
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		r, err = mustGet(tx.Bucket(bucketSnapshots), key)
		return err
	})
	return r, err
}

// Stat returns the snapshot key.
func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	r, err := s.lookup(key)
	if err != nil {
		return snapshot.Info{}, err
	}
	return info(key, r), nil
}

// Usage returns the space key uses by itself.
func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	r, err := s.lookup(key)
	if err != nil {
		return snapshot.Usage{}, err
	}
	if r.Kind == snapshot.KindCommitted {
		return r.Usage, nil
	}
	return diskUsage(ctx, s.fsDir(r.ID))
}

// Mounts returns the mounts of the active or view snapshot key.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	var ms []snapshot.Mount
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		r, err := mustGet(b, key)
		if err != nil {
			return err
		}
		if r.Kind == snapshot.KindCommitted {
			return fmt.Errorf("mounts of committed snapshot %q (View or Prepare on it instead): %w", key, errdefs.ErrFailedPrecondition)
		}
		ids, err := chain(b, r)
		if err != nil {
			return err
		}
		ms, err = s.mounts(key, r, ids)
		return err
	})
	return ms, err
}

// UpperDir returns the directory that holds what the active snapshot key
// adds to its parents: the overlay upperdir, or, with no parent, the
// directory that is bind-mounted. archive.Apply writes a layer there.
func (s *Snapshotter) UpperDir(ctx context.Context, key string) (string, error) {
	r, err := s.lookup(key)
	if err != nil {
		return "", err
	}
	if r.Kind != snapshot.KindActive {
		return "", fmt.Errorf("upper directory of %s snapshot %q: only active snapshots have one: %w", r.Kind, key, errdefs.ErrFailedPrecondition)
	}
	return s.fsDir(r.ID), nil
}

// ParentDirs returns the directories of the parents of the active
// snapshot key, nearest first: the overlay lowerdir list, for
// archive.ApplyOptions.Parents.
func (s *Snapshotter) ParentDirs(ctx context.Context, key string) ([]string, error) {
	return s.chainDirs(key, false)
}

// LowerDirs returns the directories of the committed snapshot parent and
// its ancestors, nearest first: what ParentDirs says of an active
// snapshot prepared on parent. An extraction that started before parent
// was committed (see CommitOnto) reads the layers below from here.
func (s *Snapshotter) LowerDirs(ctx context.Context, parent string) ([]string, error) {
	return s.chainDirs(parent, true)
}

// chainDirs returns the directories of key's ancestors, nearest first,
// and with self, of key itself before them (key must be committed then).
func (s *Snapshotter) chainDirs(key string, self bool) ([]string, error) {
	var dirs []string
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		r, err := mustGet(b, key)
		if err != nil {
			return err
		}
		if self && r.Kind != snapshot.KindCommitted {
			return fmt.Errorf("lower directories of %s snapshot %q: only committed snapshots are layers: %w", r.Kind, key, errdefs.ErrFailedPrecondition)
		}
		ids, err := chain(b, r)
		if self {
			ids = append([]uint64{r.ID}, ids...)
		}
		for _, id := range ids {
			dirs = append(dirs, s.fsDir(id))
		}
		return err
	})
	return dirs, err
}

// mounts builds the mounts as containerd's overlayfs snapshotter does. The
// snapshot directories are named by short numbers so that the lowerdir list
// of a deep image stays inside the one page mount(2) accepts (about 4096 /
// len(root+"/snapshots/NNN/fs:") layers); past it, the error says so.
func (s *Snapshotter) mounts(key string, r record, parents []uint64) ([]snapshot.Mount, error) {
	switch {
	case len(parents) == 0 && r.Kind == snapshot.KindActive:
		return []snapshot.Mount{{Type: "bind", Source: s.fsDir(r.ID), Options: []string{"rw", "rbind"}}}, nil
	case len(parents) == 0:
		return []snapshot.Mount{{Type: "bind", Source: s.fsDir(r.ID), Options: []string{"ro", "rbind"}}}, nil
	case len(parents) == 1 && r.Kind == snapshot.KindView:
		return []snapshot.Mount{{Type: "bind", Source: s.fsDir(parents[0]), Options: []string{"ro", "rbind"}}}, nil
	}
	lower := make([]string, len(parents))
	for i, id := range parents {
		lower[i] = s.fsDir(id)
	}
	var opts []string
	if r.Kind == snapshot.KindActive {
		opts = []string{"index=off", "workdir=" + s.workDir(r.ID), "upperdir=" + s.fsDir(r.ID)}
	} else {
		opts = []string{"ro", "index=off"}
	}
	opts = append(opts, "lowerdir="+strings.Join(lower, ":"))
	if n := len(strings.Join(opts, ",")); n > maxMountData {
		return nil, fmt.Errorf("overlay mount of snapshot %q: %d layers need %d bytes of mount options, over the %d-byte page limit (use a shorter snapshotter root than %s): %w",
			key, len(parents), n, maxMountData, s.root, errdefs.ErrInvalidArgument)
	}
	return []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: opts}}, nil
}

// Prepare makes the active snapshot key on top of parent.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, labels map[string]string) ([]snapshot.Mount, error) {
	return s.create(ctx, snapshot.KindActive, key, parent, labels)
}

// View makes the read-only snapshot key of parent.
func (s *Snapshotter) View(ctx context.Context, key, parent string, labels map[string]string) ([]snapshot.Mount, error) {
	return s.create(ctx, snapshot.KindView, key, parent, labels)
}

// create makes the directories under a temporary name, then, in one
// transaction, records the snapshot and renames them into place. Any
// failure removes them: no directory outlives a failed create.
func (s *Snapshotter) create(ctx context.Context, kind snapshot.Kind, key, parent string, labels map[string]string) (_ []snapshot.Mount, retErr error) {
	if key == "" {
		return nil, fmt.Errorf("%s snapshot with an empty key: %w", kind, errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "snapshots"), newPrefix)
	if err != nil {
		return nil, fmt.Errorf("create snapshot %q: %w", key, err)
	}
	final := ""
	defer func() {
		if retErr != nil {
			os.RemoveAll(tmp)
			if final != "" {
				os.RemoveAll(final)
			}
		}
	}()
	// fs is the root of the snapshot's tree; 0755 as a container's / is.
	if err := os.Mkdir(filepath.Join(tmp, "fs"), 0o755); err != nil {
		return nil, fmt.Errorf("create snapshot %q: %w", key, err)
	}
	if kind == snapshot.KindActive {
		if err := os.Mkdir(filepath.Join(tmp, "work"), 0o711); err != nil {
			return nil, fmt.Errorf("create snapshot %q: %w", key, err)
		}
	}

	var ms []snapshot.Mount
	err = s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		if _, exists, err := get(b, key); err != nil {
			return err
		} else if exists {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		}
		var parents []uint64
		if parent != "" {
			p, err := mustGet(b, parent)
			if err != nil {
				return fmt.Errorf("parent of %q: %w", key, err)
			}
			if p.Kind != snapshot.KindCommitted {
				return fmt.Errorf("parent %q of %q is %s, not committed: %w", parent, key, p.Kind, errdefs.ErrInvalidArgument)
			}
			if parents, err = chain(b, p); err != nil {
				return err
			}
			parents = append([]uint64{p.ID}, parents...)
		}
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		r := record{ID: id, Kind: kind, Parent: parent, Labels: maps.Clone(labels), Created: now, Updated: now}
		if ms, err = s.mounts(key, r, parents); err != nil {
			return err
		}
		if err := put(b, key, r); err != nil {
			return err
		}
		if err := os.Rename(tmp, s.dir(id)); err != nil {
			return fmt.Errorf("create snapshot %q: %w", key, err)
		}
		final = s.dir(id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ms, nil
}

// Commit turns the active snapshot key into the committed snapshot name.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, labels map[string]string) error {
	return s.commit(ctx, name, key, nil, labels)
}

// CommitOnto is Commit for a tree made before its parent was committed:
// it turns the active snapshot key, prepared on no parent (or on parent
// itself), into the committed snapshot name on top of the committed
// snapshot parent, in one transaction.
//
// It exists because an overlay upper directory does not depend on what
// lies below it: whiteouts and opaque directories are marks, not copies.
// An image pull can therefore extract layer N+1 while layer N is still
// being applied, and give it its place in the chain only once N is
// committed, without any record ever naming an uncommitted parent (which
// chain, Remove and the collector rely on). The caller vouches that the
// tree was made for parent (archive.Apply with ApplyOptions.ParentsLater
// reads the layers below only once they are final), and key must not
// have been mounted: it had no lowers then.
func (s *Snapshotter) CommitOnto(ctx context.Context, name, key, parent string, labels map[string]string) error {
	return s.commit(ctx, name, key, &parent, labels)
}

// commit is Commit, and with onto, CommitOnto(*onto).
func (s *Snapshotter) commit(ctx context.Context, name, key string, onto *string, labels map[string]string) error {
	if name == "" {
		return fmt.Errorf("commit %q with an empty name: %w", key, errdefs.ErrInvalidArgument)
	}
	// Measured before the transaction, so that walking a big layer does
	// not hold the database lock other processes wait for; the tree no
	// longer changes once its writer commits it.
	r, err := s.lookup(key)
	if err != nil {
		return err
	}
	u, err := diskUsage(ctx, s.fsDir(r.ID))
	if err != nil {
		return fmt.Errorf("commit %q: %w", key, err)
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		r, err := mustGet(b, key)
		if err != nil {
			return err
		}
		if r.Kind != snapshot.KindActive {
			return fmt.Errorf("commit %s snapshot %q: only active snapshots can be committed: %w", r.Kind, key, errdefs.ErrFailedPrecondition)
		}
		if _, exists, err := get(b, name); err != nil {
			return err
		} else if exists {
			return fmt.Errorf("commit %q as %q: %w", key, name, errdefs.ErrAlreadyExists)
		}
		if onto != nil && *onto != r.Parent {
			if err := s.checkOnto(b, key, r, *onto); err != nil {
				return err
			}
			r.Parent = *onto
		}
		r.Kind, r.Usage, r.Updated = snapshot.KindCommitted, u, time.Now().UTC()
		if labels != nil {
			r.Labels = maps.Clone(labels)
		}
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		return put(b, name, r)
	})
}

// checkOnto checks that the active snapshot key (record r) may be
// committed onto parent: it was prepared on no parent, parent is
// committed, and an active snapshot on parent would have mounted, as
// Prepare on parent would have checked (the lowerdir page limit).
func (s *Snapshotter) checkOnto(b *bolt.Bucket, key string, r record, parent string) error {
	if r.Parent != "" {
		return fmt.Errorf("commit %q onto %q: it was prepared on %q: %w", key, parent, r.Parent, errdefs.ErrInvalidArgument)
	}
	p, err := mustGet(b, parent)
	if err != nil {
		return fmt.Errorf("commit %q onto its parent: %w", key, err)
	}
	if p.Kind != snapshot.KindCommitted {
		return fmt.Errorf("commit %q onto %q: the parent is %s, not committed: %w", key, parent, p.Kind, errdefs.ErrInvalidArgument)
	}
	ids, err := chain(b, p)
	if err != nil {
		return err
	}
	_, err = s.mounts(key, r, append([]uint64{p.ID}, ids...))
	return err
}

// Remove deletes key and its directories.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	var dir, doomed string
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		r, err := mustGet(b, key)
		if err != nil {
			return err
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var child record
			if err := json.Unmarshal(v, &child); err != nil {
				return fmt.Errorf("decode metadata of snapshot %q: %w", k, err)
			}
			if child.Parent == key {
				return fmt.Errorf("remove snapshot %q: snapshot %q is its child: %w", key, k, errdefs.ErrFailedPrecondition)
			}
		}
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		d := s.dir(r.ID)
		rm := filepath.Join(s.root, "snapshots", removePrefix+strconv.FormatUint(r.ID, 10))
		if err := os.Rename(d, rm); err != nil {
			return fmt.Errorf("remove snapshot %q: %w", key, err)
		}
		dir, doomed = d, rm
		return nil
	})
	if err != nil {
		if doomed != "" {
			// The rename happened but the transaction did not commit:
			// put the directory back so the snapshot stays whole.
			if rerr := os.Rename(doomed, dir); rerr != nil {
				return fmt.Errorf("%w (and restoring its directory: %v)", err, rerr)
			}
		}
		return err
	}
	// Gone from the metadata; a directory that resists removal now is
	// removed by the next New.
	if err := os.RemoveAll(doomed); err != nil {
		return fmt.Errorf("remove snapshot %q directory: %w", key, err)
	}
	return nil
}

// Walk calls fn for every snapshot in name order.
func (s *Snapshotter) Walk(ctx context.Context, fn func(context.Context, snapshot.Info) error) error {
	var infos []snapshot.Info
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode metadata of snapshot %q: %w", k, err)
			}
			infos = append(infos, info(string(k), r))
			return nil
		})
	})
	if err != nil {
		return err
	}
	// fn runs outside the transaction, so it may call back into s.
	for _, inf := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ctx, inf); err != nil {
			return err
		}
	}
	return nil
}

// diskUsage counts the inodes and allocated bytes under dir, each inode
// once however many hard links it has.
func diskUsage(ctx context.Context, dir string) (snapshot.Usage, error) {
	var u snapshot.Usage
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		u.Inodes++
		u.Size += st.Blocks * 512
		return nil
	})
	if err != nil {
		return snapshot.Usage{}, fmt.Errorf("measure disk usage of %s: %w", dir, err)
	}
	return u, nil
}
