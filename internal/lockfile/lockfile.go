// Package lockfile takes flock(2) locks on files, shared or exclusive, so
// that several berth processes can share one store without a daemon.
//
// A lock belongs to the open file description, so two Locks on one path
// exclude each other even within one process, as between processes; and
// the kernel drops a lock when its process dies, so a crash never leaves a
// store locked.
package lockfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval is how often a waiter retries a busy lock: flock has no
// timeout of its own, and a blocking flock could not be cancelled.
const pollInterval = 20 * time.Millisecond

// Lock is a held lock.
type Lock struct {
	f *os.File
}

// Acquire takes a shared (exclusive false) or exclusive lock on path, creating
// the file if needed. While the lock is busy it retries until ctx is done;
// waiting, if not nil, is called once, when the first attempt finds the
// lock busy, so a caller can say what it waits for.
func Acquire(ctx context.Context, path string, exclusive bool, waiting func()) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for first := true; ; first = false {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if first && waiting != nil {
			waiting()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// TryExclusive takes an exclusive lock on path if nobody holds any lock on
// it; ok is false, with no error, if someone does.
func TryExclusive(path string) (l *Lock, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("open lock file: %w", err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, false, nil
	} else if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, true, nil
}

// Downgrade turns an exclusive lock into a shared one. Linux does this by
// dropping the old lock and taking the new one, so another exclusive
// locker may get in between and make this wait; ctx bounds the wait.
func (l *Lock) Downgrade(ctx context.Context) error {
	for {
		err := unix.Flock(int(l.f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("downgrade lock %s: %w", l.f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}
