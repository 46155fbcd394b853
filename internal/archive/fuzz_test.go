package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// declaredSize is the number of bytes the entries of a tar say they hold.
// Sparse entries can declare terabytes of holes in a few bytes of input,
// which Apply would faithfully write; the fuzzer skips such inputs so it
// explores parsing and path handling, not the disk's size.
func declaredSize(data []byte) int64 {
	var total int64
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err != nil {
			return total
		}
		total += hdr.Size
	}
}

// FuzzApply feeds arbitrary bytes to Apply as a layer. Whatever it does
// with them, nothing outside the target may change: the sentinel directory
// beside it must be exactly as before, and nothing new may appear beside
// the two. The same bytes applied with ParentsLater (as a pull does before
// the layer below is committed) must make the very same tree, or fail as
// well. Each input costs a sandbox on disk (~3 ms), so minimizing an
// interesting input for the default 60 s stalls the run; use
//
//	go test -run '^$' -fuzz '^FuzzApply$' -fuzztime 60s -fuzzminimizetime 1s -parallel 1 ./internal/archive/
func FuzzApply(f *testing.F) {
	f.Add(tarOf(f, dirEnt("etc/", 0o755), fileEnt("etc/motd", "hi", 0o644), fileEnt("etc/.wh.gone", "", 0o644)))
	f.Add(tarOf(f, symlinkEnt("link", "../sentinel"), fileEnt("link/evil", "x", 0o644)))
	f.Add(tarOf(f, symlinkEnt("link", "/"), linkEnt("h", "link/etc/passwd")))
	f.Add(tarOf(f, fileEnt("a", "a", 0o644), linkEnt("b", "a"), fileEnt("d/.wh..wh..opq", "", 0o644)))
	f.Add(tarOf(f, withXattrs(fileEnt("x", "x", 0o644), "user.a", "b")))
	f.Add(tarOf(f, fileEnt("sub/deeper/.wh.x", "", 0o644), fileEnt("link/.wh.y", "", 0o644))) // implied dirs from the parent
	// What the layer below decides: hard links to it, and implied
	// directories made, set by a header, removed and made again.
	f.Add(tarOf(f, fileEnt("sub/x/.wh.y", "", 0o644), linkEnt("h", "file"), linkEnt("sub/h", "link"), dirEnt("sub/", 0o700)))
	f.Add(tarOf(f, fileEnt(".wh.file", "", 0o644), linkEnt("h", "file"), linkEnt("d", "sub"), linkEnt("n", "none")))
	f.Add(tarOf(f, fileEnt("sub/a/.wh.b", "", 0o644), fileEnt("sub/.wh..wh..opq", "", 0o644), fileEnt("sub/c/.wh.d", "", 0o644),
		fileEnt("sub/.wh.a", "", 0o644), dirEnt("sub/a/", 0o711), fileEnt("sub/c", "", 0o644)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if declaredSize(data) > 1<<20 {
			t.Skip("declares more than 1 MiB of content")
		}
		requireRoot(t)
		layer, sentinel := sandbox(t)
		later := filepath.Join(filepath.Dir(layer), "later")
		if err := os.Mkdir(later, 0o755); err != nil {
			t.Fatal(err)
		}
		// The sentinel doubles as a parent layer: Apply may read it for
		// implied directories and hard links, never write it.
		before := treeState(t, sentinel)
		start := time.Now()
		_, err := Apply(context.Background(), layer, bytes.NewReader(data), ApplyOptions{Parents: []string{sentinel}})
		_, laterErr := Apply(context.Background(), later, bytes.NewReader(data), ApplyOptions{
			ParentsLater: func(context.Context) ([]string, error) { return []string{sentinel}, nil },
		})
		if after := treeState(t, sentinel); !reflect.DeepEqual(before, after) {
			t.Fatalf("layer changed the sentinel directory:\nbefore %v\nafter  %v", before, after)
		}
		assertOnly(t, filepath.Dir(layer), "later", "layer", "sentinel")
		if (err == nil) != (laterErr == nil) {
			t.Fatalf("with Parents: %v; with ParentsLater: %v", err, laterErr)
		}
		if err == nil {
			// A failed Apply leaves a partial tree to discard, which
			// may differ: directories are fixed at the end.
			if a, b := dumpTree(t, layer, start), dumpTree(t, later, start); !reflect.DeepEqual(a, b) {
				t.Fatalf("ParentsLater made another tree:\nwith Parents      %v\nwith ParentsLater %v", a, b)
			}
		}
	})
}

// FuzzDecompress feeds arbitrary bytes to Decompress; it must return an
// error or a stream, never panic or hang. Output is capped: a legitimate
// compression bomb is not a bug.
func FuzzDecompress(f *testing.F) {
	tarball := tarOf(f, fileEnt("f", "hello hello hello", 0o644))
	f.Add(tarball)
	f.Add(gzipOf(f, tarball))
	f.Add(zstdOf(f, tarball))
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, data []byte) {
		rc, err := Decompress(bytes.NewReader(data))
		if err != nil {
			return
		}
		io.Copy(io.Discard, io.LimitReader(rc, 64<<20)) //nolint:errcheck // errors are expected for garbage
		rc.Close()
	})
}
