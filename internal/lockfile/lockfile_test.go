package lockfile

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestSharedExclusiveAndDowngrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lock")
	a, err := Acquire(ctx, path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(ctx, path, false, func() { t.Error("a second shared lock waited") })
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := TryExclusive(path); ok || err != nil {
		t.Fatalf("TryExclusive while shared locks are held: %v, %v", ok, err)
	}
	waited := 0
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := Acquire(short, path, true, func() { waited++ }); !errors.Is(err, context.DeadlineExceeded) || waited != 1 {
		t.Fatalf("exclusive while shared locks are held: %v, told %d times", err, waited)
	}
	a.Release()
	b.Release()

	ex, ok, err := TryExclusive(path)
	if !ok || err != nil {
		t.Fatalf("TryExclusive with no holder: %v, %v", ok, err)
	}
	if err := ex.Downgrade(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := Acquire(ctx, path, false, func() { t.Error("a shared lock waited for a downgraded one") })
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	ex.Release()
	if err := ex.Release(); err != nil {
		t.Errorf("second release: %v", err)
	}
}
