// Package volume keeps named volumes: directories on the host that
// containers mount and that outlive them, as Docker's "local" driver does.
//
// Layout under the store's root (the engine passes ROOT/volumes):
//
//	root/.lock              flock: held exclusively by every change
//	root/<name>/volume.json the record (name, created, labels, anonymous,
//	                        whether it has been filled from an image)
//	root/<name>/_data       the data, the directory bound into containers
//
// Invariants: a volume appears and disappears by one rename (it is made in
// and moved to a root/.tmp-* directory, which no valid name can collide
// with since names start with a letter or digit), so readers need no lock
// and never see half a volume; a crash leaves at most a .tmp-* directory,
// which the next Open removes. Names are checked before they touch a path,
// so no name can reach outside root. Filling a volume from an image
// (CopyUp) reads the image only through internal/fscopy, which resolves
// every path inside the container's rootfs.
package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/fscopy"
	"github.com/berth-project/berth/internal/lockfile"
)

const (
	// Driver is the only driver: volumes are directories under the store.
	Driver = "local"

	dataDir    = "_data"
	recordFile = "volume.json"
	lockName   = ".lock"
	tmpPrefix  = ".tmp-"

	maxNameLen = 255             // a directory name
	maxRecord  = 1 << 20         // volume.json is a few hundred bytes; a bigger one is damage
	lockWait   = 5 * time.Minute // how long a change waits for another berth process's
)

// nameRE is Docker's rule for volume names (daemon/names.RestrictedNamePattern).
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Volume is what Docker's `volume inspect` shows of a volume.
type Volume struct {
	Name       string
	Driver     string // always "local"
	Mountpoint string // the host directory to bind into containers
	CreatedAt  time.Time
	Labels     map[string]string
	Anonymous  bool
	Options    map[string]string
}

// CreateOptions says what volume to create.
type CreateOptions struct {
	// Name is the volume's name; empty makes an anonymous volume with a
	// random 64-hex-digit name.
	Name   string
	Labels map[string]string
	// Anonymous marks a named volume as anonymous too (one the engine
	// made for a VOLUME in an image), so Prune removes it by default.
	Anonymous bool
}

// record is volume.json.
type record struct {
	Name        string            `json:"name"`
	CreatedAt   time.Time         `json:"createdAt"`
	Labels      map[string]string `json:"labels,omitempty"`
	Options     map[string]string `json:"options,omitempty"`
	Anonymous   bool              `json:"anonymous,omitempty"`
	Initialized bool              `json:"initialized,omitempty"`
}

// Store keeps the volumes under one root directory. It holds no state of
// its own beyond the path, so any number of Stores and berth processes can
// share a root.
type Store struct {
	root string
}

// Open opens (creating if needed) the store at root and removes what an
// interrupted change left behind.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open volume store %s: %w", root, err)
	}
	// 0700, not Docker's 0701: an image's setuid binaries copied into a
	// volume must not be reachable by the host's users by a guessed path.
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("open volume store %s: %w", abs, err)
	}
	s := &Store{root: abs}
	l, err := s.lock(context.Background())
	if err != nil {
		return nil, err
	}
	defer l.Release()
	ents, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("open volume store %s: %w", abs, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.RemoveAll(filepath.Join(abs, e.Name())); err != nil {
				return nil, fmt.Errorf("open volume store %s: remove leftover %s: %w", abs, e.Name(), err)
			}
		}
	}
	return s, nil
}

// lock takes the store's lock for a change. It waits at most lockWait:
// another process may hold it for a whole CopyUp, but not for ever.
func (s *Store) lock(ctx context.Context) (*lockfile.Lock, error) {
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	l, err := lockfile.Acquire(ctx, filepath.Join(s.root, lockName), true, nil)
	if err != nil {
		return nil, fmt.Errorf("lock volume store %s: %w", s.root, err)
	}
	return l, nil
}

// CheckName reports whether name is a valid volume name, Docker's rule.
func CheckName(name string) error {
	if len(name) > maxNameLen || !nameRE.MatchString(name) {
		return fmt.Errorf("volume name %q: must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ and be at most %d bytes: %w", name, maxNameLen, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (s *Store) dir(name string) string { return filepath.Join(s.root, name) }

func (s *Store) volume(r record) Volume {
	return Volume{
		Name:       r.Name,
		Driver:     Driver,
		Mountpoint: filepath.Join(s.dir(r.Name), dataDir),
		CreatedAt:  r.CreatedAt,
		Labels:     r.Labels,
		Anonymous:  r.Anonymous,
		Options:    r.Options,
	}
}

func (s *Store) read(name string) (record, error) {
	p := filepath.Join(s.dir(name), recordFile)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return record{}, fmt.Errorf("volume %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return record{}, fmt.Errorf("read volume %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecord+1))
	if err != nil {
		return record{}, fmt.Errorf("read %s: %w", p, err)
	}
	if len(b) > maxRecord {
		return record{}, fmt.Errorf("read %s: larger than %d bytes", p, maxRecord)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("read %s: %w", p, err)
	}
	if r.Name != name {
		return record{}, fmt.Errorf("read %s: it names volume %q", p, r.Name)
	}
	return r, nil
}

// write replaces dir's volume.json in one rename.
func writeRecord(dir string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write volume record: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, recordFile))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write volume record in %s: %w", dir, err)
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Create makes a volume. As in Docker, creating a name that exists
// returns the existing volume without error.
func (s *Store) Create(ctx context.Context, o CreateOptions) (Volume, error) {
	r := record{Name: o.Name, Labels: o.Labels, Anonymous: o.Anonymous, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	if r.Name == "" {
		n, err := randomHex(32)
		if err != nil {
			return Volume{}, fmt.Errorf("create anonymous volume: %w", err)
		}
		r.Name, r.Anonymous = n, true
	}
	if err := CheckName(r.Name); err != nil {
		return Volume{}, fmt.Errorf("create volume: %w", err)
	}
	l, err := s.lock(ctx)
	if err != nil {
		return Volume{}, err
	}
	defer l.Release()
	if old, err := s.read(r.Name); err == nil {
		return s.volume(old), nil
	} else if !errdefs.IsNotFound(err) {
		return Volume{}, fmt.Errorf("create volume: %w", err)
	}
	tmp, err := s.tempDir()
	if err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", r.Name, err)
	}
	err = os.Mkdir(filepath.Join(tmp, dataDir), 0o755)
	if err == nil {
		err = writeRecord(tmp, r)
	}
	if err == nil {
		err = os.Rename(tmp, s.dir(r.Name))
	}
	if err != nil {
		os.RemoveAll(tmp)
		return Volume{}, fmt.Errorf("create volume %s: %w", r.Name, err)
	}
	return s.volume(r), nil
}

func (s *Store) tempDir() (string, error) {
	suffix, err := randomHex(8)
	if err != nil {
		return "", err
	}
	p := filepath.Join(s.root, tmpPrefix+suffix)
	return p, os.Mkdir(p, 0o700)
}

// Get returns the volume called name; errdefs.ErrNotFound if there is none.
func (s *Store) Get(ctx context.Context, name string) (Volume, error) {
	if err := CheckName(name); err != nil {
		return Volume{}, err
	}
	r, err := s.read(name)
	if err != nil {
		return Volume{}, err
	}
	return s.volume(r), nil
}

// List returns every volume, by name.
func (s *Store) List(ctx context.Context) ([]Volume, error) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("list volumes in %s: %w", s.root, err)
	}
	var vols []Volume
	for _, e := range ents {
		if !e.IsDir() || CheckName(e.Name()) != nil {
			continue
		}
		r, err := s.read(e.Name())
		if errdefs.IsNotFound(err) {
			continue // removed since the directory was read
		}
		if err != nil {
			return nil, fmt.Errorf("list volumes: %w", err)
		}
		vols = append(vols, s.volume(r))
	}
	sort.Slice(vols, func(i, j int) bool { return vols[i].Name < vols[j].Name })
	return vols, nil
}

// Remove deletes the volume and its data. The engine checks first that
// no container uses it.
func (s *Store) Remove(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("remove volume: %w", err)
	}
	l, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer l.Release()
	return s.remove(name)
}

// remove deletes a volume; the caller holds the lock.
func (s *Store) remove(name string) error {
	if _, err := s.read(name); err != nil {
		return fmt.Errorf("remove volume: %w", err)
	}
	suffix, err := randomHex(8)
	if err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	// Out of sight first, in one rename, then deleted: a crash halfway
	// leaves a .tmp-* that Open removes, never half a volume.
	gone := filepath.Join(s.root, tmpPrefix+suffix)
	if err := os.Rename(s.dir(name), gone); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	// os.RemoveAll never follows symlinks, whatever a container put there.
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove volume %s: delete its data: %w", name, err)
	}
	return nil
}

// Prune removes the volumes no container uses (inUse reports those that
// are used): the anonymous ones only, unless all is set, as Docker 23+
// does. It returns the names removed and the bytes their data held.
func (s *Store) Prune(ctx context.Context, inUse func(name string) bool, all bool) (removed []string, reclaimed int64, err error) {
	l, err := s.lock(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer l.Release()
	vols, err := s.List(ctx)
	if err != nil {
		return nil, 0, err
	}
	for _, v := range vols {
		if err := ctx.Err(); err != nil {
			return removed, reclaimed, err
		}
		if (!all && !v.Anonymous) || (inUse != nil && inUse(v.Name)) {
			continue
		}
		size, err := dirSize(ctx, v.Mountpoint)
		if err != nil {
			return removed, reclaimed, fmt.Errorf("prune volume %s: %w", v.Name, err)
		}
		if err := s.remove(v.Name); err != nil {
			return removed, reclaimed, err
		}
		removed = append(removed, v.Name)
		reclaimed += size
	}
	return removed, reclaimed, nil
}

// Usage returns the bytes the volume's data holds (apparent sizes, each
// hard-linked file once), for `system df`.
func (s *Store) Usage(ctx context.Context, name string) (int64, error) {
	v, err := s.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	size, err := dirSize(ctx, v.Mountpoint)
	if err != nil {
		return 0, fmt.Errorf("usage of volume %s: %w", name, err)
	}
	return size, nil
}

// dirSize adds up what dir holds, without following symlinks.
func dirSize(ctx context.Context, dir string) (int64, error) {
	var size int64
	seen := make(map[[2]uint64]bool)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walking
		}
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), uint64(st.Ino)}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		size += fi.Size()
		return nil
	})
	return size, err
}

// CopyUp fills a volume from the image on its first use, as Docker does:
// if the volume has never been filled and is empty, the directory at path
// inside rootfs (the container's mounted root filesystem) is copied into
// it with owners, modes, times, symlinks and xattrs, and its own owner and
// mode given to the volume's root. The volume is then marked filled, also
// when path does not exist, so later containers never copy again. A path
// that is not a directory is errdefs.ErrInvalidArgument. A copy that fails
// leaves the volume empty and unfilled. The copy holds the store's lock.
func (s *Store) CopyUp(ctx context.Context, name, rootfs, path string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("fill volume: %w", err)
	}
	l, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer l.Release()
	r, err := s.read(name)
	if err != nil {
		return fmt.Errorf("fill volume: %w", err)
	}
	if r.Initialized {
		return nil
	}
	data := filepath.Join(s.dir(name), dataDir)
	empty, err := isEmpty(data)
	if err != nil {
		return fmt.Errorf("fill volume %s: %w", name, err)
	}
	if empty {
		err := fscopy.CopyDirInto(ctx, rootfs, path, data)
		if err != nil && !errdefs.IsNotFound(err) {
			if cerr := emptyDir(data); cerr != nil {
				return fmt.Errorf("fill volume %s from %s: %w (and emptying it again: %v)", name, path, err, cerr)
			}
			return fmt.Errorf("fill volume %s from %s: %w", name, path, err)
		}
	}
	r.Initialized = true
	if err := writeRecord(s.dir(name), r); err != nil {
		return fmt.Errorf("fill volume %s: %w", name, err)
	}
	return nil
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}

// emptyDir removes what dir holds, never following symlinks.
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
