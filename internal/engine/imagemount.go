package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/snapshot"
)

// Image mounts (`--mount type=image,source=IMAGE,target=/path`, Podman's;
// the CRI's image volumes, KEP-4639) show another image's file system,
// read-only, inside a container. Each is a view snapshot of the image kept
// for the container's life and pinned, so neither rmi nor a collection
// takes its layers away; a start mounts the views under the run directory
// and binds them in.

// maxImageMounts bounds a container's image mounts; the clean-up of a
// create that died half-way counts up to it.
const maxImageMounts = 16

// imageMountKey is the view snapshot of r's i-th image mount.
func imageMountKey(containerSnapshot string, i int) string {
	return containerSnapshot + "-image-" + strconv.Itoa(i)
}

// imageMountOwner is the pin that keeps that image.
func imageMountOwner(id string, i int) string {
	return "container/" + id + "/image/" + strconv.Itoa(i)
}

// addImageMount makes the view of image m.Source for r's next image mount
// and returns its mount point; undo gets what takes it back.
func (e *Engine) addImageMount(ctx context.Context, r *record, m Mount, n int, undo *[]func()) (MountPoint, error) {
	if n >= maxImageMounts {
		return MountPoint{}, fmt.Errorf("invalid --mount type=image: more than %d image mounts: %w", maxImageMounts, errdefs.ErrInvalidArgument)
	}
	if m.Source == "" {
		return MountPoint{}, fmt.Errorf("invalid --mount type=image,target=%s: no source image: %w", m.Target, errdefs.ErrInvalidArgument)
	}
	sub, err := cleanSubPath(m.ImageSubPath)
	if err != nil {
		return MountPoint{}, err
	}
	// An image mounted into a container is run from as much as its root
	// file system is: the same policy decides, at create and each start.
	if err := e.checkTrust(ctx, "create", m.Source, r.ID, r.SandboxID); err != nil {
		return MountPoint{}, err
	}
	key := imageMountKey(r.Snapshot, n)
	owner := imageMountOwner(r.ID, n)
	img, err := e.images.Pin(ctx, owner, m.Source, key)
	if err != nil {
		return MountPoint{}, fmt.Errorf("--mount type=image,source=%s: %w", m.Source, err)
	}
	*undo = append(*undo, func() { e.images.Unpin(context.Background(), owner) })
	_, chainID, err := e.images.RuntimeConfig(ctx, img.Name)
	if err != nil {
		return MountPoint{}, fmt.Errorf("--mount type=image,source=%s: %w", m.Source, err)
	}
	if _, err := e.images.Snapshots.View(ctx, key, chainID, map[string]string{"berth.container": r.ID}); err != nil {
		return MountPoint{}, fmt.Errorf("--mount type=image,source=%s: %w", m.Source, err)
	}
	*undo = append(*undo, func() { e.images.Snapshots.Remove(context.Background(), key) })
	return MountPoint{Type: "image", Name: m.Source, Source: key, Destination: m.Target, Mode: "ro", SubPath: sub}, nil
}

// cleanSubPath checks an image sub-path: relative, no "..".
func cleanSubPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if filepath.IsAbs(p) || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("invalid image sub-path %q: want a path relative to the image's root: %w", p, errdefs.ErrInvalidArgument)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", fmt.Errorf("invalid image sub-path %q: climbs with ..: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	return filepath.Clean(p), nil
}

// mountImages mounts r's image views under its run directory and returns
// the host path each image mount binds (index i of r.Mounts → path).
func (e *Engine) mountImages(ctx context.Context, r *record, rundir string) (map[int]string, error) {
	out := map[int]string{}
	n := 0
	for i, m := range r.Mounts {
		if m.Type != "image" {
			continue
		}
		if err := e.checkTrust(ctx, "start", m.Name, r.ID, r.SandboxID); err != nil {
			return nil, err
		}
		dir := filepath.Join(rundir, "images", strconv.Itoa(n))
		n++
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		ms, err := e.images.Snapshots.Mounts(ctx, m.Source)
		if err != nil {
			return nil, fmt.Errorf("image mount %s on %s: %w", m.Name, m.Destination, err)
		}
		for j := range ms {
			if !slices.Contains(ms[j].Options, "ro") {
				ms[j].Options = append(ms[j].Options, "ro")
			}
		}
		if err := snapshot.MountAll(ms, dir); err != nil {
			return nil, fmt.Errorf("image mount %s on %s: %w", m.Name, m.Destination, err)
		}
		src := dir
		if m.SubPath != "" {
			// Resolved inside the image: a link in it cannot point the
			// bind at the host.
			p, err := securejoin.SecureJoin(dir, m.SubPath)
			if err != nil {
				return nil, fmt.Errorf("image mount %s: sub-path %s: %w", m.Name, m.SubPath, err)
			}
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("image mount %s: sub-path %s is not in the image: %w", m.Name, m.SubPath, errdefs.ErrInvalidArgument)
			}
			src = p
		}
		out[i] = src
	}
	return out, nil
}

// unmountImages undoes mountImages; it reports whether every view is gone
// (a run directory with a view still mounted must not be removed).
func unmountImages(rundir string) bool {
	entries, err := os.ReadDir(filepath.Join(rundir, "images"))
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	clean := true
	for _, ent := range entries {
		dir := filepath.Join(rundir, "images", ent.Name())
		for range 8 {
			if unix.Unmount(dir, unix.MNT_DETACH) != nil {
				break
			}
		}
		if mounted, err := mountinfo.Mounted(dir); err == nil && mounted {
			clean = false
		}
	}
	return clean
}

// removeImageMounts drops r's views and pins; a create that died half-way
// may have made some of them only.
func (e *Engine) removeImageMounts(ctx context.Context, id, containerSnapshot string) error {
	var errs []error
	for i := range maxImageMounts {
		if err := e.images.Snapshots.Remove(ctx, imageMountKey(containerSnapshot, i)); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
		if err := e.images.Unpin(ctx, imageMountOwner(id, i)); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
