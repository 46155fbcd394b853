//go:build cgo

package seccomp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/berth-project/berth/internal/seccomp/filter"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// The kernel tests re-execute the test binary as a child that loads a
// filter into itself, makes real syscalls and prints one line per probe:
// "name=ok" or "name=errno:N". A filter cannot be removed, so the test
// process itself never loads one.
const (
	envChild    = "BERTH_SECCOMP_TEST_CHILD"
	envConfig   = "BERTH_SECCOMP_TEST_CONFIG"
	envProbes   = "BERTH_SECCOMP_TEST_PROBES"
	envListener = "BERTH_SECCOMP_TEST_LISTENER"
	envExec     = "BERTH_SECCOMP_TEST_EXEC"
	envProgram  = "BERTH_SECCOMP_TEST_PROGRAM" // base64 of a marshalled Program, used instead of the config
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// probes are the syscalls a child can make. Each returns the raw result.
var probes = map[string]func() (uintptr, unix.Errno){
	"getpid": func() (uintptr, unix.Errno) { return sys(unix.SYS_GETPID) },
	"unshare-user": func() (uintptr, unix.Errno) {
		return sys(unix.SYS_UNSHARE, unix.CLONE_NEWUSER)
	},
	"keyctl": func() (uintptr, unix.Errno) {
		id, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0)
		return uintptr(id), errnoFrom(err)
	},
	// Without a filter this fails with ENOENT: the target does not exist.
	"mount": func() (uintptr, unix.Errno) {
		return 0, errnoFrom(unix.Mount("none", "/nonexistent-berth-seccomp-test", "tmpfs", 0, ""))
	},
	"getsid": func() (uintptr, unix.Errno) { return sys(unix.SYS_GETSID, 0) },
	// personality(0xffffffff) only queries; ADDR_NO_RANDOMIZE is a flag
	// Docker's profile does not allow.
	"personality-query":    func() (uintptr, unix.Errno) { return sys(unix.SYS_PERSONALITY, 0xffffffff) },
	"personality-norandom": func() (uintptr, unix.Errno) { return sys(unix.SYS_PERSONALITY, addrNoRandomize) },
	"syscall-1000":         func() (uintptr, unix.Errno) { return sys(1000) },
	"socket-inet-dgram":    func() (uintptr, unix.Errno) { return socket(unix.AF_INET, unix.SOCK_DGRAM) },
	"socket-inet-stream":   func() (uintptr, unix.Errno) { return socket(unix.AF_INET, unix.SOCK_STREAM) },
	"socket-unix-dgram":    func() (uintptr, unix.Errno) { return socket(unix.AF_UNIX, unix.SOCK_DGRAM) },
}

func sys(nr uintptr, args ...uintptr) (uintptr, unix.Errno) {
	var a [6]uintptr
	copy(a[:], args)
	r, _, errno := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	return r, errno
}

// addrNoRandomize is ADDR_NO_RANDOMIZE of <sys/personality.h>.
const addrNoRandomize = 0x0040000

func errnoFrom(err error) unix.Errno {
	var errno unix.Errno
	if err != nil && !errors.As(err, &errno) {
		return unix.EIO
	}
	return errno
}

func socket(domain, typ int) (uintptr, unix.Errno) {
	fd, errno := sys(unix.SYS_SOCKET, uintptr(domain), uintptr(typ), 0)
	if errno == 0 {
		unix.Close(int(fd))
	}
	return fd, errno
}

// probe runs a named probe; "getpgid-N" calls getpgid(N).
func probe(name string) string {
	var r uintptr
	var errno unix.Errno
	if n, ok := strings.CutPrefix(name, "getpgid-"); ok {
		v, _ := strconv.ParseUint(n, 0, 64)
		r, errno = sys(unix.SYS_GETPGID, uintptr(v))
	} else if f, ok := probes[name]; ok {
		r, errno = f()
	} else {
		return "unknown-probe"
	}
	if errno != 0 {
		return fmt.Sprintf("errno:%d", int(errno))
	}
	return fmt.Sprintf("ok:%d", r)
}

func child() int {
	runtime.LockOSThread()
	// A thread that exists before the filter is loaded: TSYNC must cover it.
	reqs, results := make(chan string), make(chan string)
	go func() {
		runtime.LockOSThread()
		for name := range reqs {
			results <- probe(name)
		}
	}()
	reqs <- "getpid"
	<-results

	var cfg specs.LinuxSeccomp
	err := json.Unmarshal([]byte(os.Getenv(envConfig)), &cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: config:", err)
		return 3
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "child: no_new_privs:", err)
		return 3
	}
	var fd int
	if enc := os.Getenv(envProgram); enc != "" {
		fd, err = loadMarshalled(enc)
	} else {
		fd, err = Load(&cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: Load:", err)
		return 3
	}
	fmt.Printf("notifyfd=%v\n", fd >= 0)
	if fd >= 0 {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		fmt.Printf("notifyfd-cloexec=%v\n", err == nil && flags&unix.FD_CLOEXEC != 0)
	}
	if path := os.Getenv(envListener); path != "" {
		state := specs.ContainerProcessState{
			Version: specs.Version,
			Pid:     os.Getpid(),
			State: specs.State{Version: specs.Version, ID: "berth-seccomp-test", Status: specs.StateCreating,
				Pid: os.Getpid(), Bundle: "/nonexistent-berth-bundle"},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := SendListener(ctx, path, fd, "berth-metadata", state)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child: SendListener:", err)
			return 3
		}
	}
	for _, name := range strings.Fields(os.Getenv(envProbes)) {
		var res string
		if n, ok := strings.CutPrefix(name, "thread:"); ok {
			reqs <- n
			res = <-results
		} else {
			res = probe(name)
		}
		fmt.Printf("%s=%s\n", name, res)
	}
	if argv := strings.Split(os.Getenv(envExec), "|"); argv[0] != "" {
		err := syscall.Exec(argv[0], argv, []string{"PATH=/bin"})
		fmt.Fprintln(os.Stderr, "child: exec:", err)
		return 3
	}
	return 0
}

func loadMarshalled(enc string) (int, error) {
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return -1, err
	}
	prog, err := UnmarshalProgram(raw)
	if err != nil {
		return -1, err
	}
	return prog.Load()
}

type childResult struct {
	lines  map[string]string
	stdout string
	stderr string
	state  *os.ProcessState
}

// startChild starts the child with cfg and probes; extra sets more env.
func startChild(t *testing.T, cfg *specs.LinuxSeccomp, probes []string, extra ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envConfig+"="+string(raw), envProbes+"="+strings.Join(probes, " "))
	cmd.Env = append(cmd.Env, extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stdout, &stderr
}

func waitChild(t *testing.T, cmd *exec.Cmd, stdout, stderr *bytes.Buffer) childResult {
	t.Helper()
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("child: %v", err)
	}
	res := childResult{lines: map[string]string{}, stdout: stdout.String(), stderr: stderr.String(), state: cmd.ProcessState}
	for _, l := range strings.Split(res.stdout, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			res.lines[k] = v
		}
	}
	return res
}

func runChild(t *testing.T, cfg *specs.LinuxSeccomp, probes []string, extra ...string) childResult {
	t.Helper()
	cmd, stdout, stderr := startChild(t, cfg, probes, extra...)
	return waitChild(t, cmd, stdout, stderr)
}

// expectProbes checks the child exited 0 and each probe gave want
// ("ok" matches any successful return).
func expectProbes(t *testing.T, res childResult, want map[string]string) {
	t.Helper()
	if !res.state.Success() {
		t.Fatalf("child %v\nstdout:\n%s\nstderr:\n%s", res.state, res.stdout, res.stderr)
	}
	for name, w := range want {
		got := res.lines[name]
		if w == "ok" && strings.HasPrefix(got, "ok:") {
			continue
		}
		if got != w {
			t.Errorf("%s: got %q, want %q", name, got, w)
		}
	}
}

func errnoOf(e unix.Errno) string { return fmt.Sprintf("errno:%d", int(e)) }

func TestLoadActions(t *testing.T) {
	cfg := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags:         []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"unshare"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EREMOTEIO))},
			{Names: []string{"keyctl", "no_such_syscall_berth"}, Action: specs.ActErrno},
			{Names: []string{"mount"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EADDRNOTAVAIL))},
			// With no tracer attached the kernel fails a traced syscall with ENOSYS.
			{Names: []string{"getsid"}, Action: specs.ActTrace, ErrnoRet: uintp(5)},
			{Names: []string{"getpgid"}, Action: specs.ActLog},
		},
	}
	res := runChild(t, cfg, []string{"getpid", "unshare-user", "keyctl", "mount", "getsid", "getpgid-0", "thread:keyctl", "thread:mount"})
	expectProbes(t, res, map[string]string{
		"notifyfd":      "false",
		"getpid":        "ok",
		"unshare-user":  errnoOf(unix.EREMOTEIO),
		"keyctl":        errnoOf(unix.EPERM), // SCMP_ACT_ERRNO without errnoRet
		"mount":         errnoOf(unix.EADDRNOTAVAIL),
		"getsid":        errnoOf(unix.ENOSYS),
		"getpgid-0":     "ok",
		"thread:keyctl": errnoOf(unix.EPERM), // TSYNC reached the other thread
		"thread:mount":  errnoOf(unix.EADDRNOTAVAIL),
	})
}

func TestLoadKillProcess(t *testing.T) {
	cfg := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getpgid"}, Action: specs.ActKillProcess}},
	}
	res := runChild(t, cfg, []string{"getpid", "getpgid-0"})
	ws, _ := res.state.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Fatalf("child %v, want killed by SIGSYS\nstdout:\n%s\nstderr:\n%s", res.state, res.stdout, res.stderr)
	}
	if _, ran := res.lines["getpgid-0"]; ran {
		t.Errorf("getpgid returned to the child: %q", res.lines["getpgid-0"])
	}
}

func TestLoadTrap(t *testing.T) {
	cfg := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getpgid"}, Action: specs.ActTrap}},
	}
	res := runChild(t, cfg, []string{"getpgid-0"})
	// SIGSYS reaches the Go runtime, which dies with exit status 2.
	if res.state.ExitCode() != 2 || !strings.Contains(res.stderr, "SIGSYS") {
		t.Fatalf("child %v, want a Go SIGSYS crash\nstderr:\n%s", res.state, res.stderr)
	}
}

func TestLoadArgs(t *testing.T) {
	denied := errnoOf(unix.EBADFD)
	deny := func(args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: []string{"getpgid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EBADFD)), Args: args}
	}
	for _, tc := range []struct {
		op                   specs.LinuxSeccompOperator
		value, valueTwo      uint64
		deniedArg, allowdArg string
	}{
		{specs.OpNotEqual, 5, 0, "6", "5"},
		{specs.OpLessThan, 5, 0, "4", "5"},
		{specs.OpLessEqual, 5, 0, "5", "6"},
		{specs.OpEqualTo, 5, 0, "5", "4"},
		{specs.OpGreaterEqual, 5, 0, "5", "4"},
		{specs.OpGreaterThan, 5, 0, "6", "5"},
		// (arg & 0xf0) == 0x20
		{specs.OpMaskedEqual, 0xf0, 0x20, "0x25", "0x35"},
	} {
		t.Run(string(tc.op), func(t *testing.T) {
			cfg := &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls:      []specs.LinuxSyscall{deny(specs.LinuxSeccompArg{Index: 0, Op: tc.op, Value: tc.value, ValueTwo: tc.valueTwo})},
			}
			d, a := "getpgid-"+tc.deniedArg, "getpgid-"+tc.allowdArg
			res := runChild(t, cfg, []string{d, a})
			expectProbes(t, res, map[string]string{d: denied})
			if res.lines[a] == denied {
				t.Errorf("%s was denied", a)
			}
		})
	}

	t.Run("same argument twice is OR, distinct arguments are AND", func(t *testing.T) {
		cfg := &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{
				deny(specs.LinuxSeccompArg{Index: 0, Op: specs.OpEqualTo, Value: 5},
					specs.LinuxSeccompArg{Index: 0, Op: specs.OpEqualTo, Value: 6}),
				{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EBADFD)), Args: []specs.LinuxSeccompArg{
					{Index: 0, Op: specs.OpEqualTo, Value: unix.AF_INET},
					{Index: 1, Op: specs.OpEqualTo, Value: unix.SOCK_DGRAM},
				}},
			},
		}
		res := runChild(t, cfg, []string{"getpgid-5", "getpgid-6", "getpgid-7", "socket-inet-dgram", "socket-inet-stream", "socket-unix-dgram"})
		expectProbes(t, res, map[string]string{
			"getpgid-5":          denied,
			"getpgid-6":          denied,
			"socket-inet-dgram":  denied,
			"socket-inet-stream": "ok",
			"socket-unix-dgram":  "ok",
		})
		if res.lines["getpgid-7"] == denied {
			t.Error("getpgid(7) was denied")
		}
	})
}

func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (Debian busybox-static)")
	}
}

func TestDefaultProfileInKernel(t *testing.T) {
	requireBusybox(t)
	res := runChild(t, DefaultProfile(),
		[]string{"getpid", "unshare-user", "keyctl", "mount", "thread:mount", "personality-query", "personality-norandom", "syscall-1000"},
		envExec+"=/bin/busybox|sh|-c|echo ok")
	expectProbes(t, res, map[string]string{
		"getpid":               "ok",
		"unshare-user":         errnoOf(unix.EPERM),
		"keyctl":               errnoOf(unix.EPERM),
		"mount":                errnoOf(unix.EPERM),
		"thread:mount":         errnoOf(unix.EPERM),
		"personality-query":    "ok",
		"personality-norandom": errnoOf(unix.EPERM),
		// Newer than anything the profile names: ENOSYS, not EPERM.
		"syscall-1000": errnoOf(unix.ENOSYS),
	})
	if !strings.HasSuffix(res.stdout, "\nok\n") {
		t.Errorf("busybox under the default profile printed %q, want a last line \"ok\"\nstderr:\n%s", res.stdout, res.stderr)
	}
}

func TestDefaultProfileWithSysAdminInKernel(t *testing.T) {
	caps := append(DockerDefaultCaps(), "CAP_SYS_ADMIN")
	res := runChild(t, DefaultProfileFor(caps), []string{"unshare-user", "keyctl"})
	expectProbes(t, res, map[string]string{
		// The filter lets unshare through; the kernel refuses a user
		// namespace to a multi-threaded process.
		"unshare-user": errnoOf(unix.EINVAL),
		"keyctl":       errnoOf(unix.EPERM),
	})
}

func TestNotify(t *testing.T) {
	dir, err := os.MkdirTemp("", "berth-seccomp-notify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	if !filter.KernelSupportsFlags(unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH) {
		t.Skip("needs Linux 5.7 (SECCOMP_FILTER_FLAG_TSYNC_ESRCH) for a listener on a multi-threaded process")
	}
	cfg := &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     sock,
		ListenerMetadata: "ignored: SendListener takes the metadata as an argument",
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"getpgid"}, Action: specs.ActNotify}},
	}
	if kernelSupportsFlag(specs.LinuxSeccompFlagWaitKillableRecv) { // Linux 5.19
		cfg.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}
	}
	cmd, stdout, stderr := startChild(t, cfg, []string{"getpgid-7", "getpid"}, envListener+"="+sock)
	done := false
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})

	if err := ln.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	conn, err := ln.AcceptUnix()
	if err != nil {
		t.Fatalf("accept: %v\nchild stderr:\n%s", err, stderr)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	buf, oob := make([]byte, 64<<10), make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("read state: %v", err)
	}
	var state specs.ContainerProcessState
	if err := json.Unmarshal(buf[:n], &state); err != nil {
		t.Fatalf("state is not JSON: %v: %q", err, buf[:n])
	}
	if len(state.Fds) != 1 || state.Fds[0] != "seccompFd" || state.Metadata != "berth-metadata" ||
		state.Pid != cmd.Process.Pid || state.State.ID != "berth-seccomp-test" || state.Version != specs.Version {
		t.Errorf("state = %+v", state)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages: %v, %d", err, len(msgs))
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("SCM_RIGHTS: %v, %v", err, fds)
	}
	fd := fds[0]
	defer unix.Close(fd)

	// Wait for the notification with a bound, so a broken child fails the
	// test instead of hanging it.
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 20000); err != nil || n != 1 || pfd[0].Revents&unix.POLLIN == 0 {
		t.Fatalf("poll listener: n=%d revents=%#x err=%v\nchild stderr:\n%s", n, pfd[0].Revents, err, stderr)
	}
	req, err := libseccomp.NotifReceive(libseccomp.ScmpFd(fd))
	if err != nil {
		t.Fatalf("NotifReceive: %v", err)
	}
	name, _ := req.Data.Syscall.GetName()
	if name != "getpgid" || req.Data.Args[0] != 7 || int(req.Pid) != cmd.Process.Pid {
		t.Errorf("notification = syscall %q args %v pid %d, want getpgid(7) from %d", name, req.Data.Args, req.Pid, cmd.Process.Pid)
	}
	if err := libseccomp.NotifRespond(libseccomp.ScmpFd(fd), &libseccomp.ScmpNotifResp{ID: req.ID, Val: 4242}); err != nil {
		t.Fatalf("NotifRespond: %v", err)
	}
	res := waitChild(t, cmd, stdout, stderr)
	done = true
	expectProbes(t, res, map[string]string{"notifyfd": "true", "notifyfd-cloexec": "true", "getpgid-7": "ok:4242", "getpid": "ok"})
}

func TestSendListenerNoAgent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth-no-agent.sock")
	err := SendListener(context.Background(), path, 0, "", specs.ContainerProcessState{})
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("SendListener to a missing socket: %v", err)
	}
}

func TestCompileErrors(t *testing.T) {
	if _, err := Compile(nil); err == nil {
		t.Error("Compile(nil) succeeded")
	}
	_, err := Compile(&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_FOO"})
	if err == nil || err.Error() != `linux.seccomp.defaultAction: unknown action "SCMP_ACT_FOO"` {
		t.Errorf("Compile: %v", err)
	}
}

func TestFeatures(t *testing.T) {
	f := Features()
	if f.Enabled == nil || !*f.Enabled || len(f.Actions) != 9 || len(f.Operators) != 7 ||
		!slices.Contains(f.Archs, "SCMP_ARCH_X86_64") || !slices.Contains(f.Archs, "SCMP_ARCH_AARCH64") {
		t.Errorf("Features() = %+v", f)
	}
	if !slices.Equal(f.KnownFlags, []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
		"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"}) {
		t.Errorf("KnownFlags = %v", f.KnownFlags)
	}
	// Every flag is older than Linux 5.19; the test machines are newer.
	var u unix.Utsname
	unix.Uname(&u)
	if k, _ := parseKernel(unix.ByteSliceToString(u.Release[:])); k.atLeast("5.19") && !slices.Equal(f.SupportedFlags, f.KnownFlags) {
		t.Errorf("SupportedFlags = %v on Linux %d.%d, want all of %v", f.SupportedFlags, k.major, k.minor, f.KnownFlags)
	}
}

// TestMarshalledProgramInKernel compiles in the test process, as a runtime
// would, and has the child load the decoded bytes only.
func TestMarshalledProgramInKernel(t *testing.T) {
	prog, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"keyctl"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EREMOTEIO))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := prog.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	res := runChild(t, &specs.LinuxSeccomp{}, []string{"keyctl", "thread:keyctl", "getpid"},
		envProgram+"="+base64.StdEncoding.EncodeToString(raw))
	expectProbes(t, res, map[string]string{
		"keyctl":        errnoOf(unix.EREMOTEIO),
		"thread:keyctl": errnoOf(unix.EREMOTEIO),
		"getpid":        "ok",
	})
}

func TestProgramRoundTrip(t *testing.T) {
	prog, err := Compile(DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := prog.MarshalBinary()
	back, err := UnmarshalProgram(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(prog, back) {
		t.Fatal("program changed in a marshal round trip")
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "decode seccomp program: not a berth seccomp program"},
		{"no header", []byte(ProgramFormat + "1234"), "decode seccomp program: truncated header"},
		{"no instructions", raw[:len(ProgramFormat)+8], "decode seccomp program: 0 bytes of instructions, want 1 to 4096 instructions of 8 bytes"},
		{"partial instruction", raw[:len(ProgramFormat)+8+11], "decode seccomp program: 11 bytes of instructions, want 1 to 4096 instructions of 8 bytes"},
	} {
		if _, err := UnmarshalProgram(tc.data); err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzUnmarshalProgram(f *testing.F) {
	prog, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mount"}, Action: specs.ActErrno}}})
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := prog.MarshalBinary()
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := UnmarshalProgram(data)
		if err != nil {
			return
		}
		again, _ := p.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatalf("round trip changed %x to %x", data, again)
		}
	})
}

func TestDefaultProfileValidates(t *testing.T) {
	for _, caps := range [][]string{nil, DockerDefaultCaps(), append(DockerDefaultCaps(), "CAP_SYS_ADMIN", "CAP_SYS_PTRACE")} {
		if err := Validate(DefaultProfileFor(caps)); err != nil {
			t.Errorf("Validate(DefaultProfileFor(%v)): %v", caps, err)
		}
	}
}

func BenchmarkCompileDefaultProfile(b *testing.B) {
	p := DefaultProfile()
	for b.Loop() {
		prog, err := Compile(p)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(prog.Insns())), "insns")
	}
}

// TestLoadKillThread runs a single-threaded program (busybox sync) under
// SCMP_ACT_KILL and SCMP_ACT_KILL_THREAD: killing its only thread ends it
// as if by SIGSYS. (A Go program has more threads, and would hang.)
func TestLoadKillThread(t *testing.T) {
	requireBusybox(t)
	for _, act := range []specs.LinuxSeccompAction{specs.ActKill, specs.ActKillThread} {
		t.Run(string(act), func(t *testing.T) {
			cfg := &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"sync"}, Action: act}},
			}
			res := runChild(t, cfg, []string{"getpid"}, envExec+"=/bin/busybox|sync")
			ws, _ := res.state.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != syscall.SIGSYS || res.lines["getpid"] == "" {
				t.Fatalf("child %v, want busybox killed by SIGSYS\nstdout:\n%s\nstderr:\n%s", res.state, res.stdout, res.stderr)
			}
		})
	}
}
