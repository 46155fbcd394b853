package archive

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/berth-project/berth/internal/errdefs"
)

func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdOf(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

func TestDecompressDetectsFormat(t *testing.T) {
	// Bigger than the read-ahead window, so chunking is exercised.
	tarball := tarOf(t, fileEnt("big", strings.Repeat("layer data ", 300_000), 0o644), fileEnt("small", "s", 0o644))
	for _, tc := range []struct {
		name string
		blob []byte
	}{
		{"gzip", gzipOf(t, tarball)},
		{"zstd", zstdOf(t, tarball)},
		{"uncompressed", tarball},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := Decompress(bytes.NewReader(tc.blob))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tarball) {
				t.Errorf("decompressed %d bytes, differing from the %d-byte tar", len(got), len(tarball))
			}
		})
	}
}

func TestDecompressRefusesOtherCompression(t *testing.T) {
	for name, head := range map[string][]byte{
		"xz":    {0xfd, '7', 'z', 'X', 'Z', 0x00, 0, 0},
		"bzip2": []byte("BZh91AY&SY"),
	} {
		_, err := Decompress(bytes.NewReader(head))
		if !errors.Is(err, errdefs.ErrNotImplemented) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want ErrNotImplemented naming %s", name, err, name)
		}
	}
}

func TestDecompressReportsTruncation(t *testing.T) {
	tarball := tarOf(t, fileEnt("big", strings.Repeat("0123456789abcdef", 100_000), 0o644))
	for name, blob := range map[string][]byte{"gzip": gzipOf(t, tarball), "zstd": zstdOf(t, tarball)} {
		rc, err := Decompress(bytes.NewReader(blob[:len(blob)/2]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Errorf("%s: a truncated stream read without error", name)
		}
	}
}

// TestDecompressCloseEarly closes before reading everything: the
// read-ahead goroutine must stop rather than block forever (the race
// detector and goroutine leak would show in -race runs).
func TestDecompressCloseEarly(t *testing.T) {
	blob := gzipOf(t, bytes.Repeat([]byte("x"), 8<<20))
	rc, err := Decompress(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
}
