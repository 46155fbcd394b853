package runtime

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// A config whose linux.namespaces has no mount namespace runs in the
// runtime's own (runtime-spec: a namespace type that is not listed is
// inherited). Its mounts then go where the config says, under the rootfs in
// the host's mount table, so the init works on a bind mount of the rootfs
// onto itself, made private, and chroots into it instead of pivot_root
// (which would move the host's root). The runtime records that bind's mount
// id; delete, and a failed create, detach it and every mount of the config
// under it. Nothing of the host's mount tree is changed: its propagation is
// left alone, and the rootfs's parent mount is not made private.

// mountIDOf returns the id of the topmost mount at path (or of the mount
// that holds it, when path is no mount point).
func mountIDOf(path string) (uint64, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID, &st); err != nil {
		return 0, fmt.Errorf("statx %s: %w", path, err)
	}
	if st.Mask&unix.STATX_MNT_ID == 0 {
		return 0, errors.New("this kernel reports no mount ids (statx STATX_MNT_ID, Linux 5.8)")
	}
	return st.Mnt_id, nil
}

// detachHostMount detaches the mount id at rootfs, if it is still the
// topmost one there: the init's bind of the rootfs, with everything the
// config mounted under it. Another mount there (the caller's) is left alone.
func detachHostMount(rootfs string, id uint64) error {
	if id == 0 {
		return nil
	}
	for {
		top, err := mountIDOf(rootfs)
		if err != nil || top != id {
			return nil
		}
		if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detach the container's mounts at %s: %w", rootfs, err)
		}
	}
}

// detachNewHostMount undoes a failed create's bind of the rootfs: the
// topmost mount at rootfs, if it is not the one that was there before.
func detachNewHostMount(rootfs string, before uint64) {
	if top, err := mountIDOf(rootfs); err == nil && top != before {
		unix.Unmount(rootfs, unix.MNT_DETACH)
	}
}
