package runtime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/seccomp"
)

// filterCacheDir keeps compiled seccomp filters across runtime invocations:
// an orchestrator starts most containers with the same profile, and
// compiling Docker's takes libseccomp 15–20 ms and a megabyte of memory in
// every `create`. It is outside every state root (it is not container
// state) and on /run, so a reboot clears it. A variable for tests.
var filterCacheDir = "/run/berth-runtime/seccomp"

// filterCache is the cache directory of this runtime binary; entries are
// named by a hash of the profile and the kernel release.
type filterCache struct {
	dir string
}

// openFilterCache returns this binary's cache, or nil where there is none
// to trust: only root uses it, and only a directory tree that root owns and
// nobody else may write (the cached bytes become the container's filter).
// A new binary gets a new directory, so a filter is never reused by another
// build of the compiler; the directories of other builds are removed then.
func openFilterCache() *filterCache {
	if os.Geteuid() != 0 {
		return nil
	}
	var exe unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &exe); err != nil {
		return nil
	}
	major, minor, micro := seccomp.LibraryVersion()
	id := fmt.Sprintf("%s %s %d.%d.%d %d %d %d %d.%d", seccomp.ProgramFormat, goruntime.GOARCH, major, minor, micro,
		exe.Dev, exe.Ino, exe.Size, exe.Mtim.Sec, exe.Mtim.Nsec)
	sum := sha256.Sum256([]byte(id))
	dir := filepath.Join(filterCacheDir, hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil
	}
	err := os.Mkdir(dir, 0o700)
	if err == nil {
		pruneFilterCache(filepath.Base(dir))
	} else if !errors.Is(err, os.ErrExist) {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Lstat(d, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR ||
			st.Uid != 0 || (st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0) {
			return nil
		}
		if d == "/" {
			break
		}
	}
	return &filterCache{dir: dir}
}

// pruneFilterCache removes the directories of other runtime builds.
// Best effort: another build using one may recreate it.
func pruneFilterCache(keep string) {
	entries, err := os.ReadDir(filterCacheDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() != keep {
			os.RemoveAll(filepath.Join(filterCacheDir, e.Name()))
		}
	}
}

// key names the entry of a profile. The kernel release is part of it
// because libseccomp adapts some actions to the kernel it runs on.
func (c *filterCache) key(sc *specs.LinuxSeccomp) (string, error) {
	profile, err := json.Marshal(sc)
	if err != nil {
		return "", err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(uts.Release[:])
	h.Write(profile)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// get returns the cached program, checked against the digest stored after
// it; a damaged entry is a miss.
func (c *filterCache) get(key string) []byte {
	f, err := os.OpenFile(filepath.Join(c.dir, key), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != 0 || st.Size > 1<<20 {
		return nil
	}
	data := make([]byte, st.Size)
	if n, _ := f.ReadAt(data, 0); n != len(data) || n < sha256.Size {
		return nil
	}
	prog, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if want := sha256.Sum256(prog); !bytes.Equal(sum, want[:]) {
		return nil
	}
	return prog
}

// put stores prog under key, atomically: readers see all of it or nothing.
func (c *filterCache) put(key string, prog []byte) {
	tmp, err := os.CreateTemp(c.dir, ".new-")
	if err != nil {
		return
	}
	sum := sha256.Sum256(prog)
	_, werr := tmp.Write(append(prog[:len(prog):len(prog)], sum[:]...))
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), filepath.Join(c.dir, key)) != nil {
		os.Remove(tmp.Name())
	}
}
