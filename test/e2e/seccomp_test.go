package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/seccomp"
	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// withUnshare links busybox's unshare applet, which NewBundle does not.
func withUnshare() testutil.BundleOption {
	return testutil.WithRootfs(func(rootfs string) error {
		return os.Symlink("busybox", filepath.Join(rootfs, "bin/unshare"))
	})
}

// withCaps adds capabilities to every set of the process.
func withCaps(caps ...string) testutil.BundleOption {
	return testutil.WithSpec(func(s *specs.Spec) {
		c := s.Process.Capabilities
		c.Bounding = append(c.Bounding, caps...)
		c.Effective = append(c.Effective, caps...)
		c.Permitted = append(c.Permitted, caps...)
	})
}

// stderrLine reports whether a line of stderr starts with prefix (a busybox
// applet's name) and holds the error text want.
func stderrLine(stderr, prefix, want string) bool {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, want) {
			return true
		}
	}
	return false
}

func withSeccomp(p *specs.LinuxSeccomp) testutil.BundleOption {
	return testutil.WithSpec(func(s *specs.Spec) { s.Linux.Seccomp = p })
}

// seccompProbe runs unshare and mount, each reporting its exit code, and
// prints the Seccomp mode of the shell.
const seccompProbe = `unshare -n true; echo unshare=$?; mount -t tmpfs berth-e2e /mnt; echo mount=$?; grep '^Seccomp:' /proc/self/status`

func TestSeccompErrno(t *testing.T) {
	rt := newRuntime(t)
	enosys := uint(unix.ENOSYS)
	profile := allowExcept(
		specs.LinuxSyscall{Names: []string{"unshare"}, Action: specs.ActErrno}, // errnoRet absent: EPERM
		specs.LinuxSyscall{Names: []string{"keyctl", "mount"}, Action: specs.ActErrno, ErrnoRet: &enosys},
	)
	// CAP_SYS_ADMIN lets both calls succeed without the filter: see the
	// control run below.
	opts := []testutil.BundleOption{withUnshare(), withCaps("CAP_SYS_ADMIN"), testutil.WithShell(seccompProbe)}

	control := rt.Run(rt.NewID("seccompctl"), testutil.NewBundle(t, opts...).Dir)
	if !strings.Contains(control.Stdout, "unshare=0") || !strings.Contains(control.Stdout, "mount=0") ||
		!strings.Contains(control.Stdout, "Seccomp:\t0") {
		t.Fatalf("without a seccomp profile, unshare and mount must succeed with CAP_SYS_ADMIN and Seccomp be 0: %s", control)
	}

	res := rt.Run(rt.NewID("seccomp"), testutil.NewBundle(t, append(opts, withSeccomp(profile))...).Dir)
	for _, want := range []string{"unshare=1", "Seccomp:\t2"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("with the profile, stdout lacks %q: %s", want, res)
		}
	}
	if strings.Contains(res.Stdout, "mount=0") {
		t.Errorf("mount succeeded under a profile that denies it: %s", res)
	}
	if !stderrLine(res.Stderr, "unshare:", "Operation not permitted") {
		t.Errorf("unshare's error is not EPERM (Operation not permitted): %s", res)
	}
	if !stderrLine(res.Stderr, "mount:", "Function not implemented") {
		t.Errorf("mount's error is not the configured errnoRet 38 (Function not implemented): %s", res)
	}
}

func TestSeccompDefaultProfile(t *testing.T) {
	rt := newRuntime(t)
	script := `echo ok; unshare -U true; echo unshare=$?`
	control := rt.Run(rt.NewID("dflctl"), testutil.NewBundle(t, withUnshare(), testutil.WithShell(script)).Dir)
	if !strings.Contains(control.Stdout, "unshare=0") {
		t.Fatalf("without a seccomp profile, `unshare -U true` must succeed (the host allows user namespaces): %s", control)
	}

	data, err := json.Marshal(seccomp.DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	// Through JSON, as a user's config.json carries it.
	var profile specs.LinuxSeccomp
	if err := json.Unmarshal(data, &profile); err != nil {
		t.Fatal(err)
	}
	res := rt.Run(rt.NewID("dfl"), testutil.NewBundle(t, withUnshare(), testutil.WithShell(script), withSeccomp(&profile)).Dir)
	if !strings.HasPrefix(res.Stdout, "ok\n") {
		t.Errorf("`echo ok` under the Docker default profile: %s", res)
	}
	if !strings.Contains(res.Stdout, "unshare=1") || !stderrLine(res.Stderr, "unshare:", "Operation not permitted") {
		t.Errorf("`unshare -U true` without CAP_SYS_ADMIN under the Docker default profile: want EPERM: %s", res)
	}
}

func TestSeccompInvalidProfile(t *testing.T) {
	rt := newRuntime(t)
	rule := func(args ...specs.LinuxSeccompArg) *specs.LinuxSeccomp {
		return allowExcept(specs.LinuxSyscall{Names: []string{"uname"}, Action: specs.ActErrno, Args: args})
	}
	for _, tc := range []struct {
		name    string
		profile *specs.LinuxSeccomp
		value   string // the value at fault, named in the error
		field   string // the config.json field, named in berth-runtime's error
		runc    string // how runc 1.1.5 deviates: its error does not name the value
	}{
		{name: "unknown default action", profile: &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_FOO"},
			value: "SCMP_ACT_FOO", field: "defaultAction"},
		{name: "unknown rule action", profile: allowExcept(specs.LinuxSyscall{Names: []string{"uname"}, Action: "SCMP_ACT_BERTH"}),
			value: "SCMP_ACT_BERTH", field: "action"},
		{name: "unknown architecture", profile: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_BERTH"}},
			value: "SCMP_ARCH_BERTH", field: "architectures"},
		{name: "unknown operator", profile: rule(specs.LinuxSeccompArg{Index: 0, Value: 1, Op: "SCMP_CMP_BERTH"}),
			value: "SCMP_CMP_BERTH", field: "op"},
		{name: "argument index 9", profile: rule(specs.LinuxSeccompArg{Index: 9, Value: 1, Op: specs.OpEqualTo}),
			value: "9", field: "index"},
		{name: "unknown flag", profile: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_BERTH"}},
			value: "SECCOMP_FILTER_FLAG_BERTH", field: "flags", runc: "refuses every seccomp flag"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			b := testutil.NewBundle(t, testutil.WithArgs("true"), withSeccomp(tc.profile))
			id := rt.NewID("badseccomp")
			res := rt.Create(id, b.Dir).Fails(t)
			checkCreateLeftNothing(t, rt, id, b)
			if isRunc(t) && tc.runc != "" {
				t.Skipf("runc 1.1.5 deviation: it %s; it failed and left nothing", tc.runc)
			}
			if !strings.Contains(res.Stderr, tc.value) {
				t.Errorf("create with %s failed without naming %s: %s", tc.name, tc.value, res)
			}
			// runc 1.1.5 names values, not fields.
			if !isRunc(t) && (!strings.Contains(res.Stderr, "linux.seccomp.") || !strings.Contains(res.Stderr, tc.field)) {
				t.Errorf("create with %s failed without naming the field linux.seccomp...%s: %s", tc.name, tc.field, res)
			}
		})
	}
}

// TestSeccompNotifyNoListener: when nobody listens on listenerPath, create
// fails naming the socket, and leaves nothing behind.
func TestSeccompNotifyNoListener(t *testing.T) {
	rt := newRuntime(t)
	sock := filepath.Join(hostDir(t), "berth-nobody-listens.sock")
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Seccomp = allowExcept(specs.LinuxSyscall{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify})
		s.Linux.Seccomp.ListenerPath = sock
	}))
	id := rt.NewID("nolistener")
	res := rt.Create(id, b.Dir).Fails(t)
	if !strings.Contains(res.Stderr, sock) || !strings.Contains(res.Stderr, "failed to connect with seccomp agent") {
		t.Errorf("create with nobody listening on listenerPath failed without naming %s in runc's words: %s", sock, res)
	}
	checkCreateLeftNothing(t, rt, id, b)
}

// notifyMessage is what the seccomp agent receives on the listener socket.
type notifyMessage struct {
	state specs.ContainerProcessState
	fd    int
	err   error
}

// listenSeccompAgent listens on a unix socket and receives one message: the
// container's state and the notification fd.
func listenSeccompAgent(t *testing.T) (string, <-chan notifyMessage) {
	t.Helper()
	path := filepath.Join(hostDir(t), "berth-seccomp-agent.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan notifyMessage, 1)
	go func() {
		conn, err := ln.AcceptUnix()
		if err != nil {
			got <- notifyMessage{err: err}
			return
		}
		defer conn.Close()
		buf := make([]byte, 1<<16)
		oob := make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- notifyMessage{err: fmt.Errorf("read listener message: %w", err)}
			return
		}
		msg := notifyMessage{fd: -1}
		if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(cmsgs) == 1 {
			if fds, err := unix.ParseUnixRights(&cmsgs[0]); err == nil && len(fds) == 1 {
				msg.fd = fds[0]
			}
		}
		if err := json.Unmarshal(buf[:n], &msg.state); err != nil {
			msg.err = fmt.Errorf("decode state %q: %w", buf[:n], err)
		} else if msg.fd < 0 {
			msg.err = fmt.Errorf("listener message %q carried no single fd", buf[:n])
		}
		got <- msg
	}()
	return path, got
}

func TestSeccompNotify(t *testing.T) {
	rt := newRuntime(t)
	listener, got := listenSeccompAgent(t)
	b := testutil.NewBundle(t, testutil.WithWritableRoot(),
		testutil.WithShell(`mkdir /tmp/x; echo rc=$?`),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.Seccomp = allowExcept(specs.LinuxSyscall{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify})
			s.Linux.Seccomp.ListenerPath = listener
			s.Linux.Seccomp.ListenerMetadata = "berth-e2e-metadata"
		}))
	id := rt.NewID("notify")
	done := make(chan testutil.Result, 1)
	go func() { done <- rt.Run(id, b.Dir) }()

	var msg notifyMessage
	select {
	case msg = <-got:
	case res := <-done:
		t.Fatalf("run ended before the runtime sent the seccomp fd: %s", res)
	case <-time.After(testutil.CallTimeout):
		t.Fatal("no message on the seccomp listener socket")
	}
	if msg.err != nil {
		t.Fatal(msg.err)
	}
	defer unix.Close(msg.fd)
	if msg.state.State.ID != id || msg.state.Metadata != "berth-e2e-metadata" ||
		len(msg.state.Fds) != 1 || msg.state.Fds[0] != specs.SeccompFdName || msg.state.Pid <= 0 {
		t.Errorf("listener state = %+v, want id %s, metadata berth-e2e-metadata, fds [%s], a pid", msg.state, id, specs.SeccompFdName)
	}

	// Answer the container's mkdir with EPERM. Poll first, so a runtime that
	// never lets mkdir reach the agent fails the test instead of hanging it.
	pfd := []unix.PollFd{{Fd: int32(msg.fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, int(testutil.CallTimeout/time.Millisecond)); err != nil || n != 1 {
		t.Fatalf("no seccomp notification arrived (poll: %d, %v)", n, err)
	}
	req, err := libseccomp.NotifReceive(libseccomp.ScmpFd(msg.fd))
	if err != nil {
		t.Fatalf("receive notification: %v", err)
	}
	name, _ := req.Data.Syscall.GetName()
	if name != "mkdir" && name != "mkdirat" {
		t.Errorf("notification for syscall %q, want mkdir", name)
	}
	// libseccomp-golang negates Error for the kernel.
	if err := libseccomp.NotifRespond(libseccomp.ScmpFd(msg.fd), &libseccomp.ScmpNotifResp{ID: req.ID, Error: int32(unix.EPERM)}); err != nil {
		t.Fatalf("respond to notification: %v", err)
	}

	res := <-done
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "rc=1") || !stderrLine(res.Stderr, "mkdir:", "Operation not permitted") {
		t.Errorf("container's mkdir after the agent answered EPERM: %s", res)
	}
	if fileExists(b.Path("tmp/x")) {
		t.Error("/tmp/x exists: mkdir ran although the agent answered EPERM")
	}
}

// allowExcept is a profile that allows every syscall but those of rules.
func allowExcept(rules ...specs.LinuxSyscall) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls:      rules,
	}
}

// TestSeccompArgs: a rule with an argument condition matches only the calls
// whose arguments meet it: unshare(CLONE_NEWNET) is refused, unshare of the
// uts namespace is not.
func TestSeccompArgs(t *testing.T) {
	rt := newRuntime(t)
	out := runOut(t, rt, "seccompargs", withUnshare(), withCaps("CAP_SYS_ADMIN"),
		testutil.WithShell(`unshare -n true; echo net=$?; unshare -u true; echo uts=$?`),
		withSeccomp(allowExcept(specs.LinuxSyscall{
			Names:  []string{"unshare"},
			Action: specs.ActErrno,
			Args:   []specs.LinuxSeccompArg{{Index: 0, Value: unix.CLONE_NEWNET, ValueTwo: unix.CLONE_NEWNET, Op: specs.OpMaskedEqual}},
		})))
	if out != "net=1\nuts=0\n" {
		t.Errorf("with unshare refused when flags&CLONE_NEWNET, the container printed %q, want net=1 (refused) and uts=0 (allowed)", out)
	}
}

// TestSeccompKillProcess: SCMP_ACT_KILL_PROCESS ends the process with
// SIGSYS, which the caller sees as exit status 128+31.
func TestSeccompKillProcess(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithShell(`uname; echo survived`),
		withSeccomp(allowExcept(specs.LinuxSyscall{Names: []string{"uname"}, Action: specs.ActKillProcess})))
	res := rt.Run(rt.NewID("seccompkill"), b.Dir)
	if res.ExitCode != 128+int(unix.SIGSYS) || strings.Contains(res.Stdout, "survived") {
		t.Errorf("a container whose uname is SCMP_ACT_KILL_PROCESS: want exit %d (SIGSYS) before `echo survived`: %s", 128+int(unix.SIGSYS), res)
	}
}

// TestSeccompExec: a process started by exec runs under the container's
// filter too.
func TestSeccompExec(t *testing.T) {
	rt := newRuntime(t)
	enosys := uint(unix.ENOSYS)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), withSeccomp(allowExcept(
		specs.LinuxSyscall{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &enosys})))
	id := rt.NewID("seccompexec")
	rt.Run(id, b.Dir, "-d").OK(t)
	// Without the filter, mkdir on the read-only root fails with EROFS.
	res := rt.Exec(id, nil, "sh", "-c", `grep '^Seccomp:' /proc/self/status; mkdir /tmp/y`)
	if !strings.Contains(res.Stdout, "Seccomp:\t2") || !stderrLine(res.Stderr, "mkdir:", "Function not implemented") {
		t.Errorf("exec'd process: want Seccomp 2 and mkdir failing with ENOSYS: %s", res)
	}
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
}

// TestSeccompDeniesGetcwd: a filter that refuses getcwd(2), loaded early
// (no noNewPrivileges), does not make the cwd check (CVE-2024-21626) take
// the container's cwd for an escape (runtime-tools linux_seccomp).
func TestSeccompDeniesGetcwd(t *testing.T) {
	skipIfRunc(t, "runc 1.1.5 verifies the cwd after loading the filter and fails: failed to verify if current working directory is safe")
	rt := newRuntime(t)
	out := runOut(t, rt, "getcwd", testutil.WithShell("echo started"),
		withSeccomp(allowExcept(specs.LinuxSyscall{Names: []string{"getcwd"}, Action: specs.ActErrno})),
		testutil.WithSpec(func(s *specs.Spec) { s.Process.NoNewPrivileges = false }))
	if !strings.Contains(out, "started") {
		t.Errorf("container under a filter refusing getcwd: %q, want it started", out)
	}
}

// TestRlimitASWithSeccomp: a 1 GiB RLIMIT_AS with the default seccomp
// profile binds the user's process, not the runtime's Go init, whose own
// address space is about that size (runtime-tools process_rlimits).
func TestRlimitASWithSeccomp(t *testing.T) {
	rt := newRuntime(t)
	out := runOut(t, rt, "rlimitas", testutil.WithShell("ulimit -v; ulimit -Hv"),
		withSeccomp(seccomp.DefaultProfile()),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Process.NoNewPrivileges = true
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_AS", Soft: 1 << 30, Hard: 2 << 30})
		}))
	if f := strings.Fields(out); len(f) != 2 || f[0] != "1048576" || f[1] != "2097152" {
		t.Errorf("ulimit -v / -Hv in the container = %q, want 1048576 and 2097152 (KiB)", out)
	}
}

// TestSeccompStartContainerHook: a startContainer hook runs under the
// container's seccomp filter, as with runc (runc seccomp.bats "runc run
// [seccomp] (startContainer hook)").
func TestSeccompStartContainerHook(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Process.NoNewPrivileges = true
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActKill}},
		}
		s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "mkdir /tmp/foo"}}}}
	}))
	res := rt.Run(rt.NewID("schook"), b.Dir)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "error running startContainer hook") || !strings.Contains(res.Stderr, "bad system call") {
		t.Errorf("run with a startContainer hook that mkdirs under a filter killing mkdir: %s; want the hook to fail", res)
	}
}

// TestSeccompListenerPathWithoutNotify: a listenerPath with no notify
// action in the profile is ignored, as runc ignores it (runc
// seccomp-notify.bats "runc run [seccomp] (ignore listener path if no
// notify act)"): nothing dials the socket, which need not exist.
func TestSeccompListenerPathWithoutNotify(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			ListenerPath:  filepath.Join(t.TempDir(), "missing.sock"),
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"swapon"}, Action: specs.ActErrno}},
		}
	}))
	rt.Run(rt.NewID("nolistener"), b.Dir).OK(t)
}
