package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
)

// mappedDevices turns --device mappings into the spec's device nodes and
// the device cgroup rules that allow them. A host path that is a directory
// gives every device under it, at the same place under the container path
// (Docker's behaviour); a host path that is neither a device nor a
// directory is an error naming it. Links in the host path are followed, as
// Docker does (/dev/disk/by-id/... names a device through a link).
func mappedDevices(ctx context.Context, maps []DeviceMapping) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var devs []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	for _, m := range maps {
		if err := m.Validate(); err != nil {
			return nil, nil, err
		}
		src, err := filepath.EvalSymlinks(m.PathOnHost)
		if err != nil {
			return nil, nil, fmt.Errorf("device %s: %w", m.PathOnHost, asInvalid(err))
		}
		fi, err := os.Stat(src)
		if err != nil {
			return nil, nil, fmt.Errorf("device %s: %w", m.PathOnHost, asInvalid(err))
		}
		if !fi.IsDir() {
			d, err := deviceNode(src, path.Clean(m.PathInContainer))
			if err != nil {
				return nil, nil, fmt.Errorf("device %s: %w", m.PathOnHost, err)
			}
			devs = append(devs, d)
			rules = append(rules, deviceRule(d, m.CgroupPermissions))
			continue
		}
		under, err := hostDevices(ctx, src)
		if err != nil {
			return nil, nil, err
		}
		if len(under) == 0 {
			return nil, nil, fmt.Errorf("device %s: a directory with no devices under it: %w", m.PathOnHost, errdefs.ErrInvalidArgument)
		}
		for _, d := range under {
			rel := strings.TrimPrefix(d.Path, src)
			d.Path = path.Join(m.PathInContainer, rel)
			devs = append(devs, d)
			rules = append(rules, deviceRule(d, m.CgroupPermissions))
		}
	}
	return devs, rules, nil
}

// deviceNode describes the character or block device at host path src as
// a node at dst in the container, with the host node's mode and owner.
func deviceNode(src, dst string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return specs.LinuxDevice{}, asInvalid(err)
	}
	d, ok := deviceFromStat(dst, &st)
	if !ok {
		return d, fmt.Errorf("not a character or block device: %w", errdefs.ErrInvalidArgument)
	}
	return d, nil
}

// deviceFromStat is the node at dst for a host node's stat; false when the
// node is not a character or block device.
func deviceFromStat(dst string, st *unix.Stat_t) (specs.LinuxDevice, bool) {
	d := specs.LinuxDevice{Path: dst, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev))}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		d.Type = "c"
	case unix.S_IFBLK:
		d.Type = "b"
	default:
		return d, false
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	d.FileMode, d.UID, d.GID = &mode, &uid, &gid
	return d, true
}

func deviceRule(d specs.LinuxDevice, perms string) specs.LinuxDeviceCgroup {
	major, minor := d.Major, d.Minor
	return specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: perms}
}

// addDevices puts devs into the spec, replacing a node already at the same
// container path (a --device over one of --privileged's host devices).
func addDevices(s *specs.Spec, devs []specs.LinuxDevice) {
	for _, d := range devs {
		replaced := false
		for i := range s.Linux.Devices {
			if s.Linux.Devices[i].Path == d.Path {
				s.Linux.Devices[i], replaced = d, true
				break
			}
		}
		if !replaced {
			s.Linux.Devices = append(s.Linux.Devices, d)
		}
	}
}

// asInvalid marks a missing or unreadable host path as the caller's
// mistake rather than the engine's failure.
func asInvalid(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return err
}
