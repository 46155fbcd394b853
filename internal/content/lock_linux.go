package content

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive flock on path, polling so that ctx can cancel
// the wait. CleanLocks may unlink a lock file while holding its lock, so
// after locking we check that path still names the file we hold, else retry.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			if !samePath(f, path) {
				f.Close()
				if f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
					return nil, err
				}
				continue
			}
			return func() {
				unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

func samePath(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// CleanLocks removes the lock files of writes that are not running, and
// temporary files a crashed writer left (those whose lock is free).
func (s *Local) CleanLocks(ctx context.Context) error {
	dir := filepath.Join(s.root, "ingest")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clean ingest: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil && samePath(f, p) {
			// Nobody writes this digest: its temporary files are debris.
			tmps, _ := filepath.Glob(filepath.Join(dir, name+".*.tmp"))
			for _, t := range tmps {
				os.Remove(t)
			}
			os.Remove(p)
		}
		f.Close()
	}
	return nil
}
