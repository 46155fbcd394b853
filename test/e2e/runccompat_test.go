package e2e

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// TestExecCapSets: exec --cap adds to the bounding, effective and permitted
// sets only, and to ambient where the config makes it inheritable (runc
// 1.2 and later, capabilities.bats "runc exec --cap").
func TestExecCapSets(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), testutil.WithSpec(func(s *specs.Spec) {
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_SYSLOG"}, Inheritable: []string{"CAP_SYSLOG"}}
	}))
	id := rt.NewID("execcap")
	rt.Run(id, b.Dir, "-d").OK(t)
	status := rt.Exec(id, []string{"--cap", "CAP_KILL", "--cap", "CAP_SYSLOG"}, "cat", "/proc/self/status").OK(t).Stdout
	// CAP_KILL is bit 5, CAP_SYSLOG bit 34.
	for field, want := range map[string]string{
		"CapInh": "0000000400000000", "CapPrm": "0000000400000020", "CapEff": "0000000400000020",
		"CapBnd": "0000000400000020", "CapAmb": "0000000400000000",
	} {
		if got := statusField(status, field); got != want {
			t.Errorf("exec --cap: %s %s, want %s", field, got, want)
		}
	}
	rt.Delete(id, "--force").OK(t)
}

// TestExecPaused: exec in a paused container fails at once with runc's
// message; with --ignore-paused it runs once the container is resumed.
func TestExecPaused(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("execpaused")
	rt.Run(id, b.Dir, "-d").OK(t)
	rt.Do("pause", id).OK(t)
	res := rt.Exec(id, nil, "true").Fails(t)
	if !strings.Contains(res.Stderr, "cannot exec in a paused container") {
		t.Errorf("exec in a paused container: %s, want runc's message", res)
	}
	done := make(chan testutil.Result, 1)
	go func() { done <- rt.Exec(id, []string{"--ignore-paused"}, "echo", "ok") }()
	rt.Do("resume", id).OK(t)
	if res := <-done; res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != "ok" {
		t.Errorf("exec --ignore-paused: %s, want ok once resumed", res)
	}
	rt.Delete(id, "--force").OK(t)
}

// TestCreateInNonEmptyCgroup: a second container in the cgroup of a running
// one is refused, as runc does, and the first one is left alone.
func TestCreateInNonEmptyCgroup(t *testing.T) {
	rt := newRuntime(t)
	first := rt.NewID("cgshare")
	cgPath := "/berth-e2e-shared-" + randSuffix(t)
	t.Cleanup(func() {
		for _, d := range testutil.FindCgroups(strings.TrimPrefix(cgPath, "/")) {
			t.Errorf("cgroup %s left behind", d)
		}
	})
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), testutil.WithSpec(func(s *specs.Spec) {
		s.Linux.CgroupsPath = cgPath
	}))
	rt.Run(first, b.Dir, "-d").OK(t)
	second := rt.NewID("cgshare")
	res := rt.Create(second, b.Dir).Fails(t)
	if !strings.Contains(res.Stderr, "container's cgroup is not empty") {
		t.Errorf("create in a non-empty cgroup: %s, want runc's message", res)
	}
	if s := rt.State(first); s.Status != "running" {
		t.Errorf("first container after the refused create: %+v, want running", s)
	}
	rt.Delete(first, "--force").OK(t)
}

// TestPsOptionsAfterID: what follows the container id goes to ps(1), flags
// included (runc ps.bats "ps -e -x").
func TestPsOptionsAfterID(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("psopts")
	rt.Run(id, b.Dir, "-d").OK(t)
	out := rt.Ps(id, nil, "-e", "-x").OK(t).Stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "PID") || !strings.Contains(lines[1], "sleep") {
		t.Errorf("ps ID -e -x: want ps's header and the container's sleep, got %q", out)
	}
	if out := rt.Ps(id, nil, "--", "-e").OK(t).Stdout; !strings.Contains(out, "sleep") {
		t.Errorf("ps ID -- -e: want the container's sleep, got %q", out)
	}
	rt.Delete(id, "--force").OK(t)
}

// TestStdioOwner: a process whose user is not root owns its terminal and
// its stdio pipes, so that `tty` output and reopening /proc/self/fd/1 work
// (runc tty.bats "runc run [tty owner] ({u,g}id != 0)"), for the init and
// for exec; a regular file given as stdio keeps its owner.
func TestStdioOwner(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithShell(`stat -c %u:%g $(tty)`),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Process.Terminal = true
			s.Process.User = specs.User{UID: 1000, GID: 100}
		}))
	cs := testutil.NewConsoleSocket(t)
	id := rt.NewID("ttyowner")
	rt.Create(id, b.Dir, "--console-socket", cs.Path).OK(t)
	master, err := cs.Receive(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	rt.Start(id).OK(t)
	out := strings.TrimSpace(readUntilEOF(t, master))
	rt.Wait(id)
	// devpts' gid=5 mount option makes the pty group tty.
	if out != "1000:5" {
		t.Errorf("owner of the container's terminal = %q, want 1000:5", out)
	}
	rt.Delete(id).OK(t)

	b2 := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"), testutil.WithSpec(func(s *specs.Spec) {
		s.Process.User = specs.User{UID: 1000, GID: 100}
	}))
	id2 := rt.NewID("pipeowner")
	rt.Run(id2, b2.Dir, "-d").OK(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res := rt.ExecWith(testutil.CallOpts{Stdout: w}, id2, []string{"--user", "1000:100"}, "sh", "-c", "echo reopened > /proc/self/fd/1; stat -L -c %u /proc/self/fd/2 >&2")
	w.Close()
	got, _ := io.ReadAll(r)
	if res.ExitCode != 0 || strings.TrimSpace(string(got)) != "reopened" {
		t.Errorf("exec as uid 1000 reopening its stdout pipe: %s, stdout %q; want \"reopened\"", res, got)
	}
	// stderr is the harness's scratch file: it stays root's.
	if strings.TrimSpace(res.Stderr) != "0" {
		t.Errorf("owner of a regular file given as stderr = %q, want 0 (unchanged)", res.Stderr)
	}
	rt.Delete(id2, "--force").OK(t)
}

// TestRunKeep: a foreground `run --keep` leaves the stopped container, and
// its cgroup, for `state` and `delete` (runc run.bats "runc run --keep").
func TestRunKeep(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	id := rt.NewID("keep")
	rt.Run(id, b.Dir, "--keep").OK(t)
	if st := rt.State(id); st.Status != "stopped" {
		t.Errorf("state after run --keep: %q, want stopped", st.Status)
	}
	rt.Delete(id).OK(t)
	if res := rt.Do("state", id); res.ExitCode == 0 {
		t.Errorf("state after delete: %s, want a failure", res)
	}
}

// TestRunExecveError: when the execve of the container's program fails
// after the runtime stopped listening (a script whose interpreter is
// missing), the container's stderr gets runc's bare line and the exit
// status is 127 (runc run.bats "runc run [execve error]").
func TestRunExecveError(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("/run.sh"), testutil.WithRootfs(func(rootfs string) error {
		return os.WriteFile(filepath.Join(rootfs, "run.sh"), []byte("#!/mmnnttbb foo bar\nsh\n"), 0o755)
	}))
	res := rt.Run(rt.NewID("execve"), b.Dir)
	if res.ExitCode != 127 || res.Stderr != "exec /run.sh: no such file or directory\n" {
		t.Errorf("run of a script without its interpreter: %s; want exit 127 and runc's line", res)
	}
}

// TestExecEnvWithComma: an --env value keeps its commas: a repeated flag
// is the list, as with runc.
func TestExecEnvWithComma(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("envcomma")
	rt.Run(id, b.Dir, "-d").OK(t)
	out := rt.Exec(id, []string{"--env", "LIST=a,b,c"}, "sh", "-c", "echo $LIST").OK(t).Stdout
	if out != "a,b,c\n" {
		t.Errorf("exec --env LIST=a,b,c: LIST is %q", out)
	}
	rt.Delete(id, "--force").OK(t)
}
