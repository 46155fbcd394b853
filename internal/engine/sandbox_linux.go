package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pinned are the namespace files pinNamespaces made ("" for none).
type pinned struct{ ipc, uts string }

// pinNamespaces makes new IPC and UTS namespaces (as asked) and pins each
// with a bind mount of its /proc file on dir/ipc, dir/uts, setting the
// hostname in the UTS one. A thread unshares them and is then thrown away
// (it stays locked, so the Go runtime ends it rather than reuse a thread
// in foreign namespaces): no process is left to hold them.
func pinNamespaces(dir, hostname string, ipc, uts bool) (pinned, error) {
	var p pinned
	if !ipc && !uts {
		return p, nil
	}
	var flags int
	var files []string
	if ipc {
		flags |= unix.CLONE_NEWIPC
		p.ipc = filepath.Join(dir, "ipc")
		files = append(files, p.ipc)
	}
	if uts {
		flags |= unix.CLONE_NEWUTS
		p.uts = filepath.Join(dir, "uts")
		files = append(files, p.uts)
	}
	for _, f := range files {
		fh, err := os.OpenFile(f, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			unpinNamespaces(dir)
			return pinned{}, fmt.Errorf("create namespace file %s: %w", f, err)
		}
		fh.Close()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread goes back to its own namespaces before it is
		// unlocked. Letting it die with the goroutine is not enough: it
		// may be the process's main thread, which the Go runtime never
		// ends but parks, and whose namespaces are the ones
		// /proc/self/ns shows for the whole process (berthd then looked
		// as if it ran in the last pod's IPC namespace).
		var home []*os.File
		for _, kind := range []string{"ipc", "uts"} {
			f, err := os.Open("/proc/thread-self/ns/" + kind)
			if err != nil {
				for _, h := range home {
					h.Close()
				}
				runtime.UnlockOSThread()
				errc <- fmt.Errorf("open this thread's %s namespace: %w", kind, err)
				return
			}
			home = append(home, f)
		}
		defer func() {
			restored := true
			for _, h := range home {
				if unix.Setns(int(h.Fd()), 0) != nil {
					restored = false
				}
				h.Close()
			}
			if restored {
				runtime.UnlockOSThread()
			} // else the thread stays locked and ends with the goroutine
		}()
		errc <- func() error {
			if err := unix.Unshare(flags); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			if uts && hostname != "" {
				if err := unix.Sethostname([]byte(hostname)); err != nil {
					return fmt.Errorf("set hostname %q: %w", hostname, err)
				}
			}
			tid := unix.Gettid()
			for kind, f := range map[string]string{"ipc": p.ipc, "uts": p.uts} {
				if f == "" {
					continue
				}
				src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, kind)
				if err := unix.Mount(src, f, "none", unix.MS_BIND, ""); err != nil {
					return fmt.Errorf("pin %s namespace on %s: %w", kind, f, err)
				}
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		unpinNamespaces(dir)
		return pinned{}, err
	}
	return p, nil
}

// unpinNamespaces removes the pins pinNamespaces made in dir, whatever of
// them exists.
func unpinNamespaces(dir string) {
	for _, kind := range []string{"ipc", "uts"} {
		f := filepath.Join(dir, kind)
		if err := unix.Unmount(f, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			continue // still pinned: leave the file rather than lose track
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
	}
}

// startPause starts the init of a shared PID namespace: berth-monitor in
// its pause mode, as PID 1 of a new PID namespace, reaping orphans.
func (e *Engine) startPause(ctx context.Context, sb *Sandbox) (int, error) {
	if e.opts.MonitorBin == "" {
		return 0, fmt.Errorf("a shared PID namespace needs berth-monitor, which was not found")
	}
	cmd := exec.Command(e.opts.MonitorBin, "--pause", sb.ID)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID, Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the pod's PID namespace holder: %w", err)
	}
	pid := cmd.Process.Pid
	// Reap it when it ends while this process lives; a later process
	// leaves that to init.
	go cmd.Wait()
	if err := os.WriteFile(filepath.Join(e.sandboxRunDir(sb.ID), "pause.pid"), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return 0, err
	}
	return pid, nil
}

// pauseAlive says whether pid is still the sandbox's pause process (and
// not another process that took its number).
func pauseAlive(pid int, rundir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	return len(args) == 3 && args[1] == "--pause" && filepath.Base(rundir) == args[2]
}

// stopPause kills the pause process (the PID namespace, and whatever still
// runs in it, goes with it) and waits a little for it to go.
func stopPause(pid int, rundir string) {
	if !pauseAlive(pid, rundir) {
		return
	}
	unix.Kill(pid, unix.SIGKILL)
	for i := 0; i < 100 && pauseAlive(pid, rundir); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}
