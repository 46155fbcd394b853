package initproc

import (
	"fmt"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/pathrs"
)

// setupConsole gives a terminal process a pty from the container's own
// devpts: the master goes to the caller over the console socket (SCM_RIGHTS,
// as runc sends it), the slave becomes the process's stdio and controlling
// terminal, and for a container init also /dev/console.
func (ip *initProc) setupConsole(proc *specs.Process, devConsole bool) error {
	if !proc.Terminal {
		return nil
	}
	sockFd, err := strconv.Atoi(ip.consoleFd)
	if err != nil {
		return fmt.Errorf("process.terminal: no console socket given (use --console-socket)")
	}
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("process.terminal: open /dev/ptmx: %w", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("process.terminal: unlock pty: %w", err)
	}
	// TIOCGPTPEER opens the slave through the master, so a pts path that
	// the container swapped cannot be substituted.
	// The ioctl's argument is the open flags of the new fd.
	r1, _, errno := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		return fmt.Errorf("process.terminal: open pty slave: %w", errno)
	}
	slaveFd := int(r1)
	slave := os.NewFile(uintptr(slaveFd), "pty-slave")
	defer slave.Close()
	if proc.ConsoleSize != nil {
		ws := &unix.Winsize{Row: uint16(proc.ConsoleSize.Height), Col: uint16(proc.ConsoleSize.Width)}
		if err := unix.IoctlSetWinsize(slaveFd, unix.TIOCSWINSZ, ws); err != nil {
			return fmt.Errorf("process.consoleSize: %w", err)
		}
	}
	if devConsole {
		n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
		if err != nil {
			return fmt.Errorf("process.terminal: pty number: %w", err)
		}
		root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		target, err := pathrs.MountPoint(root, "/dev/console", false)
		root.Close()
		if err != nil {
			return fmt.Errorf("/dev/console: %w", err)
		}
		err = unix.Mount(fmt.Sprintf("/dev/pts/%d", n), pathrs.ProcPath(target), "", unix.MS_BIND, "")
		target.Close()
		if err != nil {
			return fmt.Errorf("bind pty on /dev/console: %w", err)
		}
	}
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(sockFd, []byte("/dev/ptmx"), rights, nil, 0); err != nil {
		return fmt.Errorf("send pty to console socket: %w", err)
	}
	unix.Close(sockFd)
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(slaveFd, fd, 0); err != nil {
			return fmt.Errorf("pty as stdio: %w", err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("pty as controlling terminal: %w", err)
	}
	return nil
}
