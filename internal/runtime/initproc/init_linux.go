package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/oci"
	seccompfilter "github.com/berth-project/berth/internal/seccomp/filter"
)

// Init is the container init: `berth-runtime init`, started by spawn after
// nsenter.c has put it into the container's namespaces. It never returns: it
// execs the container's process or exits after reporting an error to the
// runtime.
func Init() {
	ip := newInitProc()
	ip.exit(ip.run())
}

// newInitProc starts the init on its socket to the runtime.
func newInitProc() *initProc {
	// Capabilities, no_new_privs and the seccomp filter are per thread:
	// everything from here to execve happens on this one.
	goruntime.LockOSThread()
	fd, err := strconv.Atoi(os.Getenv(EnvInitPipe))
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-runtime init: not started by berth-runtime")
		os.Exit(1)
	}
	sock := os.NewFile(uintptr(fd), "init-sync")
	return &initProc{sock: sock, dec: json.NewDecoder(sock), enc: json.NewEncoder(sock)}
}

// exit ends an init whose setup failed with err: it tells the runtime why,
// or, once the runtime no longer listens, the container's stderr.
func (ip *initProc) exit(err error) {
	if err == nil {
		err = errors.New("init: the setup returned without running the container's process")
	}
	if ip.enc.Encode(Reply{Type: ReplyError, Error: err.Error()}) != nil {
		// After ready the runtime no longer listens: the container's
		// stderr is the only place left to say what went wrong.
		var ee *execError
		if errors.As(err, &ee) {
			// runc's bare "exec /run.sh: no such file or
			// directory", the line users and tests know.
			fmt.Fprintln(os.Stderr, err)
		} else {
			fmt.Fprintf(os.Stderr, "berth-runtime init: %v\n", err)
		}
	}
	os.Exit(execExitCode(err))
}

// execExitCode is the init's exit status when it fails: as a shell and
// Docker say, 127 when the program to exec is not there, 126 when it cannot
// be executed, else 1. It matters after `start`, when the runtime no longer
// listens and the exit status is all a caller (a monitor) has.
func execExitCode(err error) int {
	var ee *execError
	if !errors.As(err, &ee) {
		return 1
	}
	switch {
	case errors.Is(ee.err, unix.ENOENT), errors.Is(ee.err, unix.ENOTDIR):
		return 127
	default:
		return 126
	}
}

// execError is a failed execve of the container's process.
type execError struct {
	arg0 string
	err  error
}

func (e *execError) Error() string { return fmt.Sprintf("exec %s: %v", e.arg0, e.err) }
func (e *execError) Unwrap() error { return e.err }

type initProc struct {
	sock *os.File
	dec  *json.Decoder
	enc  *json.Encoder
	cfg  *Config
	// From the environment, which is cleared before the user's process.
	fifoFd, consoleFd string
	preserve          int
	// landlock, when the config asks for it (landlock_linux.go), is
	// enforced in finalize while the process may still do so.
	landlock *landlockRuleset
}

func (ip *initProc) run() error {
	var late []int
	if n, _ := strconv.Atoi(os.Getenv(EnvLateMounts)); n > 0 {
		var err error
		if late, err = recvFds(ip.sock, n); err != nil {
			return fmt.Errorf("read bind mounts: %w", err)
		}
	}
	// Started before the runtime read the spec (a prespawned stage), the
	// init gets its exec fifo by message instead of at its exec.
	prespawnFifo := ""
	if os.Getenv(EnvPrespawned) != "" {
		fds, err := recvFds(ip.sock, 1)
		if err != nil {
			return fmt.Errorf("read exec fifo: %w", err)
		}
		if len(fds) != 1 {
			return fmt.Errorf("init: %d exec fifos sent", len(fds))
		}
		prespawnFifo = strconv.Itoa(fds[0])
	}
	var msg Message
	if err := ip.dec.Decode(&msg); err != nil {
		return fmt.Errorf("read init config: %w", err)
	}
	if msg.Type != MsgConfig || msg.Config == nil {
		return fmt.Errorf("init: expected config, got %q", msg.Type)
	}
	if len(msg.Config.LateMounts) != len(late) {
		return fmt.Errorf("init: %d bind mounts sent for %d", len(late), len(msg.Config.LateMounts))
	}
	for i, idx := range msg.Config.LateMounts {
		if msg.Config.MountFds == nil {
			msg.Config.MountFds = map[int]int{}
		}
		msg.Config.MountFds[idx] = late[i]
	}
	msg.Config.Spec = msg.Config.Wire.spec()
	fifo := os.Getenv(EnvFifoFd)
	if prespawnFifo != "" {
		fifo = prespawnFifo
	}
	return ip.setup(msg.Config, fifo)
}

// setup runs cfg, with fifo the exec fifo's fd: a container's init or an
// exec'd process, whichever started it (run, InitSelf).
func (ip *initProc) setup(cfg *Config, fifo string) error {
	ip.cfg = cfg
	if cfg.CgroupNS {
		// Namespaces are per thread: this one, the main thread, whose
		// /proc/PID/ns/cgroup exec and the hooks see, does everything
		// up to execve.
		if unix.Gettid() != os.Getpid() {
			return errors.New("init: not on the main thread, so cannot make the cgroup namespace")
		}
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	ip.fifoFd = fifo
	ip.preserve, _ = strconv.Atoi(os.Getenv(EnvPreserve))
	ip.consoleFd = os.Getenv(EnvConsole)
	for _, k := range []string{EnvInitPipe, EnvFifoFd, EnvConsole, EnvPreserve, EnvLogFd, EnvLateMounts, EnvPrespawned, EnvSelfCreate} {
		os.Unsetenv(k)
	}
	if cfg.Exec {
		return ip.execProcess()
	}
	return ip.initContainer()
}

// recvFds reads the one message of at most n fds that the runtime sends
// on sock before the config (its data is one byte). The fds are close-on-exec.
func recvFds(sock *os.File, n int) ([]int, error) {
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4*n))
	var got, oobn int
	var err error
	for {
		got, oobn, _, _, err = unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if got != 1 {
		return nil, errors.New("the runtime closed the socket")
	}
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		f, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return nil, err
		}
		fds = append(fds, f...)
	}
	return fds, nil
}

func (ip *initProc) initContainer() error {
	spec := ip.cfg.Spec
	proc := spec.Process
	r := &rootfsSetup{spec: spec, cfg: ip.cfg}
	if err := r.prepare(); err != nil {
		return err
	}
	defer r.close()
	if !ip.cfg.NoHooksWait {
		if err := ip.waitHooks(); err != nil {
			return err
		}
	}
	// Hooks run inside the container see the init as the container does.
	ip.cfg.State.Pid = os.Getpid()
	if spec.Hooks != nil && len(spec.Hooks.CreateContainer) > 0 {
		// In the rootfs, as runc runs them: hooks use paths relative
		// to it (runc's hooks_so.bats binds "./lib/...").
		if err := unix.Chdir(r.rootfs); err != nil {
			return fmt.Errorf("root.path: %w", err)
		}
		if err := RunHooks(spec.Hooks.CreateContainer, "createContainer", ip.cfg.State); err != nil {
			return err
		}
	}
	if err := r.pivot(); err != nil {
		return err
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("domainname: %w", err)
		}
	}
	if err := writeSysctls(spec.Linux.Sysctl); err != nil {
		return err
	}
	if err := r.masks(); err != nil {
		return err
	}
	if !ip.cfg.NoNewKeyring {
		// A session keyring of its own, so the container cannot read
		// the host's keys (runc names it after the container).
		if _, err := unix.KeyctlJoinSessionKeyring(ip.cfg.ID); err != nil && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("join session keyring: %w", err)
		}
	}
	if err := ip.setupConsole(proc, true); err != nil {
		return err
	}
	fifo, err := strconv.Atoi(ip.fifoFd)
	if err != nil {
		fifo = -1
	}
	if ip.landlock, err = buildLandlock(spec.Annotations, fifo); err != nil {
		return err
	}
	filter, err := ip.seccompFilter(spec.Linux.Seccomp != nil)
	if err != nil {
		return err
	}
	return ip.finalize(proc, filter, true)
}

// waitHooks tells the runtime the mounts are done and waits while it runs
// the prestart and createRuntime hooks; its answer brings the state for
// the hooks the init runs and the compiled seccomp filter.
func (ip *initProc) waitHooks() error {
	if err := ip.enc.Encode(Reply{Type: ReplyHooks}); err != nil {
		return err
	}
	var msg Message
	if err := ip.dec.Decode(&msg); err != nil {
		return fmt.Errorf("wait for createRuntime hooks: %w", err)
	}
	if msg.Type != MsgHooksDone {
		return fmt.Errorf("init: expected %s, got %q", MsgHooksDone, msg.Type)
	}
	if msg.Config != nil {
		ip.cfg.State = msg.Config.State
		ip.cfg.Seccomp = msg.Config.Seccomp
	}
	return nil
}

// execProcess runs a further process in a running container: the namespaces
// were joined by nsenter.c, the cgroup by the runtime.
func (ip *initProc) execProcess() error {
	proc := ip.cfg.Process
	if ip.cfg.RootFd > 0 {
		if err := unix.Fchdir(ip.cfg.RootFd); err != nil {
			return fmt.Errorf("enter the container's root: %w", err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("enter the container's root: %w", err)
		}
		unix.Close(ip.cfg.RootFd)
	}
	if err := ip.setupConsole(proc, false); err != nil {
		return err
	}
	if ip.cfg.Spec != nil {
		var err error
		if ip.landlock, err = buildLandlock(ip.cfg.Spec.Annotations); err != nil {
			return err
		}
	}
	filter, err := ip.seccompFilter(ip.cfg.Spec != nil && ip.cfg.Spec.Linux != nil && ip.cfg.Spec.Linux.Seccomp != nil)
	if err != nil {
		return err
	}
	return ip.finalize(proc, filter, false)
}

// finalize applies the process's own settings and execs it. For a container
// init it first reports ready and waits on exec.fifo for `start`.
func (ip *initProc) finalize(proc *specs.Process, filter *seccompfilter.Program, waitStart bool) error {
	// The limits are set just before exec, so that a small RLIMIT_AS or
	// RLIMIT_NOFILE binds the user's process and not this Go one (whose
	// address space alone can exceed 1 GiB); hard limits that go up are
	// raised now, while we still hold CAP_SYS_RESOURCE if we ever will.
	if err := raiseHardRlimits(proc.Rlimits); err != nil {
		return err
	}
	var cpus string
	if l := ip.cfg.Spec.Linux; l != nil && l.Resources != nil && l.Resources.CPU != nil {
		cpus = l.Resources.CPU.Cpus
	}
	if err := applyScheduling(proc, cpus); err != nil {
		return err
	}
	env := processEnv(proc.Env, proc.User.UID)
	path, err := lookPath(proc.Args[0], env)
	if err != nil {
		return err
	}
	caps, err := newCaps(proc.Capabilities)
	if err != nil {
		return err
	}
	// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which
	// the process may be about to lose; a notify filter is loaded early
	// too, because its fd must reach the runtime before ready.
	early := filter != nil && (!proc.NoNewPrivileges || filter.HasListener())
	// The cwd is entered and checked before an early filter can refuse
	// the getcwd(2) the check needs; a directory only the container's
	// user may enter is tried again once we are that user, as runc does.
	cwdDone := false
	if err := chdirInRoot(proc.Cwd); err == nil {
		cwdDone = true
	} else if !errors.Is(err, os.ErrPermission) {
		return err
	}
	if err := chownStdio([]int{0, 1, 2}, int(proc.User.UID)); err != nil {
		return err
	}
	// Landlock before the filter (which may refuse its calls) and while
	// CAP_SYS_ADMIN is still held.
	if err := ip.landlock.restrict(); err != nil {
		return err
	}
	if early {
		// The filter may refuse setrlimit: set the limits before it.
		if err := applyRlimits(proc.Rlimits); err != nil {
			return err
		}
		if err := ip.loadSeccomp(filter); err != nil {
			return err
		}
	}
	if err := caps.applyBounding(); err != nil {
		return err
	}
	if err := setupUser(proc.User); err != nil {
		return err
	}
	if err := caps.apply(); err != nil {
		return err
	}
	if !cwdDone {
		if err := chdirInRoot(proc.Cwd); err != nil {
			return err
		}
	}
	if proc.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("process.noNewPrivileges: %w", err)
		}
	}
	if err := ip.enc.Encode(Reply{Type: ReplyReady}); err != nil {
		return err
	}
	ip.sock.Close()
	// startContainer hooks run in the container under its seccomp filter,
	// as runc runs them (runc seccomp.bats "runc run [seccomp]
	// (startContainer hook)"): with such hooks a late filter is loaded
	// before them, with the limits it may forbid setting first.
	if waitStart && filter != nil && !early && ip.cfg.Spec.Hooks != nil && len(ip.cfg.Spec.Hooks.StartContainer) > 0 {
		if err := applyRlimits(proc.Rlimits); err != nil {
			return err
		}
		if _, err := filter.Load(); err != nil {
			return fmt.Errorf("linux.seccomp: %w", err)
		}
		early = true
	}
	if waitStart {
		var hooks []specs.Hook
		if ip.cfg.Spec.Hooks != nil {
			// A startContainer hook without env of its own gets the
			// process's, as runc has always given it.
			for _, h := range ip.cfg.Spec.Hooks.StartContainer {
				if h.Env == nil {
					h.Env = env
				}
				hooks = append(hooks, h)
			}
		}
		if len(hooks) > 0 {
			// The hooks get stdio and nothing of the runtime's
			// (runc seccomp-notify.bats "(SCMP_ACT_NOTIFY
			// startContainer hook)" counts their fds).
			closeExecFrom(3 + ip.preserve)
		}
		st := ip.cfg.State
		st.Status = specs.StateCreated
		fifo, err := waitForStart(ip.fifoFd, hooks, st)
		if err != nil {
			return err
		}
		// Kept open (close-on-exec) so that `start` sees EOF only at
		// execve: the container is "running", and poststart hooks run,
		// once the user's program is.
		defer goruntime.KeepAlive(fifo)
	}
	if !early {
		if err := applyRlimits(proc.Rlimits); err != nil {
			return err
		}
	}
	if filter != nil && !early {
		if _, err := filter.Load(); err != nil {
			return fmt.Errorf("linux.seccomp: %w", err)
		}
	}
	// Nothing of the runtime's may reach the process (CVE-2024-21626):
	// every descriptor past stdio and the preserved ones closes on exec.
	closeExecFrom(3 + ip.preserve)
	umask(proc.User.Umask)
	if err := unix.Exec(path, proc.Args, env); err != nil {
		return &execError{arg0: proc.Args[0], err: err}
	}
	return nil
}

// seccompFilter decodes the filter the runtime compiled; want says the
// config has linux.seccomp, and then a missing filter is an error: the
// container never runs without the filter it asked for.
func (ip *initProc) seccompFilter(want bool) (*seccompfilter.Program, error) {
	if !want {
		return nil, nil
	}
	if len(ip.cfg.Seccomp) == 0 {
		return nil, errors.New("linux.seccomp: the runtime sent no compiled filter")
	}
	filter, err := seccompfilter.Unmarshal(ip.cfg.Seccomp)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %w", err)
	}
	return filter, nil
}

func (ip *initProc) loadSeccomp(filter *seccompfilter.Program) error {
	fd, err := filter.Load()
	if err != nil {
		return fmt.Errorf("linux.seccomp: %w", err)
	}
	if fd >= 0 {
		// The runtime takes the fd with pidfd_getfd and passes it to
		// the listener, which this process cannot reach from inside.
		if err := ip.enc.Encode(Reply{Type: ReplySeccomp, Fd: fd}); err != nil {
			return err
		}
		var m Message
		if err := ip.dec.Decode(&m); err != nil {
			return fmt.Errorf("wait for seccomp listener: %w", err)
		}
		unix.Close(fd)
	}
	return nil
}

// waitForStart blocks until `start` opens exec.fifo for reading, runs the
// startContainer hooks, and tells `start` the outcome through the fifo:
// "0" to go on, or "1" and the hook's error, which `start` reports.
func waitForStart(fd string, hooks []specs.Hook, st specs.State) (*os.File, error) {
	if fd == "" {
		return nil, errors.New("no exec fifo")
	}
	f, err := os.OpenFile("/proc/self/fd/"+fd, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open exec fifo: %w", err)
	}
	if err := RunHooks(hooks, "startContainer", st); err != nil {
		f.Write([]byte("1" + err.Error()))
		f.Close()
		return nil, err
	}
	if _, err := f.Write([]byte("0")); err != nil {
		f.Close()
		return nil, fmt.Errorf("write exec fifo: %w", err)
	}
	return f, nil
}

// processEnv is the environment the process gets, as runc gives it: one
// entry per name, the last one winning, and HOME, when unset or empty,
// taken from the user's entry in the container's /etc/passwd ("/" if none).
func processEnv(in []string, uid uint32) []string {
	var out []string
	at := map[string]int{}
	for _, kv := range in {
		name, _, _ := strings.Cut(kv, "=")
		if i, ok := at[name]; ok {
			out[i] = kv
			continue
		}
		at[name] = len(out)
		out = append(out, kv)
	}
	if i, ok := at["HOME"]; ok && out[i] != "HOME=" {
		return out
	}
	home := "HOME=" + passwdHome(uid)
	if i, ok := at["HOME"]; ok {
		out[i] = home
	} else {
		out = append(out, home)
	}
	return out
}

// passwdHome reads the home directory of uid from /etc/passwd (the
// container's: this runs after pivot_root), or "/".
func passwdHome(uid uint32) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return "/"
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 6 && f[2] == strconv.FormatUint(uint64(uid), 10) && f[5] != "" {
			return f[5]
		}
	}
	return "/"
}

// lookPath resolves the program inside the container now, so that a missing
// binary fails `create` with a clear error instead of the started process.
func lookPath(arg0 string, env []string) (string, error) {
	if strings.Contains(arg0, "/") {
		fi, err := os.Stat(arg0)
		if err != nil {
			return "", fmt.Errorf("process.args[0]: %s: %w", arg0, err)
		}
		// A directory or a file nobody may execute fails create, as in
		// runc, not the started process.
		if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("process.args[0]: exec %s: %w", arg0, os.ErrPermission)
		}
		return arg0, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, arg0)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("process.args[0]: %q: %w", arg0, exec.ErrNotFound)
}

func chdirInRoot(cwd string) error {
	if err := os.Chdir(cwd); err != nil {
		return fmt.Errorf("process.cwd %s: %w", cwd, err)
	}
	// A cwd outside the root (through a leaked fd, CVE-2024-21626) makes
	// getcwd(2) answer a path that does not start with '/'.
	wd, err := unix.Getwd()
	if err != nil || !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("process.cwd %s: resolves outside the container's root", cwd)
	}
	return nil
}

// raiseHardRlimits raises the hard limits that the config sets above the
// current ones, keeping the soft limits (see applyRlimits).
func raiseHardRlimits(limits []specs.POSIXRlimit) error {
	for _, l := range limits {
		res, _ := oci.RlimitResource(l.Type)
		var cur unix.Rlimit
		if err := unix.Getrlimit(res, &cur); err != nil {
			return fmt.Errorf("process.rlimits %s: %w", l.Type, err)
		}
		if l.Hard <= cur.Max {
			continue
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: cur.Cur, Max: l.Hard}); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("process.rlimits %s: raising the hard limit from %d to %d needs CAP_SYS_RESOURCE, which this host withholds", l.Type, cur.Max, l.Hard)
			}
			return fmt.Errorf("process.rlimits %s: %w", l.Type, err)
		}
	}
	return nil
}

func applyRlimits(limits []specs.POSIXRlimit) error {
	for _, l := range limits {
		res, _ := oci.RlimitResource(l.Type)
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}); err != nil {
			if errors.Is(err, unix.EPERM) {
				var cur unix.Rlimit
				unix.Getrlimit(res, &cur)
				return fmt.Errorf("process.rlimits %s: raising the hard limit from %d to %d needs CAP_SYS_RESOURCE, which this host withholds", l.Type, cur.Max, l.Hard)
			}
			return fmt.Errorf("process.rlimits %s: %w", l.Type, err)
		}
	}
	return nil
}

// applyScheduling sets the process's I/O priority and scheduler; cpus is
// the container's linux.resources.cpu.cpus, for the error of a scheduler
// the kernel refuses because of it.
func applyScheduling(proc *specs.Process, cpus string) error {
	if proc.IOPriority != nil {
		class := map[specs.IOPriorityClass]int{specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3}[proc.IOPriority.Class]
		prio := class<<13 | proc.IOPriority.Priority
		// ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)
		if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, 1, 0, uintptr(prio)); e != 0 {
			return fmt.Errorf("process.ioPriority: %w", e)
		}
	}
	if s := proc.Scheduler; s != nil {
		policy, _ := oci.SchedPolicy(s.Policy)
		attr := &unix.SchedAttr{
			Size:     unix.SizeofSchedAttr,
			Policy:   uint32(policy),
			Nice:     s.Nice,
			Priority: uint32(s.Priority),
			Runtime:  s.Runtime,
			Deadline: s.Deadline,
			Period:   s.Period,
		}
		for _, f := range s.Flags {
			attr.Flags |= schedFlags[f]
		}
		if err := unix.SchedSetAttr(0, attr, 0); err != nil {
			if errors.Is(err, unix.EPERM) && cpus != "" {
				// The kernel allows a deadline task only CPUs that are
				// its whole root domain; runc's words, which callers
				// and runc's scheduler.bats look for.
				return fmt.Errorf("process.scheduler: %s: process scheduler can't be used together with AllowedCPUs (linux.resources.cpu.cpus %q): %w", s.Policy, cpus, err)
			}
			return fmt.Errorf("process.scheduler: %w", err)
		}
	}
	return nil
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork:  0x01,
	specs.SchedFlagReclaim:      0x02,
	specs.SchedFlagDLOverrun:    0x04,
	specs.SchedFlagKeepPolicy:   0x08,
	specs.SchedFlagKeepParams:   0x10,
	specs.SchedFlagUtilClampMin: 0x20,
	specs.SchedFlagUtilClampMax: 0x40,
}

// chownStdio gives the process's user its stdio pipes, sockets and pty
// (the gid stays: devpts makes ptys group tty), as runc does, so that a
// process that is not root can reopen them (/dev/stdout, /proc/self/fd/1,
// `tty`) and own its terminal (runc tty.bats "tty owner ({u,g}id != 0)").
// Unlike runc it leaves regular files and other devices alone: those are
// the caller's (a log file, the host's terminal or /dev/null) and must not
// change owner on the host. A pty counts only when it is from the
// container's own devpts. Inodes the user namespace cannot map stay as
// they are.
func chownStdio(fds []int, uid int) error {
	var pts unix.Stat_t
	havePts := unix.Stat("/dev/pts", &pts) == nil
	for _, fd := range fds {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			if errors.Is(err, unix.EBADF) {
				continue
			}
			return fmt.Errorf("stdio fd %d: %w", fd, err)
		}
		if int(st.Uid) == uid {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFIFO, unix.S_IFSOCK:
		case unix.S_IFCHR:
			if !havePts || st.Dev != pts.Dev {
				continue
			}
		default:
			continue
		}
		if err := unix.Fchown(fd, uid, int(st.Gid)); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EROFS) {
				continue
			}
			return fmt.Errorf("give stdio fd %d to uid %d: %w", fd, uid, err)
		}
	}
	return nil
}

func setupUser(u specs.User) error {
	groups := make([]int, 0, len(u.AdditionalGids))
	for _, g := range u.AdditionalGids {
		groups = append(groups, int(g))
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities: %w", err)
	}
	// setgroups(2) is refused in a user namespace whose setgroups file
	// says deny; only call it when there is something to set or clear.
	if err := unix.Setgroups(groups); err != nil && !(len(groups) == 0 && errors.Is(err, unix.EPERM)) {
		return fmt.Errorf("process.user.additionalGids: %w", err)
	}
	if err := unix.Setresgid(int(u.GID), int(u.GID), int(u.GID)); err != nil {
		return fmt.Errorf("process.user.gid %d: %w", u.GID, err)
	}
	if err := unix.Setresuid(int(u.UID), int(u.UID), int(u.UID)); err != nil {
		return fmt.Errorf("process.user.uid %d: %w", u.UID, err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keep capabilities: %w", err)
	}
	return nil
}

func umask(m *uint32) {
	if m != nil {
		unix.Umask(int(*m))
	} else {
		unix.Umask(0o022)
	}
}

// closeExecFrom marks every fd from min on close-on-exec.
func closeExecFrom(min int) {
	if err := unix.CloseRange(uint(min), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= min {
			unix.CloseOnExec(fd)
		}
	}
}

// writeSysctls writes through the container's own /proc, after checking
// that each file really is procfs: a rootfs that put something else at
// /proc must not receive writes meant for the kernel.
func writeSysctls(sysctl map[string]string) error {
	for key, value := range sysctl {
		path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("linux.sysctl %s: %w", key, err)
		}
		var st unix.Statfs_t
		if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Type != unix.PROC_SUPER_MAGIC {
			f.Close()
			return fmt.Errorf("linux.sysctl %s: %s is not on procfs", key, path)
		}
		_, err = f.Write([]byte(value))
		f.Close()
		if err != nil {
			return fmt.Errorf("linux.sysctl %s=%s: %w", key, value, err)
		}
	}
	return nil
}
