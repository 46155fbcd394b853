package initproc

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/oci"
)

const (
	// mntAtimeEnum are the atime modes, one of which a mount has.
	mntAtimeEnum = unix.MS_NOATIME | unix.MS_RELATIME | unix.MS_STRICTATIME
	mntAtime     = mntAtimeEnum | unix.MS_NODIRATIME
	// mntLockable are the flags the kernel locks on the mounts a mount
	// namespace inherits from a more privileged user namespace
	// (MNT_LOCK_READONLY, _NODEV, _NOSUID, _NOEXEC, _ATIME): a process in
	// the container's user namespace cannot clear them.
	mntLockable = unix.MS_RDONLY | unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC | mntAtime
)

// statfsMountFlags turns statfs(2)'s f_flags of a mount into MS_* flags
// (fs/statfs.c, calculate_f_flags). MS_STRICTATIME is not stored: a mount
// with none of the other atime modes has it.
func statfsMountFlags(st unix.Statfs_t) uintptr {
	var flags uintptr
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_RDONLY, unix.MS_RDONLY}, {unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	if flags&mntAtimeEnum == 0 {
		flags |= unix.MS_STRICTATIME
	}
	return flags
}

// lockSourceFlags gives a bind mount that the runtime cloned on the host,
// for a container with a user namespace of its own, the flags the kernel
// would have locked had the container's init bound the source itself (as
// runc does): its mount namespace, made with the user namespace, inherits
// the host's mounts with their ro, nosuid, nodev, noexec and atime flags
// locked. The clone was made by the host's root, so nothing is locked on it,
// and without this a source the host keeps read-only would be writable in
// the container. As with runc: options that would clear a locked flag
// (rw on a read-only source) fail; an atime mode other than the source's
// fails; locked flags the options leave unsaid are kept. Options that
// change nothing leave every flag of the source as it is. src is the clone's
// fd, name its source for errors.
func lockSourceFlags(src int, name string, opts *oci.MountOptions) error {
	if opts.Flags&^(unix.MS_BIND|unix.MS_REC|unix.MS_REMOUNT) == 0 && opts.Cleared == 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(src, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", name, err)
	}
	have := statfsMountFlags(st)
	locked := have & mntLockable
	if clr := locked & opts.Cleared; clr != 0 {
		names, it := mountFlagNames(clr), "it"
		if strings.Contains(names, ",") {
			it = "them"
		}
		return fmt.Errorf("cannot clear %s: the source %s has %s, and in a container with its own user namespace the kernel locks %s: %w",
			names, name, it, it, unix.EPERM)
	}
	if want := opts.Flags & mntAtime; want != 0 && want != have&mntAtime {
		return fmt.Errorf("cannot change the atime flags %s of the source %s to %s: in a container with its own user namespace the kernel locks them: %w",
			mountFlagNames(have&mntAtime), name, mountFlagNames(want), unix.EPERM)
	}
	opts.Flags |= locked
	return nil
}

// mountFlagNames names MS_* flags as mount(8) options, comma-separated.
func mountFlagNames(flags uintptr) string {
	var names []string
	for _, f := range []struct {
		flag uintptr
		name string
	}{
		{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
		{unix.MS_NOEXEC, "noexec"}, {unix.MS_NOATIME, "noatime"}, {unix.MS_NODIRATIME, "nodiratime"},
		{unix.MS_RELATIME, "relatime"}, {unix.MS_STRICTATIME, "strictatime"},
	} {
		if flags&f.flag != 0 {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, ",")
}
