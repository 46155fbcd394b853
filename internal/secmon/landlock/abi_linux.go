package landlock

import "golang.org/x/sys/unix"

// ABI is this kernel's Landlock ABI version, 0 without Landlock.
func ABI() int {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(v)
}
