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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/monitor"
	"github.com/berth-project/berth/internal/proc"
	"github.com/berth-project/berth/internal/snapshot"
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
	err := onOwnThread([]string{"ipc", "uts"}, func() error {
		if err := unix.Unshare(flags); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		if uts && hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("set hostname %q: %w", hostname, err)
			}
		}
		for kind, f := range map[string]string{"ipc": p.ipc, "uts": p.uts} {
			if f == "" {
				continue
			}
			if err := unix.Mount("/proc/thread-self/ns/"+kind, f, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("pin %s namespace on %s: %w", kind, f, err)
			}
		}
		return nil
	})
	if err != nil {
		unpinNamespaces(dir)
		return pinned{}, err
	}
	return p, nil
}

// unpinNamespaces removes the pins pinNamespaces made in dir, whatever of
// them exists.
func unpinNamespaces(dir string) {
	for _, kind := range []string{"ipc", "uts", "user"} {
		f := filepath.Join(dir, kind)
		if err := unix.Unmount(f, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			continue // still pinned: leave the file rather than lose track
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
	}
}

// pauseBin is the program of a pod's pause process: berth-pause beside
// berth-monitor (C, a fraction of the memory; the Makefile builds it), or
// berth-monitor's own pause mode, which takes the same arguments.
func (e *Engine) pauseBin() string {
	if p := e.besideMonitor("berth-pause"); p != "" {
		return p
	}
	return e.opts.MonitorBin
}

// startPause starts the init of a shared PID namespace: berth-monitor in
// its pause mode, as PID 1 of a new PID namespace, reaping orphans.
func (e *Engine) startPause(ctx context.Context, sb *Sandbox) (int, error) {
	if e.opts.MonitorBin == "" {
		return 0, fmt.Errorf("a shared PID namespace needs berth-monitor, which was not found")
	}
	cmd := exec.Command(e.pauseBin(), "--pause", sb.ID)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID, Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the pod's PID namespace holder: %w", err)
	}
	pid := cmd.Process.Pid
	// Reap it when it ends while this process lives (without a thread
	// blocked per pod meanwhile); a later process leaves that to init.
	monitor.ReapLater(pid)
	cmd.Process.Release()
	if err := os.WriteFile(filepath.Join(e.sandboxRunDir(sb.ID), "pause.pid"), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return 0, err
	}
	return pid, nil
}

// pausePidFile is the pid startPause recorded in rundir, or 0.
func pausePidFile(rundir string) int {
	b, err := os.ReadFile(filepath.Join(rundir, "pause.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// pauseAlive says whether pid is still the sandbox's pause process (and
// not another process that took its number). proc.Args waits out the
// moment after its start when its command line still reads empty: a
// teardown that came then took the live pause for a gone one and left it
// running.
func pauseAlive(pid int, rundir string) bool {
	args := proc.Args(pid)
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

// pinSandboxUserNS makes the sandbox's user namespace and, owned by it,
// its network, IPC and UTS namespaces (and its PID namespace when the
// sandbox shares one), and pins them: user, ipc and uts in the sandbox's
// run directory, net where the network manager keeps netns files, so that
// its RemoveNetNS unpins it. A thread cannot enter a user namespace in a
// multithreaded process, so a child is cloned into all of them at once,
// with the mappings written by Go between its clone and its exec; the
// child is berth-monitor's pause mode, which is the sandbox's pause
// process when it shares a PID namespace and is killed otherwise. Each
// path is recorded in sb (and sb saved) before anything runs inside, so a
// teardown after a crash finds it; on error nothing is left.
func (e *Engine) pinSandboxUserNS(ctx context.Context, sb *Sandbox) (retErr error) {
	if e.opts.MonitorBin == "" {
		return fmt.Errorf("a pod user namespace needs berth-monitor, which was not found")
	}
	cfg := sb.Config
	dir := e.sandboxRunDir(sb.ID)
	// The pod's root is not the host's: the runtime reaches the
	// containers' root file systems and the sandbox's files as a user
	// that needs the directories above them to let others through (not
	// read: 0711, as containerd makes its state directories).
	for _, d := range []string{e.opts.Root, e.sandboxDir(sb.ID), e.opts.RunRoot, filepath.Join(e.opts.RunRoot, "containers")} {
		if err := allowTraverse(d); err != nil {
			return err
		}
	}
	// Above the roots is the operator's to open, not Berth's: say which
	// one is closed rather than fail later in the runtime with EACCES.
	for _, d := range []string{filepath.Dir(e.opts.Root), filepath.Dir(e.opts.RunRoot)} {
		for ; ; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("%s does not let others through (mode %v): a pod with a user namespace reaches its files as an unprivileged host user: %w", d, st.Mode().Perm(), errdefs.ErrFailedPrecondition)
			}
			if d == "/" || d == "." {
				break
			}
		}
	}
	netns := filepath.Join(e.opts.RunRoot, "network", "netns", sb.ID)
	if err := os.MkdirAll(filepath.Dir(netns), 0o755); err != nil {
		return fmt.Errorf("create netns directory: %w", err)
	}
	pins := map[string]string{"user": filepath.Join(dir, "user"), "net": netns, "ipc": filepath.Join(dir, "ipc"), "uts": filepath.Join(dir, "uts")}
	var made []string
	defer func() {
		if retErr != nil {
			for _, f := range made {
				unix.Unmount(f, unix.MNT_DETACH)
				os.Remove(f)
			}
		}
	}()
	for _, f := range pins {
		fh, err := os.OpenFile(f, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			return fmt.Errorf("create namespace file %s: %w", f, err)
		}
		fh.Close()
		made = append(made, f)
	}
	sb.UserNSPath, sb.NetNSPath, sb.IPCPath, sb.UTSPath = pins["user"], pins["net"], pins["ipc"], pins["uts"]
	if err := e.store.putSandbox(sb); err != nil {
		return err
	}

	conv := func(in []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		out := make([]syscall.SysProcIDMap, 0, len(in))
		for _, m := range in {
			out = append(out, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		return out
	}
	flags := uintptr(unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS)
	sharePID := cfg.SharePID && !cfg.HostPID
	if sharePID {
		flags |= unix.CLONE_NEWPID
	}
	pauseBin := e.pauseBin()
	cmd := exec.Command(pauseBin, "--pause", sb.ID)
	cmd.Dir = "/"
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  flags,
		UidMappings: conv(cfg.UserNS.UIDMappings),
		GidMappings: conv(cfg.UserNS.GIDMappings),
		// Go denies setgroups in the new namespace unless told; the
		// containers that join it set their supplementary groups.
		GidMappingsEnableSetgroups: true,
		Setsid:                     true,
	}
	if err := cmd.Start(); err != nil {
		// The child runs as the pod's root, not the host's: it must be
		// able to execute the binary as any user.
		return fmt.Errorf("start the pod's user namespace holder %s (as host uid %d; the binary and its directories must be executable by others): %w",
			pauseBin, cfg.UserNS.UIDMappings[0].HostID, err)
	}
	pid := cmd.Process.Pid
	keep := false
	defer func() {
		if !keep {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	// Recorded at once, so that a teardown after a crash of ours finds
	// the holder (stopPause checks it is still this sandbox's).
	sb.PausePid = pid
	if err := e.store.putSandbox(sb); err != nil {
		return err
	}
	for _, kind := range []string{"user", "net", "ipc", "uts"} {
		src := fmt.Sprintf("/proc/%d/ns/%s", pid, kind)
		if err := unix.Mount(src, pins[kind], "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin the pod's %s namespace on %s: %w", kind, pins[kind], err)
		}
	}
	if err := inPodNamespaces(pins["net"], pins["uts"], cfg.Hostname); err != nil {
		return err
	}
	if sharePID {
		if err := os.WriteFile(filepath.Join(dir, "pause.pid"), []byte(strconv.Itoa(pid)), 0o600); err != nil {
			return err
		}
		keep = true
		monitor.ReapLater(pid) // reap it if it ends while this process lives
		cmd.Process.Release()
	} else {
		cmd.Process.Kill()
		cmd.Wait()
		keep = true // done
		sb.PausePid = 0
	}
	return e.store.putSandbox(sb)
}

// allowTraverse lets others search dir (o+x), making it first if need be.
func allowTraverse(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if m := st.Mode().Perm(); m&0o001 == 0 {
		if err := os.Chmod(dir, m|0o001); err != nil {
			return fmt.Errorf("let the pod's root through %s: %w", dir, err)
		}
	}
	return nil
}

// inPodNamespaces sets the hostname in the UTS namespace at uts and brings
// up the loopback in the network namespace at net, from a thread that
// enters both (allowed: neither is a user or mount namespace) and then
// returns to its own (onOwnThread).
func inPodNamespaces(net, uts, hostname string) error {
	return onOwnThread([]string{"uts", "net"}, func() error { return inPodNamespacesThread(net, uts, hostname) })
}

// onOwnThread runs f on a locked thread that f may move into other
// namespaces of the given kinds (unshare or setns), and puts the thread
// back into its own namespaces of those kinds before handing it back to
// the scheduler. Letting the thread end with its goroutine is not enough:
// it may be the process's main thread, which Go parks but never ends, and
// whose namespaces are the ones /proc/self/ns shows for the whole process
// (berthd then looked as if it ran in the last pod's IPC namespace). A
// thread that cannot go back stays locked and ends with the goroutine.
func onOwnThread(kinds []string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var home []*os.File
		defer func() {
			for _, h := range home {
				h.Close()
			}
		}()
		for _, kind := range kinds {
			h, err := os.Open("/proc/thread-self/ns/" + kind)
			if err != nil {
				runtime.UnlockOSThread() // still at home
				errc <- fmt.Errorf("open this thread's %s namespace: %w", kind, err)
				return
			}
			home = append(home, h)
		}
		err := f()
		back := true
		for _, h := range home {
			back = unix.Setns(int(h.Fd()), 0) == nil && back
		}
		if back {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func inPodNamespacesThread(net, uts, hostname string) error {
	for _, ns := range []struct {
		path string
		flag int
	}{{uts, unix.CLONE_NEWUTS}, {net, unix.CLONE_NEWNET}} {
		fd, err := unix.Open(ns.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", ns.path, err)
		}
		err = unix.Setns(fd, ns.flag)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("enter %s: %w", ns.path, err)
		}
	}
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find the pod's loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set the pod's loopback up: %w", err)
	}
	return nil
}

// mountRootfs mounts the container's snapshot on rootfs: as it is, or,
// in a sandbox with a user namespace, with the image's layers idmapped so
// that their files are owned inside by the IDs they have on disk.
func (e *Engine) mountRootfs(r *record, ms []snapshot.Mount, rootfs string) error {
	sb, err := e.sandboxUserNS(r)
	if err != nil {
		return err
	}
	if sb == nil {
		return snapshot.MountAll(ms, rootfs)
	}
	u := sb.Config.UserNS
	uid, _ := hostIDOf(u.UIDMappings, 0)
	gid, _ := hostIDOf(u.GIDMappings, 0)
	if err := mountIDMapped(ms, rootfs, sb.UserNSPath, int(uid), int(gid)); err != nil {
		return err
	}
	// The runtime reaches the rootfs as the pod's root, which is not the
	// host's, and the run directory is the monitor's, private (0700): the
	// runtime gets a bind of it under a directory only the pod's root
	// group (and the host's root) may pass through (0710), so that other
	// host users cannot browse the container's files.
	dir := e.podRootfs(r.ID)
	gate := filepath.Dir(dir)
	if err := allowTraverse(filepath.Dir(gate)); err != nil {
		return err
	}
	if err := os.Mkdir(gate, 0o710); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Chown(gate, 0, int(gid)); err != nil {
		return err
	}
	if err := os.Chmod(gate, 0o710); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := unix.Mount(rootfs, dir, "", unix.MS_BIND, ""); err != nil {
		os.RemoveAll(gate)
		return fmt.Errorf("bind the root file system on %s: %w", dir, err)
	}
	return nil
}

// podRootfs is where the runtime finds the root file system of a
// container in a sandbox with a user namespace.
func (e *Engine) podRootfs(id string) string {
	return filepath.Join(e.opts.RunRoot, "rootfs", id, "root")
}

// unmountPodRootfs undoes mountRootfs's bind for the runtime, if any.
func (e *Engine) unmountPodRootfs(id string) {
	dir := e.podRootfs(id)
	for i := 0; i < 8; i++ {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			break
		}
	}
	// Each fails, and so keeps the files, while still mounted.
	if os.Remove(dir) == nil || !fileExists(dir) {
		os.Remove(filepath.Dir(dir))
	}
}

// mountIDMapped mounts a snapshot's mounts (one bind of a directory, or
// one overlay) on target, seen through the user namespace at usernsPath.
// A bind becomes an idmapped clone of its directory. An overlay gets
// idmapped clones of its lower layers (overlayfs takes idmapped layers
// since Linux 5.19), attached for the mount under target's parent and
// detached again once the overlay holds them; its upper directory is not
// idmapped (an idmapped upper layer refuses the pod's writes with EROFS on
// Linux 6.18) but owned by the pod's root (uid, gid on the host), so the
// files the container writes are owned on disk by its host IDs.
func mountIDMapped(ms []snapshot.Mount, target, usernsPath string, uid, gid int) (retErr error) {
	if len(ms) != 1 {
		return fmt.Errorf("idmapped root file system: %d mounts, want one", len(ms))
	}
	m := ms[0]
	userns, err := os.Open(usernsPath)
	if err != nil {
		return fmt.Errorf("open the pod's user namespace: %w", err)
	}
	defer userns.Close()
	clone := func(src string) (int, error) {
		fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return -1, fmt.Errorf("clone %s: %w", src, err)
		}
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("idmap %s (its file system must support idmapped mounts): %w", src, err)
		}
		return fd, nil
	}
	switch m.Type {
	case "bind":
		fd, err := clone(m.Source)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if slices.Contains(m.Options, "ro") {
			if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
				return fmt.Errorf("make %s read-only: %w", m.Source, err)
			}
		}
		if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("attach the idmapped %s on %s: %w", m.Source, target, err)
		}
		return nil
	case "overlay":
	default:
		return fmt.Errorf("idmapped root file system: mount type %q is neither bind nor overlay", m.Type)
	}
	var lowers []string
	var opts []string
	upper := ""
	for _, o := range m.Options {
		switch k, v, _ := strings.Cut(o, "="); k {
		case "lowerdir":
			lowers = strings.Split(v, ":")
		case "upperdir":
			upper = v
			opts = append(opts, o)
		default:
			opts = append(opts, o)
		}
	}
	if len(lowers) == 0 {
		return fmt.Errorf("idmapped root file system: the overlay has no lowerdir")
	}
	if upper != "" {
		if err := os.Lchown(upper, uid, gid); err != nil {
			return fmt.Errorf("give the upper directory to the pod's root: %w", err)
		}
	}
	scratch, err := os.MkdirTemp(filepath.Dir(target), "idmap-")
	if err != nil {
		return err
	}
	var attached []string
	defer func() {
		// The overlay holds the layers it was given; their mount
		// points are not needed after the mount (or after a failure).
		for _, p := range attached {
			unix.Unmount(p, unix.MNT_DETACH)
		}
		os.RemoveAll(scratch)
	}()
	mapped := make([]string, len(lowers))
	for i, l := range lowers {
		fd, err := clone(l)
		if err != nil {
			return err
		}
		p := filepath.Join(scratch, strconv.Itoa(i))
		err = os.Mkdir(p, 0o700)
		if err == nil {
			err = unix.MoveMount(fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("attach the idmapped layer %s: %w", l, err)
		}
		attached = append(attached, p)
		mapped[i] = p
	}
	opts = append(opts, "lowerdir="+strings.Join(mapped, ":"))
	var flags uintptr
	data := opts[:0:0]
	for _, o := range opts {
		switch o {
		case "ro":
			flags |= unix.MS_RDONLY
		case "rw":
		default:
			data = append(data, o)
		}
	}
	if err := unix.Mount("overlay", target, "overlay", flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount the overlay of idmapped layers on %s: %w", target, err)
	}
	return nil
}

// ProbeUserNS says whether sandboxes with a user namespace work here: the
// monitor runs as an unmapped user in a new user namespace (the holder of
// the pod's namespaces), and the image store's file system takes idmapped
// mounts. It makes and removes a throwaway namespace, so callers cache it.
func (e *Engine) ProbeUserNS(ctx context.Context) error {
	if e.opts.MonitorBin == "" {
		return fmt.Errorf("berth-monitor was not found")
	}
	probe := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65536 * 2, Size: 65536}}
	cmd := exec.CommandContext(ctx, e.opts.MonitorBin, "--pause", "userns-probe")
	cmd.Dir, cmd.Env = "/", []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, UidMappings: probe, GidMappings: probe}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s in a user namespace: %w", e.opts.MonitorBin, err)
	}
	userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	cmd.Process.Kill()
	cmd.Wait()
	if err != nil {
		return fmt.Errorf("open the probe's user namespace: %w", err)
	}
	defer userns.Close()
	fd, err := unix.OpenTree(unix.AT_FDCWD, e.opts.Root, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("clone %s: %w", e.opts.Root, err)
	}
	// Closing the detached clone unmounts it.
	defer unix.Close(fd)
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}); err != nil {
		return fmt.Errorf("the file system of %s takes no idmapped mounts: %w", e.opts.Root, err)
	}
	return nil
}
