package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-project/berth/internal/seccomp"
)

// useCacheDir points the filter cache at a fresh directory for one test.
func useCacheDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the seccomp filter cache is used by root only")
	}
	dir := filepath.Join(t.TempDir(), "cache")
	old := filterCacheDir
	filterCacheDir = dir
	t.Cleanup(func() { filterCacheDir = old })
	return dir
}

func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestSeccompCacheHitMatchesCompile(t *testing.T) {
	dir := useCacheDir(t)
	profile := seccomp.DefaultProfile()
	first, err := compileSeccomp(profile)
	if err != nil {
		t.Fatal(err)
	}
	entries := cacheEntries(t, dir)
	if len(entries) != 1 {
		t.Fatalf("cache holds %v after one compile, want one entry", entries)
	}
	// The entry is what is returned next time: make that visible.
	if err := os.Truncate(entries[0], 0); err != nil {
		t.Fatal(err)
	}
	second, err := compileSeccomp(profile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatal("a damaged cache entry changed the filter: it must be recompiled")
	}
	third, err := compileSeccomp(profile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, third) {
		t.Fatal("the cached filter differs from the compiled one")
	}
	other := seccomp.DefaultProfile()
	other.Syscalls = other.Syscalls[1:]
	if _, err := compileSeccomp(other); err != nil {
		t.Fatal(err)
	}
	if got := cacheEntries(t, dir); len(got) != 2 {
		t.Fatalf("cache holds %v after two profiles, want two entries", got)
	}
}

func TestSeccompCacheCorruptEntryIsMiss(t *testing.T) {
	dir := useCacheDir(t)
	profile := seccomp.DefaultProfile()
	want, err := compileSeccomp(profile)
	if err != nil {
		t.Fatal(err)
	}
	entry := cacheEntries(t, dir)[0]
	data, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	data[len(seccomp.ProgramFormat)+8] ^= 0xff // an instruction, not the header
	if err := os.WriteFile(entry, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cache := openFilterCache()
	if cache == nil {
		t.Fatal("no cache")
	}
	if got := cache.get(filepath.Base(entry)); got != nil {
		t.Fatal("an entry that fails its digest was returned")
	}
	got, err := compileSeccomp(profile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("recompiled filter differs")
	}
}

func TestSeccompCachePrunesOtherBuilds(t *testing.T) {
	dir := useCacheDir(t)
	stale := filepath.Join(dir, "0123456789abcdef")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if openFilterCache() == nil {
		t.Fatal("no cache")
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the directory of another build is still there (%v)", err)
	}
}

func TestSeccompCacheUntrustedDirIsNotUsed(t *testing.T) {
	dir := useCacheDir(t)
	if openFilterCache() == nil {
		t.Fatal("no cache")
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if openFilterCache() != nil {
		t.Fatal("a world-writable cache directory was trusted")
	}
}
