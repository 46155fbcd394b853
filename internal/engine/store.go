package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berth-project/berth/internal/errdefs"
)

// The engine's database, ROOT/engine.db, is opened for each transaction and
// closed after it (as internal/metadata does), so several berth processes
// share it without a daemon; bbolt's file lock serialises them.
//
// Schema (bucket → key → value):
//
//	v1/<namespace>/containers → container ID → JSON record
//	v1/<namespace>/names      → name (without "/") → container ID
//
// A name is reserved in the same transaction that records the container,
// so two concurrent creates of one name cannot both succeed.

var (
	bucketV1         = []byte("v1")
	bucketContainers = []byte("containers")
	bucketNames      = []byte("names")
)

// dbLockTimeout bounds how long a transaction waits for another process's.
const dbLockTimeout = 60 * time.Second

// record is what the engine stores of a container: its public face and
// what only the engine needs.
type record struct {
	Container
	// Snapshot is the key of the container's root file system snapshot.
	Snapshot string `json:"snapshot"`
	// ImageName is the stored image's full name (for the pin and `ps`).
	ImageName string `json:"imageName"`
	// AnonVolumes are volumes made for this container alone (`rm -v`).
	AnonVolumes []string `json:"anonVolumes,omitempty"`
	// Volumes are all the named volumes the container mounts.
	Volumes []string `json:"volumes,omitempty"`
	// NetworkNames are the networks the container joins, in order
	// (eth0, eth1, ...), with their aliases.
	NetworkNames []string            `json:"networkNames,omitempty"`
	Aliases      map[string][]string `json:"aliases,omitempty"`
	// Ports are the published ports as requested.
	Ports []portSpec `json:"ports,omitempty"`
	// SeccompProfile is the content of --security-opt seccomp=FILE, read
	// once at create (as Docker keeps it), so later edits of the file do
	// not change the container.
	SeccompProfile string `json:"seccompProfile,omitempty"`
	// StoppedByUser is set by stop/kill and cleared by start: Docker's
	// unless-stopped and `system boot` read it.
	StoppedByUser bool `json:"stoppedByUser,omitempty"`
	// CgroupParent is the cgroup the container's goes under (its
	// sandbox's); "" for Berth's /berth.
	CgroupParent string `json:"cgroupParent,omitempty"`
	// CgroupsPath is the container's linux.cgroupsPath, fixed at create
	// (see cgroup.go); "" in records of older versions, which computed it.
	CgroupsPath string `json:"cgroupsPath,omitempty"`
	// SystemdCgroup: the cgroupsPath is a systemd SLICE:PREFIX:ID and the
	// runtime runs with --systemd-cgroup.
	SystemdCgroup bool `json:"systemdCgroup,omitempty"`
	// RuntimeArgs are the runtime's configured global flags at create
	// (Options.RuntimeArgs), kept so that a changed configuration does
	// not change how a running container's runtime is called.
	RuntimeArgs []string `json:"runtimeArgs,omitempty"`
}

// portSpec is one published port.
type portSpec struct {
	HostIP        string `json:"hostIP,omitempty"`
	HostPort      uint16 `json:"hostPort"`
	ContainerPort uint16 `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

type store struct {
	path string
	ns   []byte
}

func (s *store) open(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: dbLockTimeout, ReadOnly: readOnly})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: another berth process holds it for over %s", s.path, dbLockTimeout)
		}
		return nil, fmt.Errorf("open %s: %w", s.path, err)
	}
	return db, nil
}

// update runs fn in a write transaction on the namespace's buckets.
func (s *store) update(fn func(containers, names *bolt.Bucket) error) error {
	return s.updatePair(bucketContainers, bucketNames, fn)
}

// updatePair runs fn in a write transaction on two of the namespace's
// buckets (records and their names), made if missing.
func (s *store) updatePair(records, names []byte, fn func(records, names *bolt.Bucket) error) error {
	db, err := s.open(false)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		ns, err := v1.CreateBucketIfNotExists(s.ns)
		if err != nil {
			return err
		}
		c, err := ns.CreateBucketIfNotExists(records)
		if err != nil {
			return err
		}
		n, err := ns.CreateBucketIfNotExists(names)
		if err != nil {
			return err
		}
		return fn(c, n)
	})
}

// view runs fn in a read transaction; the buckets are nil when the
// namespace has never held a container.
func (s *store) view(fn func(containers, names *bolt.Bucket) error) error {
	return s.viewPair(bucketContainers, bucketNames, fn)
}

// viewPair runs fn in a read transaction on two of the namespace's
// buckets; nil ones do not exist yet.
func (s *store) viewPair(records, names []byte, fn func(records, names *bolt.Bucket) error) error {
	if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
		return fn(nil, nil)
	}
	db, err := s.open(true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var c, n *bolt.Bucket
		if v1 := tx.Bucket(bucketV1); v1 != nil {
			if ns := v1.Bucket(s.ns); ns != nil {
				c, n = ns.Bucket(records), ns.Bucket(names)
			}
		}
		return fn(c, n)
	})
}

// add records r and reserves its name.
func (s *store) add(r *record) error {
	name := strings.TrimPrefix(r.Name, "/")
	return s.update(func(c, n *bolt.Bucket) error {
		if id := n.Get([]byte(name)); id != nil {
			return fmt.Errorf("the container name %q is already in use by container %q; remove (or rename) that container to reuse the name: %w",
				"/"+name, string(id), errdefs.ErrAlreadyExists)
		}
		if c.Get([]byte(r.ID)) != nil {
			return fmt.Errorf("container ID %s exists: %w", r.ID, errdefs.ErrAlreadyExists)
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := n.Put([]byte(name), []byte(r.ID)); err != nil {
			return err
		}
		return c.Put([]byte(r.ID), b)
	})
}

// put replaces an existing record.
func (s *store) put(r *record) error {
	return s.update(func(c, n *bolt.Bucket) error {
		if c.Get([]byte(r.ID)) == nil {
			return fmt.Errorf("container %s: %w", r.ID, errdefs.ErrNotFound)
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return c.Put([]byte(r.ID), b)
	})
}

// modify reads, changes and writes back the record id in one transaction.
func (s *store) modify(id string, fn func(r *record) error) (*record, error) {
	var out *record
	err := s.update(func(c, n *bolt.Bucket) error {
		v := c.Get([]byte(id))
		if v == nil {
			return fmt.Errorf("no such container: %s: %w", id, errdefs.ErrNotFound)
		}
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("container %s: corrupt record: %w", id, err)
		}
		if err := fn(&r); err != nil {
			return err
		}
		b, err := json.Marshal(&r)
		if err != nil {
			return err
		}
		out = &r
		return c.Put([]byte(id), b)
	})
	return out, err
}

// remove deletes the record id and frees its name.
func (s *store) remove(id string) error {
	return s.update(func(c, n *bolt.Bucket) error {
		v := c.Get([]byte(id))
		if v == nil {
			return nil
		}
		var r record
		if err := json.Unmarshal(v, &r); err == nil {
			name := []byte(strings.TrimPrefix(r.Name, "/"))
			if string(n.Get(name)) == id {
				if err := n.Delete(name); err != nil {
					return err
				}
			}
		}
		return c.Delete([]byte(id))
	})
}

// list returns every record of the namespace, oldest first.
func (s *store) list() ([]*record, error) {
	var out []*record
	err := s.view(func(c, _ *bolt.Bucket) error {
		return appendRecords(c, &out)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// appendRecords decodes every record of bucket c (nil: none) onto out.
func appendRecords(c *bolt.Bucket, out *[]*record) error {
	if c == nil {
		return nil
	}
	return c.ForEach(func(k, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("container %s: corrupt record: %w", k, err)
		}
		*out = append(*out, &r)
		return nil
	})
}

// listAll returns the records of every namespace (for what namespaces
// share: volumes, networks).
func (s *store) listAll() ([]*record, error) {
	var out []*record
	if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	db, err := s.open(true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		v1 := tx.Bucket(bucketV1)
		if v1 == nil {
			return nil
		}
		return v1.ForEachBucket(func(ns []byte) error {
			return appendRecords(v1.Bucket(ns).Bucket(bucketContainers), &out)
		})
	})
	return out, err
}

// get finds a container by full ID, name, or unique ID prefix.
func (s *store) get(ref string) (*record, error) {
	var out *record
	err := s.view(func(c, n *bolt.Bucket) error {
		v, err := lookup(c, n, strings.TrimPrefix(ref, "/"), ref, "container")
		if v == nil || err != nil {
			return err
		}
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		out = &r
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
	}
	return out, nil
}

// lookup finds a record in bucket recs by full ID, by name (in bucket
// names), or by unique ID prefix; nil when none matches (or the buckets do
// not exist yet). kind names the records in errors.
func lookup(recs, names *bolt.Bucket, name, ref, kind string) ([]byte, error) {
	if ref == "" {
		return nil, fmt.Errorf("no %s named: %w", kind, errdefs.ErrInvalidArgument)
	}
	if recs == nil {
		return nil, nil
	}
	if v := recs.Get([]byte(ref)); v != nil {
		return v, nil
	}
	if id := names.Get([]byte(name)); id != nil {
		if v := recs.Get(id); v != nil {
			return v, nil
		}
	}
	var match []byte
	cur := recs.Cursor()
	for k, v := cur.Seek([]byte(ref)); k != nil && strings.HasPrefix(string(k), ref); k, v = cur.Next() {
		if match != nil {
			return nil, fmt.Errorf("multiple %ss match %q: %w", kind, ref, errdefs.ErrInvalidArgument)
		}
		match = v
	}
	return match, nil
}

// containerDir is the persistent directory of a container.
func (e *Engine) containerDir(id string) string {
	return filepath.Join(e.opts.Root, "containers", id)
}

// runDir is the volatile directory of a container: bundle, monitor.
func (e *Engine) runDir(id string) string {
	return filepath.Join(e.opts.RunRoot, "containers", id)
}
