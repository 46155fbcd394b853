package snapshot

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountFlags are the Options that are mount(2) flags rather than
// filesystem data. "bind"/"rbind" and "ro" are all a snapshotter emits;
// the rest let MountAll take mounts from elsewhere.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":      {false, unix.MS_RDONLY},
	"rw":      {true, unix.MS_RDONLY},
	"bind":    {false, unix.MS_BIND},
	"rbind":   {false, unix.MS_BIND | unix.MS_REC},
	"nosuid":  {false, unix.MS_NOSUID},
	"nodev":   {false, unix.MS_NODEV},
	"noexec":  {false, unix.MS_NOEXEC},
	"noatime": {false, unix.MS_NOATIME},
}

// MountAll mounts ms on target, in order. If one fails, the ones already
// mounted are unmounted again.
func MountAll(ms []Mount, target string) error {
	for i, m := range ms {
		if err := m.mount(target); err != nil {
			for j := i - 1; j >= 0; j-- {
				unix.Unmount(target, unix.MNT_DETACH) //nolint:errcheck // best effort undo; the mount error is the one to report
			}
			return err
		}
	}
	return nil
}

func (m Mount) mount(target string) error {
	var flags uintptr
	var data []string
	for _, o := range m.Options {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	fstype := m.Type
	if flags&unix.MS_BIND != 0 {
		fstype = ""
	}
	joined := strings.Join(data, ",")
	// A bind mount ignores MS_RDONLY and the like on the first call; they
	// take a remount of the bind.
	first := flags
	if flags&unix.MS_BIND != 0 {
		first = flags & (unix.MS_BIND | unix.MS_REC)
	}
	if err := unix.Mount(m.Source, target, fstype, first, joined); err != nil {
		return fmt.Errorf("mount %s %s on %s (options %q): %w", m.Type, m.Source, target, joined, err)
	}
	if rest := flags &^ (unix.MS_BIND | unix.MS_REC); flags&unix.MS_BIND != 0 && rest != 0 {
		if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|rest, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH) //nolint:errcheck // undoing the half-made mount
			return fmt.Errorf("remount bind of %s on %s with %v: %w", m.Source, target, m.Options, err)
		}
	}
	return nil
}

// UnmountAll unmounts everything stacked on target. An unmounted target is
// not an error.
func UnmountAll(target string) error {
	for {
		err := unix.Unmount(target, 0)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // nothing (more) mounted there
		}
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(target, unix.MNT_DETACH)
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
