package monitor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/logs"
	"github.com/berth-project/berth/internal/testutil"
)

// monitorBin is the berth-monitor the tests run: BERTH_MONITOR (a
// prebuilt one, as BERTH_RUNTIME names the runtime), or one built on first
// use (not in TestMain: fuzz workers run TestMain too).
var (
	monitorBin  string
	monitorOnce sync.Once
	monitorErr  error
	monitorDir  string
)

func buildMonitor(t *testing.T) {
	t.Helper()
	monitorOnce.Do(func() {
		if p := os.Getenv("BERTH_MONITOR"); p != "" {
			monitorBin, monitorErr = filepath.Abs(p)
			return
		}
		monitorDir, monitorErr = os.MkdirTemp("", "berth-monitor-test-")
		if monitorErr != nil {
			return
		}
		monitorBin = filepath.Join(monitorDir, "berth-monitor")
		out, err := exec.Command("go", "build", "-o", monitorBin, "github.com/berth-project/berth/cmd/berth-monitor").CombinedOutput()
		if err != nil {
			monitorErr = fmt.Errorf("build berth-monitor: %v\n%s", err, out)
		}
	})
	if monitorErr != nil {
		t.Fatal(monitorErr)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if monitorDir != "" {
		os.RemoveAll(monitorDir)
	}
	os.Exit(code)
}

// runtimes are the runtime binaries the tests run against: BERTH_RUNTIME
// (the Makefile's freshly built berth-runtime) and runc, when present.
func runtimes(t *testing.T) []string {
	t.Helper()
	testutil.RequiresRoot(t)
	var rts []string
	if p := os.Getenv("BERTH_RUNTIME"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		rts = append(rts, abs)
	}
	if p, err := exec.LookPath("runc"); err == nil {
		rts = append(rts, p)
	}
	if len(rts) == 0 {
		t.Skip("requires an OCI runtime: BERTH_RUNTIME or runc (Debian package runc)")
	}
	buildMonitor(t)
	return rts
}

// eachRuntime runs f as a subtest per runtime.
func eachRuntime(t *testing.T, f func(t *testing.T, rt string)) {
	for _, rt := range runtimes(t) {
		t.Run(filepath.Base(rt), func(t *testing.T) { f(t, rt) })
	}
}

// firstRuntime is the runtime of tests that need not run on each.
func firstRuntime(t *testing.T) string { return runtimes(t)[0] }

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newConfig makes a Config for bundle b and registers the cleanup and the
// leak check: no monitor, no container process, no runtime state, no
// cgroup may remain.
func newConfig(t *testing.T, rt string, b *testutil.Bundle) Config {
	t.Helper()
	dir := t.TempDir()
	id := randomID()
	cfg := Config{
		ID:          id,
		Runtime:     rt,
		RuntimeRoot: filepath.Join(dir, "runtime"),
		Bundle:      b.Dir,
		LogPath:     filepath.Join(dir, "ctr.log"),
		StateDir:    filepath.Join(dir, "state"),
		ExitFile:    filepath.Join(dir, "exit.json"),
	}
	var initPid int
	t.Cleanup(func() {
		var pids []int
		if pid, ok := Alive(cfg.StateDir); ok {
			pids = append(pids, pid)
			unix.Kill(pid, unix.SIGKILL)
		}
		if st, err := ReadStatus(filepath.Join(cfg.StateDir, statusFile)); err == nil && st.Pid > 0 {
			initPid = st.Pid
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		exec.CommandContext(ctx, rt, "--root", cfg.RuntimeRoot, "delete", "--force", id).Run()
		if initPid > 0 {
			pids = append(pids, initPid)
		}
		for _, p := range pids {
			waitGone(p)
		}
		testutil.CheckNoLeaks(t, testutil.Leaks{Root: cfg.RuntimeRoot, ID: id, Pids: pids, Bundle: b.Dir})
		// The monitor's stderr: a panic, or a race when BERTH_MONITOR was
		// built with -race, shows there.
		if log, _ := os.ReadFile(filepath.Join(cfg.StateDir, "monitor.log")); bytes.Contains(log, []byte("panic:")) || bytes.Contains(log, []byte("DATA RACE")) {
			t.Errorf("monitor.log:\n%s", log)
		}
	})
	return cfg
}

// waitGone waits (bounded) for a process that is not our child to go.
func waitGone(pid int) bool {
	for i := 0; i < 1000; i++ {
		// Reap it if it is ours (a test that is a child subreaper).
		unix.Wait4(pid, nil, unix.WNOHANG, nil)
		if unix.Kill(pid, 0) != nil {
			return true
		}
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				return true // a zombie of PID 1's, gone for our purpose
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// waitUntil polls cond until it holds, failing t after 30s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 3000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s in 30s", what)
}

// waitMonitorGone waits for the monitor of cfg to exit after its container.
func waitMonitorGone(t *testing.T, cfg Config) {
	t.Helper()
	for i := 0; i < 3000; i++ {
		if _, ok := Alive(cfg.StateDir); !ok {
			if _, err := os.Stat(filepath.Join(cfg.StateDir, socketFile)); err == nil {
				t.Errorf("monitor exited but left %s", socketFile)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("monitor still runs 30s after its container exited")
}

func readLog(t *testing.T, path string) (stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	if err := logs.Read(context.Background(), path, logs.ReadOptions{Tail: -1, Stdout: &o, Stderr: &e}); err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOutputLogAndExitCode(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt string) {
		b := testutil.NewBundle(t, testutil.WithShell(`echo out; echo err >&2; printf partial; exit 3`))
		cfg := newConfig(t, rt, b)
		st, err := Start(ctxT(t), monitorBin, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != StateRunning || st.Pid <= 0 || st.MonitorPid <= 0 {
			t.Errorf("Start status = %+v", st)
		}
		st, err = Wait(ctxT(t), cfg.StateDir, cfg.ExitFile)
		if err != nil {
			t.Fatal(err)
		}
		if st.ExitCode != 3 || st.State != StateExited || st.OOMKilled {
			t.Errorf("exit status = %+v, want code 3", st)
		}
		waitMonitorGone(t, cfg)
		ex, err := ReadStatus(cfg.ExitFile)
		if err != nil || ex.ExitCode != 3 || ex.FinishedAt.IsZero() {
			t.Errorf("exit file = %+v, %v", ex, err)
		}
		raw, _ := os.ReadFile(cfg.LogPath)
		for _, want := range []string{" stdout F out\n", " stderr F err\n", " stdout P partial\n"} {
			if !strings.Contains(string(raw), want) {
				t.Errorf("log lacks %q:\n%s", want, raw)
			}
		}
		o, e := readLog(t, cfg.LogPath)
		if o != "out\npartial" || e != "err\n" {
			t.Errorf("logs.Read: stdout %q stderr %q", o, e)
		}
	})
}

func TestBadCommandLeavesNothing(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt string) {
		for _, tc := range []struct {
			args []string
			msg  string
			code int
		}{
			{[]string{"nosuch"}, "executable file not found", 127},
			{[]string{"/etc/passwd"}, "permission denied", 126},
		} {
			b := testutil.NewBundle(t, testutil.WithArgs(tc.args...))
			cfg := newConfig(t, rt, b)
			st, err := Start(ctxT(t), monitorBin, cfg)
			if err == nil && tc.code == 126 {
				// runc finds a command it cannot execute at create;
				// berth-runtime (so far) only when the init execs it,
				// after start: the message then reaches the log.
				st, _ = Wait(ctxT(t), cfg.StateDir, cfg.ExitFile)
				waitMonitorGone(t, cfg)
				if o, e := readLog(t, cfg.LogPath); st.ExitCode == 0 || !strings.Contains(o+e, tc.msg) {
					t.Errorf("%s ran %q: exit %d, log %q", filepath.Base(rt), tc.args, st.ExitCode, o+e)
				}
				t.Logf("%s does not fail create for %q (runc does); exit %d", filepath.Base(rt), tc.args, st.ExitCode)
				continue
			}
			if err == nil {
				t.Fatalf("Start of %q succeeded", tc.args)
			}
			if !strings.Contains(err.Error(), tc.args[0]) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Start error %q lacks the runtime's message %q", err, tc.msg)
			}
			if st.ExitCode != tc.code || !strings.Contains(st.Error, tc.msg) {
				t.Errorf("status = %+v, want exit code %d", st, tc.code)
			}
			if _, ok := Alive(cfg.StateDir); ok {
				t.Error("monitor still alive after a failed start")
			}
			if _, err := os.Stat(filepath.Join(cfg.StateDir, socketFile)); err == nil {
				t.Error("attach socket left behind")
			}
			if _, err := os.Stat(filepath.Join(cfg.RuntimeRoot, cfg.ID)); err == nil {
				t.Error("runtime state left behind")
			}
		}
	})
}

func TestSigkillGives137AndStopDisablesRestart(t *testing.T) {
	rt := firstRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	cfg := newConfig(t, rt, b)
	cfg.Restart = RestartPolicy{Name: "unless-stopped"}
	st, err := Start(ctxT(t), monitorBin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Stopping(ctxT(t), cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(rt, "--root", cfg.RuntimeRoot, "kill", cfg.ID, "KILL").CombinedOutput(); err != nil {
		t.Fatalf("kill: %v: %s", err, out)
	}
	st, err = Wait(ctxT(t), cfg.StateDir, cfg.ExitFile)
	if err != nil {
		t.Fatal(err)
	}
	waitMonitorGone(t, cfg)
	st, _ = ReadStatus(filepath.Join(cfg.StateDir, statusFile))
	if st.ExitCode != 137 || !st.StoppedByUser || st.RestartCount != 0 || st.State != StateExited {
		t.Errorf("status after stop = %+v, want 137, stopped by user, not restarted", st)
	}
}

func TestRestartOnFailureMaxRetries(t *testing.T) {
	rt := firstRuntime(t)
	b := testutil.NewBundle(t, testutil.WithShell(`echo run; exit 1`))
	cfg := newConfig(t, rt, b)
	cfg.Restart = RestartPolicy{Name: "on-failure", MaxRetries: 2}
	if _, err := Start(ctxT(t), monitorBin, cfg); err != nil {
		t.Fatal(err)
	}
	waitMonitorGone(t, cfg)
	st, err := ReadStatus(cfg.ExitFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.RestartCount != 2 || st.ExitCode != 1 || st.State != StateExited {
		t.Errorf("status = %+v, want 2 restarts and exit 1", st)
	}
	if o, _ := readLog(t, cfg.LogPath); o != "run\nrun\nrun\n" {
		t.Errorf("log = %q, want three runs", o)
	}
}

func TestOOMKilled(t *testing.T) {
	rt := firstRuntime(t)
	_, v1err := os.Stat("/sys/fs/cgroup/memory/memory.oom_control")
	v2, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	v1 := v1err == nil && len(v2) == 0
	if !v1 && !strings.Contains(string(v2), "memory") {
		t.Skip("requires a memory cgroup controller (v1 at /sys/fs/cgroup/memory, or v2's enabled at /sys/fs/cgroup)")
	}
	limit := int64(8 << 20)
	var cg string
	b := testutil.NewBundle(t, testutil.WithShell(`x=$(head -c 67108864 /dev/zero | tr "\0" a); echo survived`))
	cfg := newConfig(t, rt, b)
	cg = "/berth-monitor-test-" + cfg.ID[:12]
	b.Spec.Linux.CgroupsPath = cg
	b.Spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
	b.Save(t)
	cfg.OOMFiles = OOMFilesFor(cg)
	if want := "/sys/fs/cgroup/memory" + cg + "/memory.oom_control"; v1 && cfg.OOMFiles[0] != want {
		t.Errorf("OOMFilesFor(%q) = %q on a v1 memory host, want %q", cg, cfg.OOMFiles, want)
	}
	if _, err := Start(ctxT(t), monitorBin, cfg); err != nil {
		t.Fatal(err)
	}
	st, err := Wait(ctxT(t), cfg.StateDir, cfg.ExitFile)
	if err != nil {
		t.Fatal(err)
	}
	if !st.OOMKilled {
		t.Errorf("status = %+v, want OOMKilled", st)
	}
	waitMonitorGone(t, cfg)
}

func TestAttachBeforeStartGetsOutputAndGivesStdin(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt string) {
		b := testutil.NewBundle(t, testutil.WithShell(`echo first; read x; echo "got $x"; cat; echo done >&2; exit 5`))
		cfg := newConfig(t, rt, b)
		cfg.Stdin = true
		st, err := Create(ctxT(t), monitorBin, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != StateCreated || st.Pid <= 0 {
			t.Errorf("Create status = %+v", st)
		}
		var out, errOut bytes.Buffer
		sess, err := OpenAttach(ctxT(t), cfg.StateDir, AttachOptions{
			Stdin: strings.NewReader("hello\nrest\n"), Stdout: &out, Stderr: &errOut,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := StartCreated(ctxT(t), cfg.StateDir); err != nil {
			t.Fatal(err)
		}
		code, err := sess.Wait(ctxT(t))
		if err != nil || code != 5 {
			t.Errorf("attach ended with %d, %v; want 5", code, err)
		}
		if out.String() != "first\ngot hello\nrest\n" || errOut.String() != "done\n" {
			t.Errorf("attach got stdout %q stderr %q", out.String(), errOut.String())
		}
		waitMonitorGone(t, cfg)
		// A late attach gets the exit at once.
		if _, err := Attach(ctxT(t), cfg.StateDir, AttachOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("attach after the monitor exited: %v, want ErrNotFound", err)
		}
	})
}

func TestTerminalAttach(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt string) {
		b := testutil.NewBundle(t, testutil.WithArgs("sh"), testutil.WithSpec(func(s *specs.Spec) { s.Process.Terminal = true }))
		cfg := newConfig(t, rt, b)
		cfg.Terminal, cfg.Stdin = true, true
		// Deeper than a unix socket address holds (108 bytes).
		cfg.StateDir = filepath.Join(filepath.Dir(cfg.StateDir), strings.Repeat("d", 100), "state")
		if _, err := Create(ctxT(t), monitorBin, cfg); err != nil {
			t.Fatal(err)
		}
		inR, inW := io.Pipe()
		defer inW.Close()
		resize := make(chan Size)
		var mu sync.Mutex
		var out bytes.Buffer
		sess, err := OpenAttach(ctxT(t), cfg.StateDir, AttachOptions{Stdin: inR, Stdout: writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return out.Write(p)
		}), Resize: resize})
		if err != nil {
			t.Fatal(err)
		}
		if !sess.Terminal {
			t.Error("session does not know it has a terminal")
		}
		// Only root may attach.
		for p, want := range map[string]os.FileMode{cfg.StateDir: 0o700, filepath.Join(cfg.StateDir, socketFile): 0o600} {
			if fi, err := os.Stat(p); err != nil {
				t.Error(err)
			} else if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
			}
		}
		if _, err := StartCreated(ctxT(t), cfg.StateDir); err != nil {
			t.Fatal(err)
		}
		// The second send returns only once the first resize was sent.
		resize <- Size{Rows: 33, Cols: 101}
		resize <- Size{Rows: 33, Cols: 101}
		io.WriteString(inW, "tty; stty size; echo sum-$((40+2))\n")
		io.WriteString(inW, "exit 7\n")
		code, err := sess.Wait(ctxT(t))
		if err != nil || code != 7 {
			t.Errorf("attach ended with %d, %v; want 7", code, err)
		}
		mu.Lock()
		got := out.String()
		mu.Unlock()
		for _, want := range []string{"/dev/pts/", "33 101", "sum-42"} {
			if !strings.Contains(got, want) {
				t.Errorf("terminal output lacks %q:\n%q", want, got)
			}
		}
		o, _ := readLog(t, cfg.LogPath)
		if !strings.Contains(o, "sum-42") {
			t.Errorf("log lacks the terminal's output: %q", o)
		}
		waitMonitorGone(t, cfg)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestMonitorKilledLeavesContainerRunning(t *testing.T) {
	rt := firstRuntime(t)
	// The container's init outlives its monitor and is reparented to the
	// nearest subreaper: be it, so the test can reap what it made rather
	// than leave a zombie to a PID 1 that may not reap.
	if err := testutil.SetChildSubreaper(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	cfg := newConfig(t, rt, b)
	st, err := Start(ctxT(t), monitorBin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pid, ok := Alive(cfg.StateDir)
	if !ok || pid != st.MonitorPid {
		t.Fatalf("Alive = %d, %v; want %d", pid, ok, st.MonitorPid)
	}
	// SIGTERM is not the end of the monitor.
	unix.Kill(pid, unix.SIGTERM)
	if s, err := CurrentStatus(ctxT(t), cfg.StateDir); err != nil || s.State != StateRunning {
		t.Fatalf("after SIGTERM: %+v, %v", s, err)
	}
	unix.Kill(pid, unix.SIGKILL)
	waitGone(pid)
	if _, ok := Alive(cfg.StateDir); ok {
		t.Error("Alive reports a killed monitor")
	}
	if unix.Kill(st.Pid, 0) != nil {
		t.Error("the container died with its monitor")
	}
	out, _ := exec.Command(rt, "--root", cfg.RuntimeRoot, "state", cfg.ID).CombinedOutput()
	if !strings.Contains(string(out), `"running"`) {
		t.Errorf("runtime state after the monitor was killed: %s", out)
	}
	if err := Stopping(ctxT(t), cfg.StateDir); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Stopping without a monitor: %v, want ErrNotFound", err)
	}
}

func TestSlowClientDoesNotBlockContainer(t *testing.T) {
	rt := firstRuntime(t)
	const size = 24 << 20
	b := testutil.NewBundle(t, testutil.WithShell(fmt.Sprintf(`head -c %d /dev/zero | tr "\0" x; echo`, size)))
	cfg := newConfig(t, rt, b)
	cfg.LogMaxSize = 1 << 30
	if _, err := Create(ctxT(t), monitorBin, cfg); err != nil {
		t.Fatal(err)
	}
	// A client that attaches and never reads.
	conn, err := dial(ctxT(t), cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	writeJSONLine(conn, request{Op: opAttach})
	if _, err := StartCreated(ctxT(t), cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	st, err := Wait(ctxT(t), cfg.StateDir, cfg.ExitFile)
	if err != nil || st.ExitCode != 0 {
		t.Fatalf("exit = %+v, %v", st, err)
	}
	waitMonitorGone(t, cfg)
	o, _ := readLog(t, cfg.LogPath)
	if len(o) != size+1 {
		t.Errorf("log holds %d bytes of output, want %d", len(o), size+1)
	}
}

func TestReopenLog(t *testing.T) {
	rt := firstRuntime(t)
	b := testutil.NewBundle(t, testutil.WithShell(`echo one; read x; echo two`))
	cfg := newConfig(t, rt, b)
	cfg.Stdin = true
	if _, err := Create(ctxT(t), monitorBin, cfg); err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	var out bytes.Buffer
	sess, err := OpenAttach(ctxT(t), cfg.StateDir, AttachOptions{Stdin: inR, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StartCreated(ctxT(t), cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	// Wait for "one" in the log, move the log away, reopen, go on.
	waitUntil(t, "output in the log", func() bool {
		data, _ := os.ReadFile(cfg.LogPath)
		return bytes.Contains(data, []byte("one"))
	})
	if err := os.Rename(cfg.LogPath, cfg.LogPath+".old"); err != nil {
		t.Fatal(err)
	}
	if err := ReopenLog(ctxT(t), cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	io.WriteString(inW, "go\n")
	inW.Close()
	if code, err := sess.Wait(ctxT(t)); err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	if o, _ := readLog(t, cfg.LogPath); o != "two\n" {
		t.Errorf("reopened log = %q, want two", o)
	}
	waitMonitorGone(t, cfg)
}

func TestMonitorRSS(t *testing.T) {
	rt := firstRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	cfg := newConfig(t, rt, b)
	st, err := Start(ctxT(t), monitorBin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", st.MonitorPid))
	if err != nil {
		t.Fatal(err)
	}
	// The file-backed part is the binary's pages in the page cache, shared
	// by every monitor; the anonymous part is each monitor's own.
	rollup, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", st.MonitorPid))
	for _, line := range strings.Split(string(rollup), "\n") {
		if strings.HasPrefix(line, "Pss:") || strings.HasPrefix(line, "Private_") {
			t.Log(strings.Join(strings.Fields(line), " "))
		}
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Rss") {
			t.Log(strings.Join(strings.Fields(line), " "))
		}
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			t.Logf("berth-monitor holding a sleep container (%s): VmRSS %d kB", filepath.Base(rt), kb)
			// The budget: containerd's Rust shim's 3.5 MB. Only for the
			// monitor built here: BERTH_MONITOR may be a -race build.
			if kb > 3584 && os.Getenv("BERTH_MONITOR") == "" {
				t.Errorf("monitor RSS %d kB, over the 3.5 MiB budget", kb)
			}
		}
	}
	Stopping(ctxT(t), cfg.StateDir)
	exec.Command(rt, "--root", cfg.RuntimeRoot, "kill", cfg.ID, "KILL").Run()
	Wait(ctxT(t), cfg.StateDir, cfg.ExitFile)
	waitMonitorGone(t, cfg)
}

func TestConfigValidation(t *testing.T) {
	good := Config{ID: "abc", Runtime: "/usr/sbin/runc", Bundle: "/b", LogPath: "/l", StateDir: "/s", ExitFile: "/e"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Config){
		"id":          func(c *Config) { c.ID = "../x" },
		"runtime":     func(c *Config) { c.Runtime = "runc" },
		"stateDir":    func(c *Config) { c.StateDir = "" },
		"restart":     func(c *Config) { c.Restart.Name = "sometimes" },
		"maxRetries":  func(c *Config) { c.Restart.MaxRetries = -1 },
		"logMaxFiles": func(c *Config) { c.LogMaxFiles = -2 },
	} {
		c := good
		change(&c)
		err := c.Validate()
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Validate = %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := Create(context.Background(), monitorBin, Config{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Create with an empty config: %v", err)
	}
}

func TestAliveRejectsReusedPid(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, pidFile), []byte(fmt.Sprintf("%d 1\n", os.Getpid())), 0o600)
	if _, ok := Alive(dir); ok {
		t.Error("Alive accepted a pid whose start time differs")
	}
	start, _ := procStartTime(os.Getpid())
	os.WriteFile(filepath.Join(dir, pidFile), []byte(fmt.Sprintf("%d %d\n", os.Getpid(), start)), 0o600)
	if pid, ok := Alive(dir); !ok || pid != os.Getpid() {
		t.Error("Alive rejected a live process")
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	writeFrame(&buf, frameStdout, []byte("abc"))
	typ, p, err := readFrame(&buf)
	if err != nil || typ != frameStdout || string(p) != "abc" {
		t.Fatalf("frame round trip: %d %q %v", typ, p, err)
	}
	if _, _, err := readFrame(bytes.NewReader([]byte{2, 0xff, 0xff, 0xff, 0xff})); err == nil {
		t.Error("readFrame accepted a 4 GiB frame")
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{2, 0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{6, 0, 0, 0, 4, 0, 0, 0, 1})
	f.Add([]byte{1, 0xff, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			_, p, err := readFrame(r)
			if err != nil {
				return
			}
			if len(p) > maxFrame {
				t.Fatalf("frame of %d bytes", len(p))
			}
		}
	})
}

func TestCreateAbandonedLeavesNothing(t *testing.T) {
	rt := firstRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	cfg := newConfig(t, rt, b)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Create(ctx, monitorBin, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a cancelled context: %v", err)
	}
	// The monitor notices nobody waits for it, deletes the container and
	// records the end.
	waitUntil(t, "the abandoned monitor's exit file", func() bool {
		_, err := os.Stat(cfg.ExitFile)
		return err == nil
	})
	waitMonitorGone(t, cfg)
}

func TestAlwaysRestartsUntilStopping(t *testing.T) {
	rt := firstRuntime(t)
	b := testutil.NewBundle(t, testutil.WithShell(`echo run`))
	cfg := newConfig(t, rt, b)
	cfg.Restart = RestartPolicy{Name: "always"}
	if _, err := Start(ctxT(t), monitorBin, cfg); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "3 restarts", func() bool {
		st, err := CurrentStatus(ctxT(t), cfg.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		return st.RestartCount >= 3
	})
	if err := Stopping(ctxT(t), cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	// Running or in its backoff, it is not restarted again: kill a run in
	// progress (if any) as the engine would.
	exec.Command(rt, "--root", cfg.RuntimeRoot, "kill", cfg.ID, "KILL").Run()
	waitMonitorGone(t, cfg)
	st, err := ReadStatus(filepath.Join(cfg.StateDir, statusFile))
	if err != nil || st.State != StateExited || !st.StoppedByUser {
		t.Errorf("status after stop = %+v, %v", st, err)
	}
	o, _ := readLog(t, cfg.LogPath)
	if n := strings.Count(o, "run\n"); n < 3 || n != st.RestartCount+1 && n != st.RestartCount {
		t.Errorf("log has %d runs for %d restarts", n, st.RestartCount)
	}
}

func TestFollowLogUntilMonitorExits(t *testing.T) {
	rt := firstRuntime(t)
	b := testutil.NewBundle(t, testutil.WithShell(`echo a; read x; echo b`))
	cfg := newConfig(t, rt, b)
	cfg.Stdin = true
	if _, err := Create(ctxT(t), monitorBin, cfg); err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	sess, err := OpenAttach(ctxT(t), cfg.StateDir, AttachOptions{Stdin: inR})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StartCreated(ctxT(t), cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out bytes.Buffer
	followed := make(chan error, 1)
	go func() {
		followed <- logs.Read(ctxT(t), cfg.LogPath, logs.ReadOptions{Follow: true, Tail: -1, PollInterval: 10 * time.Millisecond,
			Stdout: writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) }),
			Done:   func() bool { _, ok := Alive(cfg.StateDir); return !ok },
		})
	}()
	waitUntil(t, "the follower's first line", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return out.String() == "a\n"
	})
	io.WriteString(inW, "go\n")
	inW.Close()
	sess.Wait(ctxT(t))
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	if out.String() != "a\nb\n" {
		t.Errorf("followed %q", out.String())
	}
	waitMonitorGone(t, cfg)
}

func TestOnlyRootMayConnect(t *testing.T) {
	rt := firstRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	cfg := newConfig(t, rt, b)
	if _, err := Create(ctxT(t), monitorBin, cfg); err != nil {
		t.Fatal(err)
	}
	// Connect as nobody: on a thread of its own whose fsuid (what the
	// kernel checks a socket's path against) is 65534. The thread is not
	// unlocked, so it ends with the goroutine rather than serve others.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		unix.Setfsuid(65534)
		unix.Setfsgid(65534)
		c, err := dialUnix(ctxT(t), filepath.Join(cfg.StateDir, socketFile))
		if err == nil {
			c.Close()
		}
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, unix.EACCES) {
		t.Errorf("connect as nobody: %v, want EACCES", err)
	}
	// The container was created only: deleting it ends the monitor.
	exec.Command(rt, "--root", cfg.RuntimeRoot, "delete", "--force", cfg.ID).Run()
	waitMonitorGone(t, cfg)
}
