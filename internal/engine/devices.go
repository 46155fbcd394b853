package engine

import (
	"fmt"
	"path"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
)

// DeviceMapping is a host device given to a container (Docker's
// container.DeviceMapping, `--device HOST[:CONTAINER][:PERMISSIONS]`).
type DeviceMapping struct {
	PathOnHost      string `json:"PathOnHost"`
	PathInContainer string `json:"PathInContainer"`
	// CgroupPermissions are what the device cgroup lets the container
	// do with it: some of r (read), w (write), m (mknod).
	CgroupPermissions string `json:"CgroupPermissions"`
}

// ParseDevice parses a --device value: HOST, HOST:CONTAINER,
// HOST:PERMISSIONS or HOST:CONTAINER:PERMISSIONS, as Docker does. The
// container path defaults to the host path and the permissions to "rwm".
func ParseDevice(s string) (DeviceMapping, error) {
	parts := strings.Split(s, ":")
	d := DeviceMapping{CgroupPermissions: "rwm"}
	switch len(parts) {
	case 1:
		d.PathOnHost = parts[0]
	case 2:
		d.PathOnHost = parts[0]
		if validDevicePermissions(parts[1]) == nil {
			d.CgroupPermissions = parts[1]
		} else {
			d.PathInContainer = parts[1]
		}
	case 3:
		d.PathOnHost, d.PathInContainer, d.CgroupPermissions = parts[0], parts[1], parts[2]
	default:
		return d, fmt.Errorf("invalid device %q: want HOST[:CONTAINER][:PERMISSIONS]: %w", s, errdefs.ErrInvalidArgument)
	}
	if d.PathInContainer == "" {
		d.PathInContainer = d.PathOnHost
	}
	if err := d.Validate(); err != nil {
		return d, err
	}
	return d, nil
}

// Validate checks a mapping as the CLI and the CRI server give it: both
// paths absolute without "..", permissions some of "rwm".
func (d DeviceMapping) Validate() error {
	for _, p := range []struct{ what, v string }{{"host path", d.PathOnHost}, {"container path", d.PathInContainer}} {
		if !path.IsAbs(p.v) {
			return fmt.Errorf("invalid device %s %q: not an absolute path: %w", p.what, p.v, errdefs.ErrInvalidArgument)
		}
		for _, el := range strings.Split(p.v, "/") {
			if el == ".." {
				return fmt.Errorf("invalid device %s %q: climbs with ..: %w", p.what, p.v, errdefs.ErrInvalidArgument)
			}
		}
	}
	if path.Clean(d.PathInContainer) == "/dev" || path.Clean(d.PathInContainer) == "/" {
		return fmt.Errorf("invalid device container path %q: a device cannot replace %s: %w", d.PathInContainer, path.Clean(d.PathInContainer), errdefs.ErrInvalidArgument)
	}
	if err := validDevicePermissions(d.CgroupPermissions); err != nil {
		return fmt.Errorf("invalid device permissions %q for %s: %w", d.CgroupPermissions, d.PathOnHost, err)
	}
	return nil
}

// validDevicePermissions accepts a non-empty set of r, w and m, each once.
func validDevicePermissions(p string) error {
	if p == "" || len(p) > 3 {
		return fmt.Errorf("want some of r, w and m: %w", errdefs.ErrInvalidArgument)
	}
	seen := map[rune]bool{}
	for _, c := range p {
		if !strings.ContainsRune("rwm", c) || seen[c] {
			return fmt.Errorf("want some of r, w and m, each once: %w", errdefs.ErrInvalidArgument)
		}
		seen[c] = true
	}
	return nil
}
