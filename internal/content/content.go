// Package content is Berth's content-addressed blob store: manifests, configs
// and layers, each stored once under its digest.
//
// Invariants of the local store (New):
//   - a blob is at ROOT/blobs/sha256/HEX only if its bytes hash to HEX and
//     have the size the writer declared; writes stream into a temporary file
//     under ROOT/ingest and are renamed into place only once verified;
//   - a write that fails or is abandoned leaves nothing behind;
//   - at most one writer per digest at a time, across goroutines and
//     processes: a second writer of the same digest waits, then finds the
//     blob present (errdefs.ErrAlreadyExists) and reuses it.
package content

import (
	"context"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Info describes a stored blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
}

// Store is a content-addressed blob store.
type Store interface {
	// Info reports a stored blob, or an error wrapping errdefs.ErrNotFound.
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
	// Open returns a reader of a stored blob.
	Open(ctx context.Context, dgst digest.Digest) (ReadCloserAt, error)
	// Writer starts writing the blob desc names (its digest and size are
	// required). It returns an error wrapping errdefs.ErrAlreadyExists when
	// the blob is stored already, possibly after waiting for another writer
	// of the same digest to finish.
	Writer(ctx context.Context, desc ocispec.Descriptor) (Writer, error)
	// Ingest stores the bytes of r under whatever digest they have.
	Ingest(ctx context.Context, r io.Reader) (ocispec.Descriptor, error)
	// Delete removes a blob; errdefs.ErrNotFound if it is absent.
	Delete(ctx context.Context, dgst digest.Digest) error
	// Walk calls fn for every stored blob.
	Walk(ctx context.Context, fn func(Info) error) error
}

// ReadCloserAt is a stored blob opened for reading.
type ReadCloserAt interface {
	io.ReaderAt
	io.ReadCloser
	Size() int64
}

// Writer receives the bytes of one blob. Commit verifies and publishes it;
// Close abandons it unless committed. Close must always be called.
type Writer interface {
	io.Writer
	// Commit verifies the size and digest of what was written and makes the
	// blob visible. On a mismatch nothing is stored.
	Commit(ctx context.Context) error
	// Written is the number of bytes accepted so far.
	Written() int64
	// Follow returns a reader of the bytes as they are written: it blocks
	// for more until the blob is committed (then io.EOF after the last byte)
	// or abandoned (then an error). It lets a consumer start on a blob while
	// it is still downloading, without holding the download back.
	// Closing it ends a Read blocked waiting for bytes, so a consumer that
	// gives up (a pull cancelled by another layer's failure) need not wait
	// for the download.
	Follow() io.ReadCloser
	Close() error
}

// ReadBlob reads a whole blob, refusing one larger than limit bytes.
func ReadBlob(ctx context.Context, s Store, dgst digest.Digest, limit int64) ([]byte, error) {
	r, err := s.Open(ctx, dgst)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Size() > limit {
		return nil, errTooLarge(dgst, r.Size(), limit)
	}
	b := make([]byte, r.Size())
	if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}
