package initproc

import (
	"strings"
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

func TestKeepLocked(t *testing.T) {
	have := uintptr(unix.MS_RDONLY | unix.MS_NOEXEC | unix.MS_RELATIME)
	if got, err := keepLocked(have, unix.MS_NOSUID, 0, "/src"); err != nil || got != have {
		t.Errorf("nosuid on a ro,noexec,relatime source: keep %s, %v; want all three kept", mountFlagNames(got), err)
	}
	if _, err := keepLocked(have, 0, unix.MS_RDONLY|unix.MS_NOEXEC, "/src"); err == nil || !strings.Contains(err.Error(), "cannot clear ro,noexec") || !strings.Contains(err.Error(), "/src") {
		t.Errorf("rw,exec on a ro,noexec source: %v, want a refusal naming ro,noexec and /src", err)
	}
	if _, err := keepLocked(have, unix.MS_NOATIME, 0, "/src"); err == nil {
		t.Error("noatime on a relatime source: want a refusal")
	}
	if got, err := keepLocked(have, unix.MS_RELATIME, 0, "/src"); err != nil || got != unix.MS_RDONLY|unix.MS_NOEXEC {
		t.Errorf("relatime on a relatime source: keep %s, %v; want ro,noexec (the atime mode is the one asked for)", mountFlagNames(got), err)
	}
}
