package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
)

// Listen listens on the unix socket path for the CRI: its directory is
// created 0700 if missing, the socket is 0600 (root's kubelet only). A
// stale socket left by a berthd that died is replaced; a socket another
// server answers on is refused, so two daemons never share one path.
func Listen(ctx context.Context, path string) (net.Listener, error) {
	if path == "" {
		return nil, fmt.Errorf("listen: socket path is empty: %w", errdefs.ErrInvalidArgument)
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the socket's directory: %w", err)
	}
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode()&os.ModeSocket == 0:
		return nil, fmt.Errorf("listen on %s: it exists and is not a socket: %w", path, errdefs.ErrAlreadyExists)
	case err == nil:
		d := net.Dialer{Timeout: 2 * time.Second}
		c, derr := d.DialContext(ctx, "unix", path)
		if derr == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: another server answers on it: %w", path, errdefs.ErrAlreadyExists)
		}
		if !errors.Is(derr, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("listen on %s: probe the existing socket: %w", path, derr)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the stale socket %s: %w", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The socket is created under a umask that leaves it 0600 from the
	// start, not after a chmod another process could race.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}
