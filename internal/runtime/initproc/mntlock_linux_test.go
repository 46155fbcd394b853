package initproc

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestStatfsMountFlags(t *testing.T) {
	for _, c := range []struct {
		st   uint64
		want uintptr
	}{
		{0, unix.MS_STRICTATIME},
		{unix.ST_RDONLY | unix.ST_RELATIME, unix.MS_RDONLY | unix.MS_RELATIME},
		{unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC | unix.ST_NOATIME | unix.ST_NODIRATIME,
			unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME},
		// Not lockable, not reported.
		{unix.ST_SYNCHRONOUS | unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		got := statfsMountFlags(unix.Statfs_t{Flags: int64(c.st)})
		if got != c.want {
			t.Errorf("statfsMountFlags(f_flags %#x) = %s (%#x), want %s (%#x)", c.st, mountFlagNames(got), got, mountFlagNames(c.want), c.want)
		}
	}
	if got := mountFlagNames(unix.MS_RDONLY | unix.MS_NOEXEC | unix.MS_BIND); got != "ro,noexec" {
		t.Errorf("mountFlagNames(ro|noexec|bind) = %q, want ro,noexec", got)
	}
}
