package runtime

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// gnuBuildID reads the ID the linker wrote, and refuses what is not an
// ELF file with one.
func TestGNUBuildID(t *testing.T) {
	cc := testutil.RequiresBinary(t, "cc", "build-essential")
	dir := t.TempDir()
	src := filepath.Join(dir, "p.c")
	os.WriteFile(src, []byte("int main(void) { return 0; }\n"), 0o644)
	const want = "0123456789abcdef0011223344556677deadbeef"
	bin := filepath.Join(dir, "p")
	if out, err := exec.Command(cc, "-static", "-Wl,--build-id=0x"+want, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v: %s", err, out)
	}
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := gnuBuildID(f); err != nil || got != want {
		t.Errorf("gnuBuildID = %q, %v, want %q", got, err, want)
	}
	fd, err := unix.Open(bin, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if got, err := gnuBuildID(fdReader(fd)); err != nil || got != want {
		t.Errorf("gnuBuildID through pread = %q, %v, want %q", got, err, want)
	}

	noID := filepath.Join(dir, "noid")
	if out, err := exec.Command(cc, "-static", "-Wl,--build-id=none", "-o", noID, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v: %s", err, out)
	}
	for name, data := range map[string][]byte{
		"no build ID": mustRead(t, noID),
		"a script":    []byte("#!/bin/sh\necho hijacked\n"),
		"empty":       nil,
		"truncated":   mustRead(t, bin)[:100],
	} {
		if got, err := gnuBuildID(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: gnuBuildID = %q, want an error", name, got)
		}
	}
}

func FuzzGNUBuildID(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	if data, err := os.ReadFile("/proc/self/exe"); err == nil && len(data) > 4096 {
		f.Add(data[:4096])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := gnuBuildID(bytes.NewReader(data))
		if err == nil && id == "" {
			t.Errorf("gnuBuildID = \"\" without an error")
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
