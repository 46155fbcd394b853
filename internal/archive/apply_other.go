//go:build !linux

package archive

import (
	"context"
	"fmt"
	"io"

	"github.com/berth-project/berth/internal/errdefs"
)

// Apply needs Linux (openat2, overlayfs whiteouts).
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (int64, error) {
	return 0, fmt.Errorf("apply layer to %s: %w", dir, errdefs.ErrNotImplemented)
}
