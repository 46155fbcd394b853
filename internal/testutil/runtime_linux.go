package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// CallTimeout bounds every runtime invocation, so a hung runtime fails the
// test instead of the whole suite.
const CallTimeout = 60 * time.Second

// Runtime drives a runtime binary with runc's command line, the way
// containerd's shim and Podman's conmon do: global --root, then a command.
// Root is a temporary directory of its own, so tests never see each other's
// containers. Every container id made by NewID is force-deleted and checked
// for leaks (CheckNoLeaks) when the test ends, whether it passed or not.
type Runtime struct {
	Bin  string
	Root string

	t       testing.TB
	scratch string // output files and pid files

	mu       sync.Mutex // guards the fields below
	ids      []string
	pids     map[string][]int  // processes of a container the test may have to reap
	bundles  map[string]string // bundle of a container, for the mount leak check
	outFiles map[string][2]string
	calls    int
}

// Result is what one invocation of the runtime printed, and its exit code
// (-1 if it could not be run or timed out).
type Result struct {
	Args     []string
	Stdout   string
	Stderr   string
	ExitCode int
}

// String describes r for a failure message.
func (r Result) String() string {
	return fmt.Sprintf("`%s`: exit %d\nstdout: %s\nstderr: %s",
		strings.Join(r.Args, " "), r.ExitCode, r.Stdout, r.Stderr)
}

// OK fails t (fatally) unless r exited 0, and returns r.
func (r Result) OK(t testing.TB) Result {
	t.Helper()
	if r.ExitCode != 0 {
		t.Fatalf("runtime failed: %s", r)
	}
	return r
}

// Fails fails t unless r exited non-zero, and returns r.
func (r Result) Fails(t testing.TB) Result {
	t.Helper()
	if r.ExitCode == 0 {
		t.Fatalf("runtime succeeded, want an error: %s", r)
	}
	return r
}

// NewRuntime returns a driver for bin with a fresh --root. When t ends it
// force-deletes every container named by NewID and checks that nothing of
// them is left.
func NewRuntime(t testing.TB, bin string) *Runtime {
	t.Helper()
	root, err := os.MkdirTemp("", "berth-e2e-root-")
	if err != nil {
		t.Fatal(err)
	}
	scratch, err := os.MkdirTemp("", "berth-e2e-io-")
	if err != nil {
		t.Fatal(err)
	}
	r := &Runtime{
		Bin: bin, Root: root, t: t, scratch: scratch,
		pids: map[string][]int{}, bundles: map[string]string{}, outFiles: map[string][2]string{},
	}
	t.Cleanup(func() {
		r.cleanup()
		os.RemoveAll(scratch)
		// A state root with anything in it is a leak; Remove (not RemoveAll)
		// reports it.
		if err := os.Remove(root); err != nil {
			entries, _ := os.ReadDir(root)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("state root %s not empty after cleanup: %v (%v)", root, names, err)
			os.RemoveAll(root)
		}
	})
	return r
}

// NewID returns a container id "berth-e2e-<short>-<random>" and registers it
// for cleanup.
func (r *Runtime) NewID(short string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		r.t.Fatal(err)
	}
	id := fmt.Sprintf("berth-e2e-%s-%s", short, hex.EncodeToString(b[:]))
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.mu.Unlock()
	return id
}

// CallOpts change how one invocation is made.
type CallOpts struct {
	Stdin   io.Reader // nil: /dev/null
	Timeout time.Duration
	// Stdout and Stderr, if set, receive the output instead of scratch files
	// (the Result then holds no output).
	Stdout, Stderr *os.File
}

// Do runs the runtime with --root and args, and returns what it printed.
// Output goes through files, not pipes: a detached container inherits the
// runtime's stdio and would hold a pipe open long after the runtime exits.
func (r *Runtime) Do(args ...string) Result {
	r.t.Helper()
	return r.DoWith(CallOpts{}, args...)
}

// DoWith is Do with options.
func (r *Runtime) DoWith(o CallOpts, args ...string) Result {
	r.t.Helper()
	res, _ := r.call(o, args)
	return res
}

// Cmd returns an unstarted command for the runtime with --root and args, for
// tests that need to signal the runtime itself.
func (r *Runtime) Cmd(args ...string) *exec.Cmd {
	return exec.Command(r.Bin, append([]string{"--root", r.Root}, args...)...)
}

func (r *Runtime) call(o CallOpts, args []string) (Result, [2]string) {
	r.t.Helper()
	r.mu.Lock()
	r.calls++
	n := r.calls
	r.mu.Unlock()
	full := append([]string{"--root", r.Root}, args...)
	res := Result{Args: append([]string{r.Bin}, full...), ExitCode: -1}
	files := [2]string{
		filepath.Join(r.scratch, fmt.Sprintf("%d.stdout", n)),
		filepath.Join(r.scratch, fmt.Sprintf("%d.stderr", n)),
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = CallTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.Bin, full...)
	cmd.Stdin = o.Stdin
	var err error
	if o.Stdout != nil {
		cmd.Stdout = o.Stdout
	} else if cmd.Stdout, err = os.Create(files[0]); err != nil {
		r.t.Fatal(err)
	}
	if o.Stderr != nil {
		cmd.Stderr = o.Stderr
	} else if cmd.Stderr, err = os.Create(files[1]); err != nil {
		r.t.Fatal(err)
	}
	runErr := cmd.Run()
	for _, w := range []io.Writer{cmd.Stdout, cmd.Stderr} {
		if f, ok := w.(*os.File); ok && f != o.Stdout && f != o.Stderr {
			f.Close()
		}
	}
	if o.Stdout == nil {
		res.Stdout = readString(files[0])
	}
	if o.Stderr == nil {
		res.Stderr = readString(files[1])
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.Stderr += fmt.Sprintf("\n[testutil: timed out after %v]", timeout)
	case runErr == nil:
		res.ExitCode = 0
	case errors.As(runErr, &ee):
		res.ExitCode = ee.ExitCode()
		if ee.ExitCode() < 0 {
			res.Stderr += "\n[testutil: " + ee.Error() + "]"
		}
	default:
		res.Stderr += "\n[testutil: " + runErr.Error() + "]"
	}
	return res, files
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func (r *Runtime) pidFile(id, name string) string {
	return filepath.Join(r.scratch, id+"."+name+".pid")
}

// Create runs `create --bundle B --pid-file F [flags] id`. The container's
// stdio are the runtime's: stdin /dev/null, stdout and stderr files that
// Output reads later.
func (r *Runtime) Create(id, bundle string, flags ...string) Result {
	r.t.Helper()
	return r.startContainer("create", id, bundle, flags)
}

// Run runs `run --bundle B --pid-file F [flags] id`. With -d in flags it
// returns once the container runs; without, when it exits, with its status.
func (r *Runtime) Run(id, bundle string, flags ...string) Result {
	r.t.Helper()
	return r.startContainer("run", id, bundle, flags)
}

// RunWith is Run with call options (stdin, say).
func (r *Runtime) RunWith(o CallOpts, id, bundle string, flags ...string) Result {
	r.t.Helper()
	return r.startContainerWith(o, "run", id, bundle, flags)
}

func (r *Runtime) startContainer(cmd, id, bundle string, flags []string) Result {
	r.t.Helper()
	return r.startContainerWith(CallOpts{}, cmd, id, bundle, flags)
}

func (r *Runtime) startContainerWith(o CallOpts, cmd, id, bundle string, flags []string) Result {
	r.t.Helper()
	pidFile := r.pidFile(id, "init")
	args := append([]string{cmd, "--bundle", bundle, "--pid-file", pidFile}, flags...)
	args = append(args, id)
	r.mu.Lock()
	r.bundles[id] = bundle
	r.mu.Unlock()
	res, files := r.call(o, args)
	r.mu.Lock()
	r.outFiles[id] = files
	r.mu.Unlock()
	if pid, err := readPid(pidFile); err == nil {
		r.addPid(id, pid)
	}
	return res
}

func (r *Runtime) addPid(id string, pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pids[id] = append(r.pids[id], pid)
}

// Output returns what the container (created by Create or Run) has written
// to its stdout and stderr so far. For Create, the runtime's own messages
// from create are in there too, as with runc.
func (r *Runtime) Output(id string) (stdout, stderr string) {
	r.mu.Lock()
	files, ok := r.outFiles[id]
	r.mu.Unlock()
	if !ok {
		r.t.Fatalf("no output files for container %s: not made by Create or Run", id)
	}
	return readString(files[0]), readString(files[1])
}

// Start runs `start id`.
func (r *Runtime) Start(id string) Result {
	r.t.Helper()
	return r.Do("start", id)
}

// State is the JSON `state` prints: the runtime-spec state plus runc's
// extra fields, kept raw in Raw.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations"`
	Raw         map[string]any    `json:"-"`
}

// State runs `state id` and decodes its JSON; it fails t if the command
// fails or prints something that is not JSON.
func (r *Runtime) State(id string) State {
	r.t.Helper()
	res := r.Do("state", id).OK(r.t)
	var s State
	if err := json.Unmarshal([]byte(res.Stdout), &s); err != nil {
		r.t.Fatalf("state %s: decode %q: %v", id, res.Stdout, err)
	}
	if err := json.Unmarshal([]byte(res.Stdout), &s.Raw); err != nil {
		r.t.Fatalf("state %s: decode %q: %v", id, res.Stdout, err)
	}
	return s
}

// Kill runs `kill [flags] id signal`.
func (r *Runtime) Kill(id, signal string, flags ...string) Result {
	r.t.Helper()
	args := append([]string{"kill"}, flags...)
	return r.Do(append(args, id, signal)...)
}

// Delete runs `delete [flags] id`.
func (r *Runtime) Delete(id string, flags ...string) Result {
	r.t.Helper()
	args := append([]string{"delete"}, flags...)
	return r.Do(append(args, id)...)
}

// Exec runs `exec --pid-file F [flags] id cmd...`. A process started with
// -d is recorded, so cleanup reaps it.
func (r *Runtime) Exec(id string, flags []string, cmd ...string) Result {
	r.t.Helper()
	return r.ExecWith(CallOpts{}, id, flags, cmd...)
}

// ExecWith is Exec with call options.
func (r *Runtime) ExecWith(o CallOpts, id string, flags []string, cmd ...string) Result {
	r.t.Helper()
	r.mu.Lock()
	r.calls++
	pidFile := r.pidFile(id, fmt.Sprintf("exec%d", r.calls))
	r.mu.Unlock()
	args := append([]string{"exec", "--pid-file", pidFile}, flags...)
	args = append(args, id)
	res, _ := r.call(o, append(args, cmd...))
	if pid, err := readPid(pidFile); err == nil {
		r.addPid(id, pid)
	}
	return res
}

// List runs `list [flags]`.
func (r *Runtime) List(flags ...string) Result {
	r.t.Helper()
	return r.Do(append([]string{"list"}, flags...)...)
}

// Ps runs `ps [flags] id [ps-args]`.
func (r *Runtime) Ps(id string, flags []string, psArgs ...string) Result {
	r.t.Helper()
	args := append([]string{"ps"}, flags...)
	return r.Do(append(append(args, id), psArgs...)...)
}

// Pid returns the container's init pid from the --pid-file of Create/Run.
func (r *Runtime) Pid(id string) int {
	r.t.Helper()
	pid, err := readPid(r.pidFile(id, "init"))
	if err != nil {
		r.t.Fatalf("pid of %s: %v", id, err)
	}
	return pid
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s holds %q", path, b)
	}
	return pid, nil
}

// Wait waits for the container's init (from the pid file) to exit and
// returns its status as a shell reports it: the exit code, or 128+signal.
// It needs the test process to be a child subreaper (SetChildSubreaper):
// see reaper_linux.go.
func (r *Runtime) Wait(id string) int {
	r.t.Helper()
	r.mu.Lock()
	others := append([]int(nil), r.pids[id]...)
	r.mu.Unlock()
	status, err := waitPidReaping(r.Pid(id), CallTimeout, others)
	if err != nil {
		r.t.Fatalf("wait for container %s: %v", id, err)
	}
	return status
}

// cleanup force-deletes every container of the test, reaps its processes,
// and checks that nothing is left.
func (r *Runtime) cleanup() {
	r.mu.Lock()
	ids := append([]string(nil), r.ids...)
	r.mu.Unlock()
	for _, id := range ids {
		r.mu.Lock()
		pids := append([]int(nil), r.pids[id]...)
		bundle := r.bundles[id]
		r.mu.Unlock()
		// Reap while delete runs: the runtime waits for the init to die,
		// which needs the zombies of its exec'd processes reaped.
		stop := make(chan struct{})
		reaped := make(chan struct{})
		go func() {
			defer close(reaped)
			reapAll(pids, CallTimeout, stop)
		}()
		res, _ := r.call(CallOpts{}, []string{"delete", "--force", id})
		if res.ExitCode != 0 && !strings.Contains(res.Stderr, "not exist") {
			r.t.Logf("cleanup of %s: %s", id, res)
		}
		reapAll(pids, 10*time.Second, nil)
		close(stop)
		<-reaped
		CheckNoLeaks(r.t, Leaks{Root: r.Root, ID: id, Pids: pids, Bundle: bundle})
	}
}
