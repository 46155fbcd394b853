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
//
// While the lock is busy, another process is writing the blob. waiting is
// called once when that is first seen. The wait lasts as long as that
// writer makes progress (progress() changes): a big layer on a slow link
// may take long, but a writer whose bytes stop for stall is taken to be
// stuck, and lockFile gives up rather than hang behind it.
func lockFile(ctx context.Context, path string, waiting func(), progress func() int64, stall time.Duration) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	last, lastChange, told := progress(), time.Now(), false
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
		if !told && waiting != nil {
			waiting()
			told = true
		}
		if p := progress(); p != last {
			last, lastChange = p, time.Now()
		} else if time.Since(lastChange) > stall {
			f.Close()
			return nil, fmt.Errorf("another process holds %s but has written nothing for %s (is a berth process stuck?)", path, stall)
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

// ingestProgress is how many bytes the temporary files of dgst's writers
// hold: it grows while any writer, in any process, makes progress.
func (s *Local) ingestProgress(hex string) int64 {
	tmps, _ := filepath.Glob(filepath.Join(s.root, "ingest", hex+".*.tmp"))
	var n int64
	for _, t := range tmps {
		if fi, err := os.Stat(t); err == nil {
			n += fi.Size()
		}
	}
	return n
}
