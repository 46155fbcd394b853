package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// FetchBlob returns the bytes of a blob as a stream that survives dropped
// connections: after an error mid-body it waits (backing off) and asks for
// the rest with a Range request, up to the client's BlobAttempts, then fails
// with an error saying how far it got. The caller verifies the digest (the
// content store does, while writing).
func (r *Repo) FetchBlob(ctx context.Context, desc ocispec.Descriptor) io.ReadCloser {
	return &blobReader{ctx: r.scoped(ctx), r: r, desc: desc, wait: r.c.opts.Backoff}
}

type blobReader struct {
	ctx      context.Context
	r        *Repo
	desc     ocispec.Descriptor
	body     io.ReadCloser
	off      int64
	attempts int
	wait     time.Duration
	lastErr  error
}

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.off >= b.desc.Size {
			return 0, io.EOF
		}
		if b.body == nil {
			if err := b.open(); err != nil {
				if !b.retry(err) {
					return 0, err
				}
				continue
			}
		}
		if rest := b.desc.Size - b.off; int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		if err == io.EOF && b.off < b.desc.Size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil || err == io.EOF {
			return n, nil
		}
		b.body.Close()
		b.body = nil
		if b.ctx.Err() != nil {
			return n, b.ctx.Err()
		}
		b.lastErr = err
		if n > 0 {
			return n, nil
		}
		if !b.retry(err) {
			return 0, b.fail(err)
		}
	}
}

// retry waits before the next attempt; false once attempts are used up.
func (b *blobReader) retry(err error) bool {
	if b.attempts >= b.r.c.opts.BlobAttempts || b.ctx.Err() != nil || isPermanent(err) {
		return false
	}
	select {
	case <-time.After(b.wait):
	case <-b.ctx.Done():
		return false
	}
	b.wait *= 2
	return true
}

func (b *blobReader) fail(err error) error {
	return fmt.Errorf("download blob %s from %s: got %d of %d bytes after %d attempts: %w",
		b.desc.Digest, b.r.Endpoint, b.off, b.desc.Size, b.attempts, err)
}

// permanentError marks a failure that retrying cannot fix (a 404, a bad range).
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// open starts (or resumes, from b.off) the download.
func (b *blobReader) open() error {
	b.attempts++
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.r.blobURL(b.desc.Digest), nil)
	if err != nil {
		return permanentError{err}
	}
	if b.off > 0 {
		// An explicit end: some registries (go-containerregistry's) refuse open ranges.
		req.Header.Set("Range", "bytes="+strconv.FormatInt(b.off, 10)+"-"+strconv.FormatInt(b.desc.Size-1, 10))
	}
	resp, err := b.r.c.auth.Do(req)
	if err != nil {
		return b.fail(err)
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && b.off > 0:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", b.off)) {
			resp.Body.Close()
			return b.fail(permanentError{fmt.Errorf("registry answered range %d- with %q", b.off, resp.Header.Get("Content-Range"))})
		}
	case resp.StatusCode == http.StatusOK:
		// No range support: skip what we have.
		if _, err := io.CopyN(io.Discard, resp.Body, b.off); err != nil {
			resp.Body.Close()
			return b.fail(err)
		}
	default:
		resp.Body.Close()
		err := fmt.Errorf("GET %s: %s", req.URL, resp.Status)
		if resp.StatusCode == http.StatusUnauthorized {
			err = refused(b.r.Endpoint, err)
		}
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
			err = permanentError{err}
		}
		return b.fail(err)
	}
	b.body = resp.Body
	return nil
}

func (b *blobReader) Close() error {
	if b.body != nil {
		return b.body.Close()
	}
	return nil
}
