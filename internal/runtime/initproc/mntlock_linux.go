package initproc

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
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

// keepLocked is remount's answer to a remount the kernel refused: the
// flags of have (the mount's, from statfs) that it locks, to set again,
// or, as runc answers, an error when the options clear one of them
// explicitly (cleared) or ask for another atime mode than the locked one.
func keepLocked(have, flags, cleared uintptr, src string) (uintptr, error) {
	locked := have & mntLockable
	if clr := locked & cleared; clr != 0 {
		names, it := mountFlagNames(clr), "it"
		if strings.Contains(names, ",") {
			it = "them"
		}
		return 0, fmt.Errorf("cannot clear %s: the source %s has %s, and in a container with its own user namespace the kernel locks %s: %w",
			names, src, it, it, unix.EPERM)
	}
	if want := flags & mntAtime; want != 0 {
		if want != have&mntAtime {
			return 0, fmt.Errorf("cannot change the atime flags %s of the source %s to %s: in a container with its own user namespace the kernel locks them: %w",
				mountFlagNames(have&mntAtime), src, mountFlagNames(want), unix.EPERM)
		}
		locked &^= mntAtime
	}
	return locked, nil
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
