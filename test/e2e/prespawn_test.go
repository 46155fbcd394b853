package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// A plain `create` starts the container init's stage before berth-runtime's
// Go runtime (internal/runtime/fastpath/prespawn.c). For the plainest
// configs that init does create's work itself and berth-runtime's Go
// runtime never starts (runtime.SelfCreate); otherwise the Go code adopts
// the stage once it has read the spec. --debug says which happened. These
// tests drive create as containerd's shim does (--root, --log, --bundle,
// --pid-file).

// TestPlainCreateModes: whichever way it was made, the container is the
// same: its init in its cgroups, with the cgroup namespace that can only
// be made once it has joined them, its pid in the pid file, and it runs the
// process on start.
func TestPlainCreateModes(t *testing.T) {
	skipIfRunc(t, "berth-runtime's prespawned init stage")
	testutil.RequiresRoot(t)
	rt := newRuntime(t)
	// The default spec has a cgroup namespace, as runc's does.
	adj := 500
	b := testutil.NewBundle(t, testutil.WithShell("cat /proc/self/cgroup; echo oom_score_adj $(cat /proc/self/oom_score_adj)"),
		testutil.WithSpec(func(s *specs.Spec) { s.Process.OOMScoreAdj = &adj }))

	for _, tc := range []struct {
		name, env string
		want      []string // in the --debug log
		notWant   []string
	}{
		{name: "self-create", want: []string{"done by the container's init"}, notWant: []string{"before the Go runtime"}},
		{name: "adopted", env: "BERTH_NO_SELF_CREATE=1", want: []string{"before the Go runtime", "adopted=true"}, notWant: []string{"done by the container's init"}},
		{name: "no prespawn", env: "BERTH_NO_PRESPAWN=1", notWant: []string{"before the Go runtime", "done by the container's init"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			id := rt.NewID("plain")
			dir := t.TempDir()
			logPath, outPath, pidPath := filepath.Join(dir, "log"), filepath.Join(dir, "out"), filepath.Join(dir, "pid")
			out0, err := os.Create(outPath)
			if err != nil {
				t.Fatal(err)
			}
			defer out0.Close()
			cmd := rt.Cmd("--log", logPath, "--debug", "create", "--bundle", b.Dir, "--pid-file", pidPath, id)
			cmd.Stdout, cmd.Stderr, cmd.Env = out0, out0, os.Environ()
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			if err := cmd.Run(); err != nil {
				o, _ := os.ReadFile(outPath)
				t.Fatalf("create: %v\n%s", err, o)
			}
			st := rt.State(id)
			if st.Status != "created" {
				t.Errorf("status %q after create, want created", st.Status)
			}
			if data, err := os.ReadFile(pidPath); err != nil || string(data) != strconv.Itoa(st.Pid) {
				t.Errorf("pid file %q (%v), state's pid %d", data, err, st.Pid)
			}
			self, _ := os.Readlink("/proc/self/ns/cgroup")
			if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/cgroup", st.Pid)); err != nil || ns == self {
				t.Errorf("the created init's cgroup namespace %q (%v), the host's %q: want its own", ns, err, self)
			}
			// Seen from the host, the init is in the container's cgroup
			// on every hierarchy.
			cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
				if !strings.HasSuffix(l, "/"+id) {
					t.Errorf("the created init's cgroup %q, want the container's (%s)", l, id)
				}
			}
			rt.Start(id).OK(t)
			deadline := time.Now().Add(testutil.CallTimeout)
			for rt.State(id).Status != "stopped" {
				if time.Now().After(deadline) {
					t.Fatalf("container %s still running after %s", id, testutil.CallTimeout)
				}
				time.Sleep(10 * time.Millisecond)
			}
			logData, _ := os.ReadFile(logPath)
			outData, _ := os.ReadFile(outPath)
			rt.Delete(id).OK(t)
			for _, w := range tc.want {
				if !strings.Contains(string(logData), w) {
					t.Errorf("--debug log does not say %q:\n%s", w, logData)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(string(logData), w) {
					t.Errorf("--debug log says %q:\n%s", w, logData)
				}
			}
			lines := strings.Split(strings.TrimSpace(string(outData)), "\n")
			if last := lines[len(lines)-1]; last != "oom_score_adj 500" {
				t.Errorf("the container printed %q, want process.oomScoreAdj: \"oom_score_adj 500\"", last)
			}
			for _, l := range lines[:len(lines)-1] {
				if !strings.HasSuffix(l, ":/") {
					t.Errorf("/proc/self/cgroup line %q, want the cgroup namespace root \"/\" (all of %q)", l, outData)
				}
			}
		})
	}
}

// TestSelfCreateFailuresLeaveNothing: a create that its init does itself
// and that fails after the init saved the container (a mount that cannot
// be made, a pid file that cannot be written) or before (a limit the host
// refuses) fails as the Go create does, with the reason, and leaves no
// state, cgroup or process.
func TestSelfCreateFailuresLeaveNothing(t *testing.T) {
	skipIfRunc(t, "berth-runtime's self-creating init")
	testutil.RequiresRoot(t)
	rt := newRuntime(t)
	before := liveInits(t)
	missing := filepath.Join(hostDir(t), "missing")
	for _, tc := range []struct {
		name  string
		opt   testutil.BundleOption
		flags []string
		want  string
	}{
		{name: "mount source missing", opt: testutil.WithSpec(func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: missing, Options: []string{"bind"}})
		}), want: missing},
		{name: "pid file in a missing directory", opt: testutil.WithArgs("true"), flags: []string{"--pid-file", filepath.Join(missing, "pid")}, want: "--pid-file"},
		{name: "cpus the host lacks", opt: withResources(func(r *specs.LinuxResources) { r.CPU = &specs.LinuxCPU{Cpus: "999"} }),
			want: "linux.resources.cpu.cpus"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			b := testutil.NewBundle(t, tc.opt)
			id := rt.NewID("selffail")
			logPath := filepath.Join(t.TempDir(), "log")
			args := append([]string{"--log", logPath, "--log-format", "json", "--debug", "create", "--bundle", b.Dir}, tc.flags...)
			res := rt.Do(append(args, id)...).Fails(t)
			if !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("create failed without naming %q: %s", tc.want, res)
			}
			logData, _ := os.ReadFile(logPath)
			if !strings.Contains(string(logData), "done by the container's init") && tc.name != "cpus the host lacks" {
				t.Errorf("the init did not do the create (--debug log):\n%s", logData)
			}
			// containerd's shim reports the last error line of --log.
			if !strings.Contains(string(logData), `"level":"error"`) || !strings.Contains(string(logData), tc.want) {
				t.Errorf("--log has no error line naming %q:\n%s", tc.want, logData)
			}
			checkCreateLeftNothing(t, rt, id, b)
			if n := liveInits(t); n != before {
				t.Errorf("%d container inits after the failed create, %d before", n, before)
			}
		})
	}
}

// TestCreateDiscardsPrespawnedInit: a create that fails after its stage was
// started leaves no init behind (the stage has made namespaces and forked
// the init before the runtime read the spec).
func TestCreateDiscardsPrespawnedInit(t *testing.T) {
	skipIfRunc(t, "berth-runtime's prespawned init stage")
	testutil.RequiresRoot(t)
	rt := newRuntime(t)
	before := liveInits(t)

	bad := testutil.NewBundle(t, testutil.WithSpec(func(s *specs.Spec) { s.Process.Args = nil }))
	res := rt.Create(rt.NewID("badspec"), bad.Dir).Fails(t)
	if !strings.Contains(res.Stderr, "process.args") {
		t.Errorf("create of a spec without process.args: %s", res)
	}
	if n := liveInits(t); n != before {
		t.Errorf("%d container inits after the failed create, %d before", n, before)
	}

	good := testutil.NewBundle(t, testutil.WithShell("true"))
	id := rt.NewID("twice")
	rt.Create(id, good.Dir).OK(t)
	rt.Create(id, good.Dir).Fails(t)
	if n := liveInits(t); n != before+1 {
		t.Errorf("%d container inits after a second create of the same id, want %d (the first one's)", n, before+1)
	}
	rt.Delete(id, "--force").OK(t)
}

// liveInits counts the processes that are a container's init before its
// start: berth-runtime's init, waiting.
func liveInits(t *testing.T) int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range procs {
		if c, err := os.ReadFile(p); err == nil && bytes.HasPrefix(c, []byte("berth-runtime\x00init\x00")) {
			n++
		}
	}
	return n
}

// TestCreateGlobalFlagsRefusedAlike: a global flag the CLI refuses fails a
// plain create the same way whichever process does the create's work (the
// self-creating init reads those flags itself), and leaves nothing.
func TestCreateGlobalFlagsRefusedAlike(t *testing.T) {
	skipIfRunc(t, "berth-runtime's self-creating init")
	testutil.RequiresRoot(t)
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	missing := filepath.Join(hostDir(t), "missing", "log")
	for _, env := range []string{"", "BERTH_NO_SELF_CREATE=1", "BERTH_NO_PRESPAWN=1"} {
		for _, tc := range []struct {
			flags []string
			want  string
		}{
			{[]string{"--log-format", "yaml"}, `--log-format: unknown format "yaml"`},
			{[]string{"--log", missing}, "--log " + missing},
		} {
			id := rt.NewID("globalflags")
			cmd := rt.Cmd(append(tc.flags, "create", "--bundle", b.Dir, id)...)
			// A file, not a pipe: a created init would hold a pipe open.
			errPath := filepath.Join(t.TempDir(), "stderr")
			errFile, err := os.Create(errPath)
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr, cmd.Env = errFile, append(os.Environ(), env)
			err = cmd.Run()
			errFile.Close()
			stderr, _ := os.ReadFile(errPath)
			if err == nil {
				t.Errorf("%s create %q succeeded, want %q", env, tc.flags, tc.want)
			} else if strings.Count(string(stderr), tc.want) != 1 {
				t.Errorf("%s create %q: stderr %q, want %q once", env, tc.flags, stderr, tc.want)
			}
			checkCreateLeftNothing(t, rt, id, b)
		}
	}
}
