package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/runtime/initproc"
	"github.com/berth-project/berth/internal/seccomp"
)

// Runtime is berth-runtime's view of one state root.
type Runtime struct {
	Root          string
	SystemdCgroup bool
	Rootless      bool
	Log           *slog.Logger
}

// New returns a Runtime over root. It makes the calling process a child
// subreaper, so that inits and exec'd processes whose setup parent exited
// are reaped by it (for `run` and `exec` in the foreground) or handed on to
// the caller's own subreaper when it exits.
func New(root string, log *slog.Logger) (*Runtime, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become subreaper: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runtime{Root: root, Log: log}, nil
}

// CreateOptions are the flags of `create` and `run`.
type CreateOptions struct {
	Bundle        string
	PidFile       string
	ConsoleSocket string
	ConsoleFile   *os.File // instead of ConsoleSocket: an already connected socket
	// PidfdSocket is a unix socket that gets a pidfd of the init once it
	// is created (runc 1.2's --pidfd-socket).
	PidfdSocket  string
	NoPivot      bool
	NoNewKeyring bool
	PreserveFds  int
	Stdio        [3]*os.File
	// Prespawn is the init stage berth-runtime started before its Go
	// runtime, adopted when it fits the spec (the caller discards it
	// after otherwise).
	Prespawn *Prespawn
}

// Create sets up a container and leaves its init waiting for Start.
func (r *Runtime) Create(ctx context.Context, id string, opt CreateOptions) (retErr error) {
	if err := checkID(id); err != nil {
		return err
	}
	bundle, err := filepath.Abs(opt.Bundle)
	if err != nil {
		return err
	}
	spec, err := oci.LoadBundle(bundle)
	if err != nil {
		return err
	}
	var filter <-chan compiledFilter
	if spec.Linux.Seccomp != nil {
		if err := seccomp.Validate(spec.Linux.Seccomp); err != nil {
			return err
		}
		filter = compileSeccompAsync(spec.Linux.Seccomp)
	}
	if spec.Process.Terminal && opt.ConsoleSocket == "" && opt.ConsoleFile == nil {
		return errors.New("process.terminal is true but no --console-socket was given to receive the terminal")
	}
	cg, err := cgroups.New(cgroups.Config{ID: id, CgroupsPath: spec.Linux.CgroupsPath, Systemd: r.SystemdCgroup, Rootless: r.Rootless, Resources: spec.Linux.Resources, Annotations: spec.Annotations})
	if err != nil {
		return err
	}
	// Before anything is made: the frozen cgroup is someone else's, and a
	// failed create removes the cgroup it made.
	if err := checkNotFrozen(cg); err != nil {
		return err
	}
	if err := checkCgroupEmpty(cg); err != nil {
		return err
	}
	dir, err := r.makeStateDir(id)
	if err != nil {
		return err
	}
	hostMnt := initproc.UsesHostMountNS(spec)
	var mntBefore uint64
	if hostMnt {
		if mntBefore, err = mountIDOf(spec.Root.Path); err != nil {
			os.Remove(dir)
			return fmt.Errorf("root.path: %w", err)
		}
	}
	var c *child
	defer func() {
		if retErr == nil {
			return
		}
		if c != nil {
			unix.Kill(c.pid, unix.SIGKILL)
			killCgroup(cg) // thaws it too: a frozen init cannot die
			reapBounded(c.pid, reapTimeout)
			c.sock.Close()
		}
		killCgroup(cg)
		cg.Destroy()
		if hostMnt {
			detachNewHostMount(spec.Root.Path, mntBefore)
		}
		os.RemoveAll(dir)
	}()
	// With the systemd driver the limits become the scope's start
	// properties, so they are given before the init joins it; a limit the
	// host refuses fails here, before any process runs. A cgroupfs
	// directory is made when the init joins it (spawn) and the limits
	// are written after, as runc does, while the init starts its Go
	// runtime: the two overlap instead of adding up. A value that cannot
	// be converted still fails before anything runs.
	if r.SystemdCgroup {
		if err := cg.Apply(-1); err != nil {
			return err
		}
		if err := cg.Set(spec.Linux.Resources); err != nil {
			return err
		}
	} else if _, err := cgroups.ConvertResources(spec.Linux.Resources); err != nil {
		return err
	}
	fifoFd, err := makeExecFifo(dir)
	if err != nil {
		return err
	}
	fifo := os.NewFile(uintptr(fifoFd), fifoName)
	defer fifo.Close()
	var console *os.File
	if spec.Process.Terminal && opt.ConsoleFile != nil {
		console = opt.ConsoleFile
	} else if spec.Process.Terminal {
		console, err = dialConsole(opt.ConsoleSocket)
		if err != nil {
			return err
		}
		defer console.Close()
	}
	var pidfdSock *os.File
	if opt.PidfdSocket != "" {
		if pidfdSock, err = dialPidfdSocket(opt.PidfdSocket); err != nil {
			return err
		}
		defer pidfdSock.Close()
	}
	join, clone, err := namespacePlan(spec.Linux.Namespaces)
	if err != nil {
		return err
	}
	mountFiles, lateMounts, err := idmapMounts(spec, bundle)
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range mountFiles {
			f.Close()
		}
	}()
	p := &persisted{
		ID: id, Bundle: bundle, Rootfs: spec.Root.Path, Created: time.Now().UTC(),
		Owner: ownerName(), Spec: spec, Systemd: r.SystemdCgroup, Rootless: r.Rootless,
		CgroupPaths: cg.Paths(),
	}
	cfg := &initproc.Config{
		// No Process: the init of a container takes spec.Process, and
		// the config goes through JSON once less.
		ID: id, Bundle: bundle, Spec: spec,
		NoPivot: opt.NoPivot, NoNewKeyring: opt.NoNewKeyring, CgroupPaths: p.CgroupPaths,
		// One exchange with the init less where it would carry nothing:
		// the init then reports ready without waiting for us, and the
		// limits written below are still in place before create returns,
		// so before start can run the container's process.
		NoHooksWait: !hostMnt && filter == nil && !hooksAroundPivot(spec.Hooks),
	}
	var setLimits func() error
	if !r.SystemdCgroup {
		// Written while the init starts its Go runtime, before it has
		// its config: so before it makes any device node. Rewriting the
		// device rules passes through "deny all" (v1), which would fail
		// a mknod that met it; and the container's process cannot run
		// before start, which cannot come before create returns.
		setLimits = func() error { return cg.Set(spec.Linux.Resources) }
	}
	c, err = spawn(spawnOptions{
		join: join, clone: clone, uidMaps: spec.Linux.UIDMappings, gidMaps: spec.Linux.GIDMappings,
		timeOffsets: spec.Linux.TimeOffsets, joinCgroup: cg.Apply, oomScoreAdj: spec.Process.OOMScoreAdj,
		stdio: opt.Stdio, preserveFds: opt.PreserveFds, fifo: fifo, console: console,
		mountFiles: mountFiles, lateMounts: lateMounts, message: &initproc.Message{Type: initproc.MsgConfig, Config: cfg},
		beforeConfig: setLimits, prespawn: opt.Prespawn,
	})
	if err != nil {
		return err
	}
	if opt.Prespawn != nil {
		r.Log.Debug("create: the init stage started before the Go runtime", "adopted", opt.Prespawn.Adopted)
	}
	p.Pid = c.pid
	p.StartTime, _, _ = procStartTime(c.pid)
	if !hostMnt {
		if err := r.save(p); err != nil {
			return err
		}
		if err := r.writeFastPath(p); err != nil {
			return err
		}
	}
	if cfg.NoHooksWait {
		c.deadline(initStepTimeout)
	} else if err := r.createHooks(c, p, hostMnt, mntBefore, filter); err != nil {
		return err
	}
	if err := r.waitReady(ctx, c, p); err != nil {
		return err
	}
	c.sock.Close()
	if pidfdSock != nil {
		if err := sendPidfd(pidfdSock, c.pid, "standard"); err != nil {
			return err
		}
	}
	if opt.PidFile != "" {
		if err := writePidFile(opt.PidFile, c.pid); err != nil {
			return err
		}
	}
	return nil
}

// createHooks is the exchange with the init between its mounts and its
// pivot_root: the prestart and createRuntime hooks run here, and the init
// gets the state for its own hooks and the compiled seccomp filter.
func (r *Runtime) createHooks(c *child, p *persisted, hostMnt bool, mntBefore uint64, filter <-chan compiledFilter) (err error) {
	spec := p.Spec
	// The init needs its own pid as hook state; it learns it from us.
	c.deadline(initStepTimeout)
	if _, err := c.expect(initproc.ReplyHooks); err != nil {
		return err
	}
	if hostMnt {
		// The init has bound the rootfs on itself and mounted the
		// config's mounts under it, in our mount namespace. No fast
		// path: its delete does not detach mounts.
		if p.HostMountID, err = mountIDOf(spec.Root.Path); err != nil {
			return err
		}
		if p.HostMountID == mntBefore {
			return errors.New("root.path: the init made no mount of the rootfs")
		}
		if err := r.save(p); err != nil {
			return err
		}
	}
	// runtime-spec 1.3 runtime.md: "created" is the status "after step 2
	// in the lifecycle", and the prestart, createRuntime and
	// createContainer hooks are steps 3 to 5, after the environment is
	// made (step 2): they see "created" (runtime-tools hooks_stdin).
	// "creating" is step 2 itself, which no hook runs in. runc passes
	// "creating" to the first two.
	if spec.Hooks != nil {
		st := p.specState(specs.StateCreated)
		if err := initproc.RunHooks(spec.Hooks.Prestart, "prestart", st); err != nil {
			return r.hookFailed(p, err)
		}
		if err := initproc.RunHooks(spec.Hooks.CreateRuntime, "createRuntime", st); err != nil {
			return r.hookFailed(p, err)
		}
	}
	// The init only needs the state and the filter from here on.
	done := &initproc.Config{State: p.specState(specs.StateCreated)}
	if filter != nil {
		if done.Seccomp, err = (<-filter).get(); err != nil {
			return err
		}
	}
	// The init runs the createContainer hooks before it is ready.
	var inInit []specs.Hook
	if spec.Hooks != nil {
		inInit = spec.Hooks.CreateContainer
	}
	c.deadline(initStepTimeout + initproc.HooksBound(inInit))
	if err := c.send(&initproc.Message{Type: initproc.MsgHooksDone, Config: done}); err != nil {
		return err
	}
	return nil
}

// hooksAroundPivot says whether h has hooks that run between the init's
// mounts and its exec (prestart, createRuntime, createContainer) or that
// the init runs with the state it gets from the runtime (startContainer).
func hooksAroundPivot(h *specs.Hooks) bool {
	return h != nil && len(h.Prestart)+len(h.CreateRuntime)+len(h.CreateContainer)+len(h.StartContainer) > 0
}

// hookFailed runs the poststop hooks, as the spec's lifecycle continues at
// delete after a failed creation hook, and returns the hook's error.
func (r *Runtime) hookFailed(p *persisted, err error) error {
	if p.Spec.Hooks != nil {
		if perr := initproc.RunHooks(p.Spec.Hooks.Poststop, "poststop", p.specState(specs.StateStopped)); perr != nil {
			r.Log.Warn("poststop hook failed", "error", perr)
		}
	}
	return err
}

// waitReady serves the init until it reports ready: a seccomp listener fd
// is taken from it with pidfd_getfd and handed to the listener.
func (r *Runtime) waitReady(ctx context.Context, c *child, p *persisted) error {
	for {
		m, err := c.recv()
		if err != nil {
			return err
		}
		switch m.Type {
		case initproc.ReplyReady:
			return nil
		case initproc.ReplySeccomp:
			if err := r.passListener(ctx, c.pid, m.Fd, p); err != nil {
				return err
			}
			if err := c.send(&initproc.Message{Type: initproc.MsgHooksDone}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("init sent %q, expected ready", m.Type)
		}
	}
}

func (r *Runtime) passListener(ctx context.Context, pid, fd int, p *persisted) error {
	// The listener is the caller's; one that never accepts must not hang
	// the create.
	ctx, cancel := context.WithTimeout(ctx, initStepTimeout)
	defer cancel()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("seccomp listener: %w", err)
	}
	defer unix.Close(pidfd)
	local, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return fmt.Errorf("seccomp listener: take fd from init: %w", err)
	}
	defer unix.Close(local)
	sc := p.Spec.Linux.Seccomp
	state := specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{specs.SeccompFdName},
		Pid:      pid,
		Metadata: sc.ListenerMetadata,
		State:    p.specState(specs.StateCreating),
	}
	return seccomp.SendListener(ctx, sc.ListenerPath, local, sc.ListenerMetadata, state)
}

func dialConsole(path string) (*os.File, error) {
	return dialSocket("--console-socket", path)
}

// namespacePlan splits the spec's namespaces into ones to join and flags of
// ones to create.
func namespacePlan(nss []specs.LinuxNamespace) ([]nsJoin, uintptr, error) {
	flags := map[specs.LinuxNamespaceType]uintptr{
		specs.PIDNamespace: unix.CLONE_NEWPID, specs.NetworkNamespace: unix.CLONE_NEWNET,
		specs.MountNamespace: unix.CLONE_NEWNS, specs.IPCNamespace: unix.CLONE_NEWIPC,
		specs.UTSNamespace: unix.CLONE_NEWUTS, specs.UserNamespace: unix.CLONE_NEWUSER,
		specs.CgroupNamespace: unix.CLONE_NEWCGROUP, specs.TimeNamespace: unix.CLONE_NEWTIME,
	}
	var join []nsJoin
	var clone uintptr
	for _, ns := range nss {
		name, _ := oci.NamespaceProcName(ns.Type)
		if ns.Path != "" {
			join = append(join, nsJoin{name: name, path: ns.Path})
		} else {
			clone |= flags[ns.Type]
		}
	}
	return join, clone, nil
}

// makeStateDir makes the container's state directory, which only one
// create of an id can do.
func (r *Runtime) makeStateDir(id string) (string, error) {
	if err := os.MkdirAll(r.Root, 0o700); err != nil {
		return "", fmt.Errorf("state root %s: %w", r.Root, err)
	}
	dir := r.dir(id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("container with id %q already exists", id)
		}
		return "", fmt.Errorf("state directory: %w", err)
	}
	return dir, nil
}

// makeExecFifo makes the exec fifo in the state directory dir and returns
// an O_PATH fd of it, which the init opens for writing to wait for start.
func makeExecFifo(dir string) (int, error) {
	path := filepath.Join(dir, fifoName)
	// Writable by anyone: the init opens it after switching to the
	// container's user. Only the holder of the init's fd reaches it.
	if err := unix.Mkfifo(path, 0o622); err != nil {
		return -1, fmt.Errorf("exec fifo: %w", err)
	}
	if err := os.Chmod(path, 0o622); err != nil {
		return -1, fmt.Errorf("exec fifo: %w", err)
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("exec fifo: %w", err)
	}
	return fd, nil
}

func writePidFile(path string, pid int) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".pid-")
	if err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	defer os.Remove(tmp.Name())
	fmt.Fprintf(tmp, "%d", pid)
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	return nil
}

// Start lets a created container's init exec the user's process.
func (r *Runtime) Start(ctx context.Context, id string) error {
	p, err := r.loadLifecycle(id)
	if err != nil {
		return err
	}
	switch st := r.status(p); st {
	case specs.StateCreated:
	case specs.StateStopped:
		return errors.New("cannot start a container that has stopped")
	default:
		return fmt.Errorf("cannot start a container in status %q (not created)", st)
	}
	// Before the fifo is opened: once it is, the init goes on, and an
	// answer we stop waiting for kills it (EPIPE).
	if cgroupPathsFrozen(p.CgroupPaths) {
		return errFrozenStart
	}
	fifoPath := filepath.Join(r.dir(id), fifoName)
	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(fifoPath, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			opened <- f
		}
	}()
	var f *os.File
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for f == nil {
		select {
		case f = <-opened:
		case <-tick.C:
			if processAlive(p.Pid, p.StartTime) {
				continue
			}
			// A short-lived process may already have run and exited;
			// its init opened the fifo, so our open is about to return.
			select {
			case f = <-opened:
			case <-time.After(200 * time.Millisecond):
				return errors.New("container init exited before start")
			}
		}
	}
	// The init writes "0" when it is about to exec, or why it is not
	// (a failed startContainer hook), then closes. It runs those hooks
	// first, so the wait is theirs plus a step; a frozen init would never
	// write, so that is checked while waiting.
	var hooks []specs.Hook
	if p.Spec.Hooks != nil {
		hooks = p.Spec.Hooks.StartContainer
	}
	msg, err := readStartReply(f, initStepTimeout+initproc.HooksBound(hooks), func() error {
		if !processAlive(p.Pid, p.StartTime) {
			return errors.New("container init exited before start")
		}
		if cgroupPathsFrozen(p.CgroupPaths) {
			return errFrozenStart
		}
		return nil
	})
	f.Close()
	if err != nil {
		return err
	}
	if len(msg) == 0 {
		return errors.New("container init exited before start")
	}
	if string(msg) != "0" {
		signalProcess(p.Pid, p.StartTime, unix.SIGKILL)
		os.Remove(fifoPath)
		return errors.New(strings.TrimPrefix(string(msg), "1"))
	}
	if err := os.Remove(fifoPath); err != nil {
		return fmt.Errorf("remove exec fifo: %w", err)
	}
	if p.Spec.Hooks != nil {
		if err := initproc.RunHooks(p.Spec.Hooks.Poststart, "poststart", p.specState(specs.StateRunning)); err != nil {
			// runtime-spec 1.3 (runtime.md, lifecycle step 9): a failed
			// poststart hook MUST generate an error and stop the
			// container; its destruction (delete) follows, as after
			// the other hooks (runc 1.3 does the same; older specs made
			// it a warning). Stopped as kill does it: in a container
			// without its own pid namespace, every process of its cgroup.
			if kerr := r.Kill(ctx, id, unix.SIGKILL, false); kerr != nil {
				r.Log.Warn("stop the container after its poststart hook failed", "error", kerr)
			}
			return err
		}
	}
	return nil
}

var errFrozenStart = errors.New("cannot start a container whose cgroup is frozen (paused from outside the runtime?): resume or thaw it first")

// readStartReply reads the init's answer on exec.fifo until EOF, for at
// most bound, calling check every so often; check's error ends the wait.
func readStartReply(f *os.File, bound time.Duration, check func() error) ([]byte, error) {
	end := time.Now().Add(bound)
	var msg []byte
	buf := make([]byte, 4096)
	for {
		f.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := f.Read(buf)
		msg = append(msg, buf[:n]...)
		switch {
		case err == io.EOF:
			return msg, nil
		case isTimeout(err):
			if time.Now().After(end) {
				return nil, fmt.Errorf("container init did not answer start within %s", bound)
			}
			if err := check(); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, fmt.Errorf("read exec fifo: %w", err)
		}
	}
}

// State reports a container's state.
func (r *Runtime) State(ctx context.Context, id string) (*State, error) {
	p, err := r.load(id)
	if err != nil {
		return nil, err
	}
	return r.publicState(p), nil
}

// List reports every container under the root.
func (r *Runtime) List(ctx context.Context) ([]*State, error) {
	entries, err := os.ReadDir(r.Root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*State
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p, err := r.load(e.Name())
		if err != nil {
			continue
		}
		out = append(out, r.publicState(p))
	}
	return out, nil
}

// Kill sends sig to the container's init, or with all to every process in
// its cgroup.
func (r *Runtime) Kill(ctx context.Context, id string, sig unix.Signal, all bool) error {
	p, err := r.load(id)
	if err != nil {
		return err
	}
	st := r.status(p)
	if sig == unix.SIGKILL && !ownPidNamespace(p.Spec) {
		// Without a pid namespace of its own, the init's death does not
		// take the container's other processes with it: kill every
		// process of the cgroup, even once the init is gone, as runc
		// ≥ 1.2 does (kill.bats "kill KILL [host pidns]").
		if cg, err := r.cgroupOf(p); err == nil && cg.Exists() {
			err := signalCgroup(cg, sig)
			if frozenNow(cg) {
				cg.Freeze(false)
			}
			return err
		}
	}
	if st == specs.StateStopped {
		if all {
			// Processes of a container without its own pid namespace
			// may outlive the init.
			if cg, err := r.cgroupOf(p); err == nil {
				return signalCgroup(cg, sig)
			}
		}
		return errors.New("container not running")
	}
	var cg *cgroups.Manager
	if all || sig == unix.SIGKILL {
		if cg, err = r.cgroupOf(p); err != nil && all {
			return err
		}
	}
	if all {
		err = signalCgroup(cg, sig)
	} else {
		err = signalProcess(p.Pid, p.StartTime, sig)
	}
	if err == nil && sig == unix.SIGKILL && cg != nil {
		// A frozen process cannot die: thaw a paused container after
		// SIGKILL, as runc does, so that it ends without a resume.
		if frozenNow(cg) {
			cg.Freeze(false)
		}
	}
	return err
}

// ownPidNamespace says whether the container gets a pid namespace of its
// own (one without a path to join), whose init takes every other process
// with it when it dies.
func ownPidNamespace(spec *specs.Spec) bool {
	if spec == nil || spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			return ns.Path == ""
		}
	}
	return false
}

// signalProcess signals pid through a pidfd after checking the start time,
// so a recycled pid never gets a signal meant for the container.
func signalProcess(pid int, start uint64, sig unix.Signal) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("container not running: %w", err)
	}
	defer unix.Close(pidfd)
	if !processAlive(pid, start) {
		return errors.New("container not running")
	}
	if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil {
		return fmt.Errorf("signal %d to %d: %w", sig, pid, err)
	}
	return nil
}

func signalCgroup(cg *cgroups.Manager, sig unix.Signal) error {
	// Freeze so that nothing forks past the signal, as runc does; a
	// container that was paused already stays paused.
	wasFrozen := frozenNow(cg)
	froze := !wasFrozen && cg.Freeze(true) == nil
	pids, err := cg.Pids()
	for _, pid := range pids {
		unix.Kill(pid, sig)
	}
	if froze {
		cg.Freeze(false)
	}
	return err
}

func killCgroup(cg *cgroups.Manager) {
	if cg == nil || !cg.Exists() {
		return
	}
	for i := 0; i < 100; i++ {
		pids, err := cg.Pids()
		if err != nil || len(pids) == 0 {
			return
		}
		signalCgroup(cg, unix.SIGKILL)
		cg.Freeze(false) // frozen processes cannot die
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
}

func (r *Runtime) cgroupOf(p *persisted) (*cgroups.Manager, error) {
	var res *specs.LinuxResources
	path := ""
	if p.Spec != nil && p.Spec.Linux != nil {
		res, path = p.Spec.Linux.Resources, p.Spec.Linux.CgroupsPath
	}
	return cgroups.Load(cgroups.Config{ID: p.ID, CgroupsPath: path, Systemd: p.Systemd, Rootless: p.Rootless, Resources: res}, p.CgroupPaths)
}

// Delete removes a stopped (or created) container; with force it kills a
// running one first.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	p, err := r.loadLifecycle(id)
	if err != nil {
		if errors.Is(err, ErrNotExist) && force {
			// A half-made directory from a crashed create goes too.
			if checkID(id) == nil {
				os.RemoveAll(r.dir(id))
			}
			return nil
		}
		return err
	}
	unlock, err := lockDir(r.dir(id))
	if err != nil {
		return err
	}
	defer unlock()
	st := r.status(p)
	switch st {
	case specs.StateStopped, specs.StateCreated:
	default:
		if !force {
			return fmt.Errorf("cannot delete container %s that is not stopped: %s", id, st)
		}
	}
	cg, err := r.cgroupOf(p)
	if st != specs.StateStopped {
		if err == nil {
			cg.Freeze(false)
		}
		signalProcess(p.Pid, p.StartTime, unix.SIGKILL)
		waitGone(p.Pid, p.StartTime)
	}
	if err == nil {
		killCgroup(cg)
		if err := cg.Destroy(); err != nil {
			return err
		}
	}
	if err := detachHostMount(p.Rootfs, p.HostMountID); err != nil {
		return err
	}
	if err := os.RemoveAll(r.dir(id)); err != nil {
		return fmt.Errorf("remove state: %w", err)
	}
	if p.Spec.Hooks != nil {
		if err := initproc.RunHooks(p.Spec.Hooks.Poststop, "poststop", p.specState(specs.StateStopped)); err != nil {
			fmt.Fprintf(os.Stderr, "berth-runtime: warning: %v\n", err)
		}
	}
	return nil
}

// waitGone waits for a killed process to die (a zombie counts as dead; its
// parent, the caller's subreaper, reaps it).
func waitGone(pid int, start uint64) {
	for i := 0; i < 2000 && processAlive(pid, start); i++ {
		time.Sleep(time.Millisecond)
	}
}

// Pids lists the processes of a container.
func (r *Runtime) Pids(ctx context.Context, id string) ([]int, error) {
	p, err := r.load(id)
	if err != nil {
		return nil, err
	}
	cg, err := r.cgroupOf(p)
	if err != nil {
		return nil, err
	}
	return cg.Pids()
}

// Pause freezes every process of a running container; Resume thaws them.
func (r *Runtime) Pause(ctx context.Context, id string, pause bool) error {
	p, err := r.load(id)
	if err != nil {
		return err
	}
	st := r.status(p)
	if pause && st != specs.StateRunning {
		return fmt.Errorf("container %s is %s, not running", id, st)
	}
	if !pause && st != Paused {
		return fmt.Errorf("container %s is %s, not paused", id, st)
	}
	cg, err := r.cgroupOf(p)
	if err != nil {
		return err
	}
	return cg.Freeze(pause)
}

// Wait waits for a process that this runtime reaps (its child, or an
// orphan adopted as subreaper) and forwards the signals it receives to it;
// it returns the exit code as a shell reports it (128+signal).
func Wait(pid int, sigs <-chan os.Signal) int {
	if sigs != nil {
		go func() {
			for s := range sigs {
				if sig, ok := s.(unix.Signal); ok && sig != unix.SIGCHLD && sig != unix.SIGURG && sig != unix.SIGWINCH {
					unix.Kill(pid, sig)
				}
			}
		}()
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 255
		}
		break
	}
	// Reap the grandchildren we adopted on the way.
	for {
		var other unix.WaitStatus
		if p, err := unix.Wait4(-1, &other, unix.WNOHANG, nil); p <= 0 || err != nil {
			break
		}
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// CatchSignals starts catching every signal for a foreground run or exec,
// before the container exists: a signal that comes while the container is
// being made is then held and forwarded by Wait, not lost, and cannot kill
// the runtime and orphan the container. stop ends the catching.
func CatchSignals() (sigs chan os.Signal, stop func()) {
	sigs = make(chan os.Signal, 64)
	signal.Notify(sigs)
	return sigs, func() { signal.Stop(sigs); close(sigs) }
}

// ParseSignal accepts "KILL", "SIGKILL", "kill" and "9"; 0 checks that
// the container runs without signalling it, as kill(2) and runc take it.
func ParseSignal(s string) (unix.Signal, error) { return oci.ParseSignal(s) }

// ownerName is the user that created the container, as runc's list shows it.
func ownerName() string {
	u, err := user.LookupId(strconv.Itoa(os.Getuid()))
	if err != nil {
		return "#" + strconv.Itoa(os.Getuid())
	}
	return u.Username
}
