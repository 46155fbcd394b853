//go:build !linux

package fscopy

import (
	"context"
	"fmt"
	"io"

	"github.com/berth-project/berth/internal/errdefs"
)

// Options tunes a copy.
type Options struct {
	Archive    bool
	FollowLink bool
}

// CopyOut needs Linux (openat2).
func CopyOut(ctx context.Context, rootfs, src, dst string, w io.Writer, opts ...Options) error {
	return fmt.Errorf("copy out of a container: %w", errdefs.ErrNotImplemented)
}

// CopyIn needs Linux (openat2).
func CopyIn(ctx context.Context, rootfs, dst, src string, r io.Reader, opts ...Options) error {
	return fmt.Errorf("copy into a container: %w", errdefs.ErrNotImplemented)
}

// CopyDirInto needs Linux (openat2).
func CopyDirInto(ctx context.Context, rootfs, src, dst string) error {
	return fmt.Errorf("copy a directory out of a container: %w", errdefs.ErrNotImplemented)
}
