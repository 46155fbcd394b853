package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/monitor"
)

// Update changes a container's resource limits: in its record (so the next
// start has them) and, when it runs, in its cgroup through the runtime's
// `update --resources`.
func (e *Engine) Update(ctx context.Context, ref string, res Resources) error {
	return e.withContainer(ctx, ref, func(r *record) error {
		spec, err := buildResources(res, currentHostLimits())
		if err != nil {
			return err
		}
		if st := e.liveState(r); st.Running {
			b, err := json.Marshal(spec)
			if err != nil {
				return err
			}
			f := filepath.Join(e.runDir(r.ID), "resources.json")
			if err := writeFileAtomic(f, b, 0o600); err != nil {
				return err
			}
			defer os.Remove(f)
			if _, err := e.runtimeCmd(ctx, r, "update", "--resources", f, r.ID); err != nil {
				return fmt.Errorf("update container %s: %w", r.ID[:12], err)
			}
		}
		if _, err := e.store.modify(r.ID, func(cur *record) error {
			cur.HostConfig.Resources = res
			return nil
		}); err != nil {
			return err
		}
		e.emit(ctx, "container", "update", r)
		return nil
	})
}

// ReopenLog makes a running container's monitor reopen its log file (after
// the log was rotated away, the CRI's ReopenContainerLog).
func (e *Engine) ReopenLog(ctx context.Context, ref string) error {
	r, err := e.store.get(ref)
	if err != nil {
		return err
	}
	if st := e.liveState(r); !st.Running {
		return fmt.Errorf("container %s is not running: %w", r.ID[:12], errdefs.ErrFailedPrecondition)
	}
	return monitor.ReopenLog(ctx, e.runDir(r.ID))
}

// WritableLayer is where a container's writes to its root file system go
// and how much they use (the CRI's writable layer stats).
type WritableLayer struct {
	Path   string
	Bytes  int64
	Inodes int64
}

// WritableLayerOf measures the container's writable layer.
func (e *Engine) WritableLayerOf(ctx context.Context, ref string) (WritableLayer, error) {
	r, err := e.store.get(ref)
	if err != nil {
		return WritableLayer{}, err
	}
	u, err := e.images.Snapshots.Usage(ctx, r.Snapshot)
	if err != nil {
		return WritableLayer{}, fmt.Errorf("container %s: writable layer: %w", r.ID[:12], err)
	}
	return WritableLayer{Path: filepath.Join(e.opts.Root, "snapshots"), Bytes: u.Size, Inodes: u.Inodes}, nil
}
