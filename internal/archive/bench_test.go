package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// benchLayer writes a deterministic image-like layer to dir: ~60 large
// files (1-4 MiB), ~10000 small ones (0-16 KiB) in nested directories,
// symlinks and hard links, of word-salad text that compresses about as well
// as binaries and libraries do. It returns the uncompressed tar and its
// gzip and zstd forms as files, and the tar's size.
func benchLayer(b *testing.B, dir string) (tarPath, gzPath, zstPath string, size int64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([]string, 2000)
	for i := range words {
		w := make([]byte, 2+rng.IntN(9))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = string(w)
	}
	var text strings.Builder
	for text.Len() < 8<<20 {
		text.WriteString(words[rng.IntN(len(words))])
		text.WriteByte(" \n"[rng.IntN(2)])
	}
	corpus := text.String()
	content := func(n int) string {
		off := rng.IntN(len(corpus) - n)
		return corpus[off : off+n]
	}

	tarPath = filepath.Join(dir, "layer.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	add := func(h *tar.Header, body string) {
		h.ModTime = testTime
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			b.Fatal(err)
		}
	}
	for d := range 200 {
		dname := "usr/lib/pkg" + string(rune('a'+d%26)) + "/" + strings.Repeat("x", d%7) + "dir" + itoa(d) + "/"
		add(&tar.Header{Typeflag: tar.TypeDir, Name: dname, Mode: 0o755}, "")
		for i := range 50 {
			name := dname + "file" + itoa(i)
			add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, content(rng.IntN(16<<10)))
			if i%10 == 0 {
				add(&tar.Header{Typeflag: tar.TypeSymlink, Name: name + ".so", Linkname: "file" + itoa(i)}, "")
			}
			if i%25 == 0 {
				add(&tar.Header{Typeflag: tar.TypeLink, Name: name + ".hard", Linkname: name}, "")
			}
		}
		if d%3 == 0 {
			add(&tar.Header{Typeflag: tar.TypeReg, Name: dname + "big.bin", Mode: 0o755}, content(1<<20+rng.IntN(3<<20)))
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	st, _ := f.Stat()
	f.Close()

	gzPath, zstPath = tarPath+".gz", tarPath+".zst"
	compressFile(b, tarPath, gzPath, func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) })
	compressFile(b, tarPath, zstPath, func(w io.Writer) io.WriteCloser {
		zw, err := zstd.NewWriter(w)
		if err != nil {
			b.Fatal(err)
		}
		return zw
	})
	return tarPath, gzPath, zstPath, st.Size()
}

func itoa(i int) string { return strconv.Itoa(i) }

func compressFile(b *testing.B, src, dst string, wrap func(io.Writer) io.WriteCloser) {
	b.Helper()
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	zw := wrap(out)
	if _, err := io.Copy(zw, in); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkUnpack measures Decompress+Apply of a ~230 MB (uncompressed)
// layer against the decompressor alone and against gzip -dc | tar -x on the
// same file. MB/s are of the uncompressed tar. Run it with
//
//	go test -run '^$' -bench Unpack -benchtime 3x ./internal/archive/
//
// BERTH_BENCH_DIR picks the filesystem (default: the temp dir); on tmpfs
// (/dev/shm) the disk drops out and what remains is the CPU cost.
func BenchmarkUnpack(b *testing.B) {
	requireRoot(b)
	dir := b.TempDir()
	if base := os.Getenv("BERTH_BENCH_DIR"); base != "" {
		var err error
		if dir, err = os.MkdirTemp(base, "berth-bench-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	tarPath, gzPath, zstPath, size := benchLayer(b, dir)
	gzSt, _ := os.Stat(gzPath)
	zstSt, _ := os.Stat(zstPath)
	b.Logf("layer: tar %d MB, gzip %d MB, zstd %d MB", size>>20, gzSt.Size()>>20, zstSt.Size()>>20)

	target := filepath.Join(dir, "out")
	fresh := func(b *testing.B) {
		b.StopTimer()
		if err := os.RemoveAll(target); err != nil {
			b.Fatal(err)
		}
		if err := os.Mkdir(target, 0o755); err != nil {
			b.Fatal(err)
		}
		// Start each run with no dirty pages, so one run's writeback
		// does not slow the next (and the order of runs does not matter).
		unix.Sync()
		b.StartTimer()
	}
	// run reads the layer at path through decompress and hands the tar
	// stream to consume, once per iteration.
	run := func(path string, readAhead, apply bool) func(*testing.B) {
		return func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if apply {
					fresh(b)
				}
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				rc, err := decompress(f, readAhead)
				if err != nil {
					b.Fatal(err)
				}
				if apply {
					_, err = Apply(context.Background(), target, rc, ApplyOptions{})
				} else {
					_, err = io.Copy(io.Discard, rc)
				}
				if err != nil {
					b.Fatal(err)
				}
				rc.Close()
				f.Close()
			}
		}
	}
	unpack := func(path string, readAhead bool) func(*testing.B) { return run(path, readAhead, true) }
	decompressOnly := func(path string, readAhead bool) func(*testing.B) { return run(path, readAhead, false) }
	shell := func(script string) func(*testing.B) {
		return func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				fresh(b)
				out, err := exec.Command("sh", "-c", script).CombinedOutput()
				if err != nil {
					b.Fatalf("%s: %v: %s", script, err, out)
				}
			}
		}
	}
	b.Run("gzip/Decompress+Apply", unpack(gzPath, true))
	b.Run("gzip/Decompress+Apply-no-readahead", unpack(gzPath, false))
	b.Run("gzip/Decompress-only", decompressOnly(gzPath, true))
	b.Run("gzip/shell-gzip-dc", shell("gzip -dc "+gzPath+" >/dev/null"))
	b.Run("gzip/shell-gzip-dc|tar-x", shell("gzip -dc "+gzPath+" | tar -x -C "+target))
	b.Run("zstd/Decompress+Apply", unpack(zstPath, true))
	b.Run("zstd/Decompress-only", decompressOnly(zstPath, true))
	b.Run("zstd/shell-zstd-dc|tar-x", shell("zstd -dc "+zstPath+" | tar -x -C "+target))
	b.Run("tar/Apply", unpack(tarPath, true))
	b.Run("tar/shell-tar-x", shell("tar -x -C "+target+" -f "+tarPath))
}
