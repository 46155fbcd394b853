package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

func descOf(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// leftovers lists everything under the store except lock files and directories.
func leftovers(t *testing.T, root string) []string {
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".lock") {
			out = append(out, strings.TrimPrefix(p, root))
		}
		return nil
	})
	return out
}

func TestWriteVerifiesDigestAndSize(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello berth")
	good := descOf(data)

	cases := []struct {
		name string
		desc ocispec.Descriptor
		data []byte
		want string
	}{
		{"wrong digest", ocispec.Descriptor{Digest: digest.FromString("other"), Size: int64(len(data))}, data, "content has digest"},
		{"short", ocispec.Descriptor{Digest: good.Digest, Size: good.Size + 1}, data, "got 11 bytes, want 12"},
		{"long", ocispec.Descriptor{Digest: good.Digest, Size: good.Size - 1}, data, "more than the declared size"},
	}
	for _, c := range cases {
		w, err := s.Writer(ctx, c.desc)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		_, err = w.Write(c.data)
		if err == nil {
			err = w.Commit(ctx)
		}
		w.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
		if l := leftovers(t, root); len(l) != 0 {
			t.Errorf("%s: left behind %v", c.name, l)
		}
	}

	w, err := s.Writer(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, err := ReadBlob(ctx, s, good.Digest, 100)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadBlob = %q, %v", got, err)
	}
	if _, err := s.Writer(ctx, good); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second Writer of a stored blob: %v", err)
	}
	if err := s.Delete(ctx, good.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx, good.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Info after Delete: %v", err)
	}
}

func TestConcurrentWritersOfOneDigestWriteOnce(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("layer"), 1<<16)
	desc := descOf(data)
	var mu sync.Mutex
	writes := 0
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Writer(ctx, desc)
			if errors.Is(err, errdefs.ErrAlreadyExists) {
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			defer w.Close()
			mu.Lock()
			writes++
			mu.Unlock()
			io.Copy(w, bytes.NewReader(data))
			if err := w.Commit(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if writes != 1 {
		t.Fatalf("%d writers wrote the blob, want 1", writes)
	}
}

// TestWriterBehindAStuckProcessGivesUp: a writer of a blob another
// process (another Local on the root) is writing waits, says so, and gives
// up once that write has made no progress for StallTimeout, instead of
// hanging behind it; once the other write ends it finds the blob stored.
func TestWriterBehindAStuckProcessGivesUp(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	first, _ := New(root)
	second, _ := New(root)
	var told []string
	second.Waiting = func(msg string) { told = append(told, msg) }
	second.StallTimeout = 100 * time.Millisecond
	data := []byte("a blob")
	desc := descOf(data)
	w, err := first.Writer(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = second.Writer(ctx, desc)
	if err == nil || !strings.Contains(err.Error(), "has written nothing for 100ms") {
		t.Errorf("writer behind a stuck one: %v", err)
	}
	if len(told) != 1 || !strings.Contains(told[0], "another process is downloading it") {
		t.Errorf("told while waiting: %q", told)
	}
	w.Write(data)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := second.Writer(ctx, desc); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("writer after the other's commit: %v, want ErrAlreadyExists", err)
	}
}

func TestFollowReadsWhileWriting(t *testing.T) {
	ctx := context.Background()
	s, _ := New(t.TempDir())
	data := bytes.Repeat([]byte("0123456789"), 100000)
	desc := descOf(data)
	w, err := s.Writer(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	r := w.Follow()
	defer r.Close()
	go func() {
		for i := 0; i < len(data); i += 4096 {
			w.Write(data[i:min(i+4096, len(data))])
		}
		w.Commit(ctx)
		w.Close()
	}()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Follow read %d bytes, %v", len(got), err)
	}

	// An abandoned write ends its followers with an error.
	w2, _ := s.Writer(ctx, descOf([]byte("x")))
	r2 := w2.Follow()
	w2.Close()
	if _, err := io.ReadAll(r2); err == nil {
		t.Fatal("follower of an abandoned write saw no error")
	}
	r2.Close()

	// Closing a follower ends a Read waiting for bytes that do not come.
	w3, _ := s.Writer(ctx, descOf([]byte("never written")))
	defer w3.Close()
	r3 := w3.Follow()
	read := make(chan error)
	go func() {
		_, err := r3.Read(make([]byte, 10))
		read <- err
	}()
	time.Sleep(10 * time.Millisecond) // the Read is most likely waiting by now; if not, it finds r3 closed
	if err := r3.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-read; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read of a follower closed meanwhile: %v", err)
	}
	if err := r3.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestIngest(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, _ := New(root)
	desc, err := s.Ingest(ctx, strings.NewReader("rootfs"))
	if err != nil || desc.Digest != digest.FromString("rootfs") || desc.Size != 6 {
		t.Fatalf("Ingest = %v, %v", desc, err)
	}
	var seen []digest.Digest
	s.Walk(ctx, func(i Info) error { seen = append(seen, i.Digest); return nil })
	if len(seen) != 1 || seen[0] != desc.Digest {
		t.Fatalf("Walk saw %v", seen)
	}
	if l := leftovers(t, root); len(l) != 1 {
		t.Fatalf("store holds %v", l)
	}
}
