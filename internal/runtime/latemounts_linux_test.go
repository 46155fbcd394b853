package runtime

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/runtime/initproc"
)

// sendLateMounts clones the sources that exist in the given process's mount
// namespace, sends them in one message and names their mounts in the
// config, leaving a missing source to the init; and the socket still
// honours deadlines afterwards, which every later exchange with the init
// relies on (os.File.Fd's documentation says it may stop them working,
// hence the raw conn).
func TestSendLateMountsKeepsDeadlines(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it enters a mount namespace (its own) and clones a mount")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	ours := os.NewFile(uintptr(fds[0]), "ours")
	theirs := os.NewFile(uintptr(fds[1]), "theirs")
	defer ours.Close()
	defer theirs.Close()
	opt := spawnOptions{
		lateMounts: map[int]lateMount{3: {src: t.TempDir()}, 5: {src: "/berth-no-such-source"}},
		message:    &initproc.Message{Type: initproc.MsgConfig, Config: &initproc.Config{}},
	}
	if err := sendLateMounts(ours, os.Getpid(), opt); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4*2))
	n, oobn, _, _, err := unix.Recvmsg(fds[1], buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || n != 1 || buf[0] != 'm' {
		t.Fatalf("recvmsg = %d %q, %v", n, buf[:n], err)
	}
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	var got []int
	for i := range msgs {
		f, _ := unix.ParseUnixRights(&msgs[i])
		got = append(got, f...)
	}
	for _, fd := range got {
		unix.Close(fd)
	}
	// The missing source is left to the init.
	if len(got) != 1 || len(opt.message.Config.LateMounts) != 1 || opt.message.Config.LateMounts[0] != 3 {
		t.Errorf("sent %d fds for mounts %v; want one, for mount 3", len(got), opt.message.Config.LateMounts)
	}
	ours.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := ours.Read(make([]byte, 1)); !os.IsTimeout(err) {
		t.Errorf("read after sendLateMounts with nothing to read: %v, want a timeout (the socket lost its deadlines)", err)
	}
}
