package content

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// Local is a Store in a directory of the local file system.
type Local struct {
	root string

	// Waiting, if set, is told when a writer waits for another process
	// writing the same blob.
	Waiting func(msg string)
	// StallTimeout is how long a writer waits for another process's write
	// of the same blob to make progress before giving up (default 10
	// minutes).
	StallTimeout time.Duration

	// mu guards the fields below it.
	mu sync.Mutex
	// writing holds, per digest being written in this process, a channel
	// closed when that writer finishes. It keeps goroutines of one process
	// from all polling the cross-process file lock.
	writing map[digest.Digest]chan struct{}
}

// New opens (creating if needed) a local store rooted at root.
func New(root string) (*Local, error) {
	for _, d := range []string{filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "ingest")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create content store: %w", err)
		}
	}
	return &Local{root: root, writing: map[digest.Digest]chan struct{}{}}, nil
}

func (s *Local) blobPath(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %w: %w", dgst, errdefs.ErrInvalidArgument, err)
	}
	if dgst.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("digest %q: %w: only sha256 is supported", dgst, errdefs.ErrNotImplemented)
	}
	return filepath.Join(s.root, "blobs", "sha256", dgst.Encoded()), nil
}

// Info implements Store.
func (s *Local) Info(ctx context.Context, dgst digest.Digest) (Info, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
	} else if err != nil {
		return Info{}, fmt.Errorf("blob %s: %w", dgst, err)
	}
	return Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}, nil
}

type blobReader struct {
	*os.File
	size int64
}

func (b blobReader) Size() int64 { return b.size }

// Open implements Store.
func (s *Local) Open(ctx context.Context, dgst digest.Digest) (ReadCloserAt, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", dgst, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open blob %s: %w", dgst, err)
	}
	return blobReader{f, fi.Size()}, nil
}

// Delete implements Store.
func (s *Local) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.blobPath(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("delete blob %s: %w", dgst, err)
	}
	return nil
}

// Walk implements Store.
func (s *Local) Walk(ctx context.Context, fn func(Info) error) error {
	dir := filepath.Join(s.root, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("walk content store: %w", err)
	}
	for _, e := range entries {
		dgst := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if dgst.Validate() != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if err := fn(Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// Writer implements Store.
func (s *Local) Writer(ctx context.Context, desc ocispec.Descriptor) (Writer, error) {
	p, err := s.blobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("write blob %s: size %d: %w", desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	release, err := s.lock(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(p); err == nil {
		release()
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrAlreadyExists)
	}
	tmp, err := s.tempFile(desc.Digest.Encoded())
	if err != nil {
		release()
		return nil, err
	}
	w := &writer{desc: desc, target: p, f: tmp, digester: digest.SHA256.Digester(), release: release}
	w.cond = sync.NewCond(&w.mu)
	return w, nil
}

func (s *Local) tempFile(prefix string) (*os.File, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	p := filepath.Join(s.root, "ingest", prefix+"."+hex.EncodeToString(b[:])+".tmp")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create ingest file: %w", err)
	}
	return f, nil
}

// lock takes the per-digest write lock: first within this process, then
// across processes with flock on ingest/HEX.lock.
func (s *Local) lock(ctx context.Context, dgst digest.Digest) (func(), error) {
	for {
		s.mu.Lock()
		busy, ok := s.writing[dgst]
		if !ok {
			mine := make(chan struct{})
			s.writing[dgst] = mine
			s.mu.Unlock()
			stall := s.StallTimeout
			if stall <= 0 {
				stall = 10 * time.Minute
			}
			waiting := func() {
				if s.Waiting != nil {
					s.Waiting(fmt.Sprintf("blob %s: another process is downloading it; waiting", dgst))
				}
			}
			unlockFile, err := lockFile(ctx, filepath.Join(s.root, "ingest", dgst.Encoded()+".lock"),
				waiting, func() int64 { return s.ingestProgress(dgst.Encoded()) }, stall)
			if err != nil {
				s.mu.Lock()
				delete(s.writing, dgst)
				s.mu.Unlock()
				close(mine)
				return nil, fmt.Errorf("lock blob %s: %w", dgst, err)
			}
			return func() {
				unlockFile()
				s.mu.Lock()
				delete(s.writing, dgst)
				s.mu.Unlock()
				close(mine)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for writer of blob %s: %w", dgst, ctx.Err())
		}
	}
}

// Ingest implements Store.
func (s *Local) Ingest(ctx context.Context, r io.Reader) (ocispec.Descriptor, error) {
	tmp, err := s.tempFile("unknown")
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	d := digest.SHA256.Digester()
	n, err := io.Copy(io.MultiWriter(tmp, d.Hash()), r)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("ingest blob: %w", err)
	}
	desc := ocispec.Descriptor{Digest: d.Digest(), Size: n}
	if err := tmp.Sync(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("ingest blob: %w", err)
	}
	p, _ := s.blobPath(desc.Digest)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("ingest blob %s: %w", desc.Digest, err)
	}
	return desc, nil
}

type writer struct {
	desc     ocispec.Descriptor
	target   string
	f        *os.File
	digester digest.Digester
	release  func()

	// mu guards the fields below it; cond signals Follow readers.
	mu        sync.Mutex
	cond      *sync.Cond
	written   int64
	committed bool
	closed    bool
	err       error // why the write was abandoned, for Follow readers
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	n := w.written
	w.mu.Unlock()
	if n+int64(len(p)) > w.desc.Size {
		return 0, fmt.Errorf("blob %s: more than the declared size %d bytes: %w", w.desc.Digest, w.desc.Size, errdefs.ErrFailedPrecondition)
	}
	m, err := w.f.Write(p)
	w.digester.Hash().Write(p[:m])
	w.mu.Lock()
	w.written += int64(m)
	w.cond.Broadcast()
	w.mu.Unlock()
	if err != nil {
		return m, fmt.Errorf("write blob %s: %w", w.desc.Digest, err)
	}
	return m, nil
}

func (w *writer) Written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

func (w *writer) Commit(ctx context.Context) error {
	if err := w.verify(); err != nil {
		w.abandon(err)
		return err
	}
	if err := w.f.Sync(); err != nil {
		err = fmt.Errorf("sync blob %s: %w", w.desc.Digest, err)
		w.abandon(err)
		return err
	}
	if err := os.Rename(w.f.Name(), w.target); err != nil {
		err = fmt.Errorf("commit blob %s: %w", w.desc.Digest, err)
		w.abandon(err)
		return err
	}
	w.mu.Lock()
	w.committed = true
	w.cond.Broadcast()
	w.mu.Unlock()
	return nil
}

func (w *writer) verify() error {
	w.mu.Lock()
	n := w.written
	w.mu.Unlock()
	if n != w.desc.Size {
		return fmt.Errorf("blob %s: got %d bytes, want %d: %w", w.desc.Digest, n, w.desc.Size, errdefs.ErrFailedPrecondition)
	}
	if got := w.digester.Digest(); got != w.desc.Digest {
		return fmt.Errorf("blob %s: content has digest %s: %w", w.desc.Digest, got, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func (w *writer) abandon(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
}

func (w *writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	if !w.committed && w.err == nil {
		w.err = fmt.Errorf("blob %s: write abandoned", w.desc.Digest)
	}
	committed := w.committed
	w.cond.Broadcast()
	w.mu.Unlock()
	// Follow readers have their own descriptors, so closing and removing
	// the temporary file does not cut them off.
	w.f.Close()
	if !committed {
		os.Remove(w.f.Name())
	}
	w.release()
	return nil
}

func (w *writer) Follow() io.ReadCloser {
	f, err := os.Open(w.f.Name())
	return &follower{w: w, f: f, err: err}
}

type follower struct {
	w   *writer
	f   *os.File
	err error
	off int64
	// closed is guarded by w.mu: Close wakes a Read waiting on w.cond.
	closed bool
}

func (r *follower) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	w := r.w
	w.mu.Lock()
	for r.off >= w.written && !w.committed && w.err == nil && !r.closed {
		w.cond.Wait()
	}
	avail, committed, werr, closed := w.written-r.off, w.committed, w.err, r.closed
	w.mu.Unlock()
	if closed {
		return 0, fmt.Errorf("follow blob %s: %w", w.desc.Digest, os.ErrClosed)
	}
	if avail <= 0 {
		if committed {
			return 0, io.EOF
		}
		return 0, werr
	}
	if int64(len(p)) > avail {
		p = p[:avail]
	}
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Close ends the follower, and a Read of it waiting for bytes. It may be
// called while a Read runs, and more than once.
func (r *follower) Close() error {
	w := r.w
	w.mu.Lock()
	if r.closed {
		w.mu.Unlock()
		return nil
	}
	r.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}

func errTooLarge(dgst digest.Digest, size, limit int64) error {
	return fmt.Errorf("blob %s: %d bytes is more than the %d allowed: %w", dgst, size, limit, errdefs.ErrInvalidArgument)
}

// pollInterval is how often a writer waiting on another process's lock retries.
const pollInterval = 20 * time.Millisecond
