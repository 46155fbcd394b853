package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/seccomp"
	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hookScript records, for the hook named $1, into directory $2: the state
// it got on stdin, its mount namespace, and its name appended to "order".
const hookScript = `#!/bin/sh
cat > "$2/$1.json"
readlink /proc/self/ns/mnt > "$2/$1.mntns"
echo "$1" >> "$2/order"
`

var allHooks = []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}

// hookBundle makes a bundle whose hooks all record themselves into a host
// directory, returned as markers (bound at /markers in the container).
func hookBundle(t *testing.T, opts ...testutil.BundleOption) (*testutil.Bundle, string) {
	t.Helper()
	markers := hostDir(t)
	host := filepath.Join(markers, "..", filepath.Base(markers)+".hook.sh")
	if err := os.WriteFile(host, []byte(hookScript), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(host) })
	hook := func(name, path, dir string) []specs.Hook {
		return []specs.Hook{{Path: path, Args: []string{"hook.sh", name, dir}}}
	}
	opts = append([]testutil.BundleOption{
		testutil.WithMounts(specs.Mount{Destination: "/markers", Type: "bind", Source: markers, Options: []string{"rbind", "rw"}}),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{
				Prestart:        hook("prestart", host, markers),
				CreateRuntime:   hook("createRuntime", host, markers),
				CreateContainer: hook("createContainer", host, markers),
				// startContainer's path resolves in the container.
				StartContainer: hook("startContainer", "/hook.sh", "/markers"),
				Poststart:      hook("poststart", host, markers),
				Poststop:       hook("poststop", host, markers),
			}
		}),
		testutil.WithRootfs(func(rootfs string) error {
			return os.WriteFile(filepath.Join(rootfs, "hook.sh"), []byte(hookScript), 0o755)
		}),
	}, opts...)
	return testutil.NewBundle(t, opts...), markers
}

func readOrder(markers string) []string {
	b, _ := os.ReadFile(filepath.Join(markers, "order"))
	return strings.Fields(string(b))
}

func TestHooks(t *testing.T) {
	rt := newRuntime(t)
	b, markers := hookBundle(t, testutil.WithShell("echo user >> /markers/order"))
	id := rt.NewID("hooks")

	rt.Create(id, b.Dir).OK(t)
	wantCreate := allHooks[:3]
	if isRunc(t) {
		// runc 1.1.5 deviation: it runs poststart hooks in create, not
		// after the user process is executed by start (fixed in runc 1.2).
		wantCreate = allHooks[:3:3]
		wantCreate = append(wantCreate, "poststart")
	}
	if got := readOrder(markers); !slices.Equal(got, wantCreate) {
		t.Fatalf("hooks run by create: %q, want %q", got, wantCreate)
	}
	initPid := rt.Pid(id)
	rt.Start(id).OK(t)
	// poststart must have run before start returned; the user process may
	// still be running.
	order := readOrder(markers)
	if !slices.Contains(order, "poststart") {
		t.Errorf("poststart did not run before start returned: %q", order)
	}
	if code := rt.Wait(id); code != 0 {
		t.Fatalf("user process exit status %d", code)
	}
	order = readOrder(markers)
	if slices.Contains(order, "poststop") {
		t.Errorf("poststop ran before delete: %q", order)
	}
	rt.Delete(id).OK(t)
	order = readOrder(markers)
	var hooksOnly []string
	for _, h := range order {
		if h != "user" {
			hooksOnly = append(hooksOnly, h)
		}
	}
	wantOrder := allHooks
	if isRunc(t) {
		wantOrder = []string{"prestart", "createRuntime", "createContainer", "poststart", "startContainer", "poststop"}
	}
	if !slices.Equal(hooksOnly, wantOrder) {
		t.Errorf("hook order %q, want %q", hooksOnly, wantOrder)
	}
	if i, j := slices.Index(order, "startContainer"), slices.Index(order, "user"); i < 0 || j < i {
		t.Errorf("startContainer must run before the user process: %q", order)
	}

	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	for _, h := range allHooks {
		raw, err := os.ReadFile(filepath.Join(markers, h+".json"))
		if err != nil {
			t.Errorf("hook %s: no state recorded: %v", h, err)
			continue
		}
		var s specs.State
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Errorf("hook %s: stdin is not a state: %v\n%s", h, err, raw)
			continue
		}
		if s.ID != id || s.Bundle != b.Dir || s.Version == "" {
			t.Errorf("hook %s: state %s, want id %s, bundle %s, ociVersion", h, raw, id, b.Dir)
		}
		inContainer := h == "createContainer" || h == "startContainer"
		// The pid is the container process's, as seen from the namespace
		// the hook runs in: the host pid, or 1 inside the pid namespace.
		wantPid := initPid
		if inContainer {
			wantPid = 1
		}
		// runtime-spec 1.3: "created" is the status after step 2 of the
		// lifecycle, and these hooks are steps 3 to 5.
		wantStatus := map[string][]string{
			"prestart": {"created"}, "createRuntime": {"created"},
			"createContainer": {"created"}, "startContainer": {"created"},
			"poststart": {"running"}, "poststop": {"stopped"},
		}[h]
		if isRunc(t) {
			switch h {
			case "poststart":
				wantStatus = []string{"created"} // it runs in create, see above
			case "prestart", "createRuntime", "createContainer":
				wantStatus = []string{"creating", "created"}
			}
		}
		if !slices.Contains(wantStatus, string(s.Status)) {
			t.Errorf("hook %s: status %q, want one of %q", h, s.Status, wantStatus)
		}
		if h != "poststop" && s.Pid != wantPid {
			t.Errorf("hook %s: pid %d, want %d", h, s.Pid, wantPid)
		}
		mnt, _ := os.ReadFile(filepath.Join(markers, h+".mntns"))
		if inRuntimeNS := strings.TrimSpace(string(mnt)) == hostMnt; inRuntimeNS == inContainer {
			t.Errorf("hook %s ran in mount namespace %s (runtime's is %s): want the %s namespace",
				h, strings.TrimSpace(string(mnt)), hostMnt, map[bool]string{true: "container", false: "runtime"}[inContainer])
		}
	}
}

// checkCreateLeftNothing checks that a failed create left no trace.
func checkCreateLeftNothing(t *testing.T, rt *testutil.Runtime, id string, b *testutil.Bundle) {
	t.Helper()
	if res := rt.Do("state", id); res.ExitCode == 0 {
		t.Errorf("state of a container whose create failed succeeded: %s", res)
	}
	for _, l := range testutil.LeakedTraces(testutil.Leaks{Root: rt.Root, ID: id, Bundle: b.Dir}) {
		t.Errorf("failed create of %s left %s", id, l)
	}
}

func TestFailingCreateRuntimeHook(t *testing.T) {
	rt := newRuntime(t)
	b, markers := hookBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Hooks.CreateRuntime = append(s.Hooks.CreateRuntime, specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "exit 7"}})
	}))
	id := rt.NewID("hookfail")
	res := rt.Create(id, b.Dir).Fails(t)
	if !strings.Contains(strings.ToLower(res.Stderr), "hook") {
		t.Errorf("create failed without naming the hook: %s", res)
	}
	order := readOrder(markers)
	if slices.Contains(order, "createContainer") {
		t.Errorf("createContainer ran after a failed createRuntime hook: %q", order)
	}
	checkCreateLeftNothing(t, rt, id, b)
	// The spec: a failing createRuntime hook "stops the container and
	// continues the lifecycle at step 12", and step 13 runs poststop.
	if !slices.Contains(order, "poststop") {
		t.Errorf("poststop hooks did not run after the failed create: %q", order)
	}
}

func TestHookTimeout(t *testing.T) {
	rt := newRuntime(t)
	markers := hostDir(t)
	pidFile := filepath.Join(markers, "hookpid")
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		timeout := 1
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{
			Path: "/bin/sh", Args: []string{"sh", "-c", fmt.Sprintf("echo $$ > %s; exec sleep 20", pidFile)},
			Timeout: &timeout,
		}}}
	}))
	id := rt.NewID("hooktimeout")
	// A runtime that ignored the timeout would let the hook finish after
	// 20 seconds, and create would succeed.
	res := rt.Create(id, b.Dir).Fails(t)
	if !strings.Contains(strings.ToLower(res.Stderr), "timed out") && !strings.Contains(strings.ToLower(res.Stderr), "timeout") {
		t.Errorf("create failed without saying the hook timed out: %s", res)
	}
	checkCreateLeftNothing(t, rt, id, b)
	raw, _ := os.ReadFile(pidFile)
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(raw))); pid > 0 {
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(stat), ") Z ") {
			t.Errorf("the timed-out hook (pid %d) is still running", pid)
		}
		testutil.WaitPid(pid, 0) // reap it if it was reparented to us
	}
}

// TestFailingStartHooks: a failing startContainer or poststart hook makes
// the runtime generate an error and stop the container (runtime-spec 1.3
// lifecycle steps 7 and 9); the user process must not stay running.
func TestFailingStartHooks(t *testing.T) {
	rt := newRuntime(t)
	for _, which := range []string{"startContainer", "poststart"} {
		t.Run(which, func(t *testing.T) {
			fail := []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "exit 9"}}}
			// After the failing hook, one that leaves a mark on the host:
			// poststart and poststop hooks after a failed one still run.
			after := filepath.Join(hostDir(t), "after")
			mark := func(suffix string) specs.Hook {
				return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "touch " + after + suffix}}
			}
			b := testutil.NewBundle(t, testutil.WithWritableRoot(),
				testutil.WithShell("touch /tmp/user-ran; exec sleep 1000"),
				testutil.WithSpec(func(s *specs.Spec) {
					if which == "startContainer" {
						s.Hooks = &specs.Hooks{StartContainer: fail}
					} else {
						s.Hooks = &specs.Hooks{Poststart: append(fail, mark("-poststart")), Poststop: append(fail, mark("-poststop"))}
					}
				}))
			id := rt.NewID("hookstart")
			res := rt.Create(id, b.Dir)
			if which == "poststart" && isRunc(t) {
				// runc 1.1.5 deviation: poststart runs in create (see
				// TestHooks), so create is what fails.
				res.Fails(t)
				checkCreateLeftNothing(t, rt, id, b)
				return
			}
			res.OK(t)
			if which == "poststart" {
				// runtime-spec 1.3 (runtime.md, lifecycle step 9): "If any
				// poststart hook fails, the runtime MUST generate an error,
				// stop the container, and continue the lifecycle at step
				// 12" (its destruction): start fails, the container stops,
				// the poststart hooks after the failed one do not run, and
				// delete runs the poststop hooks, a failing one only a
				// warning (step 13).
				st := rt.Start(id).Fails(t)
				if !strings.Contains(st.Stderr, "error running poststart hook #0") {
					t.Errorf("start with a failing poststart hook: stderr %q, want runc's \"error running poststart hook #0\"", st.Stderr)
				}
				waitFor(t, "the container to stop", func() bool { return rt.State(id).Status == "stopped" })
				if fileExists(after + "-poststart") {
					t.Errorf("the poststart hook after a failed one ran")
				}
				del := rt.Delete(id, "--force").OK(t)
				if !strings.Contains(del.Stderr, "warning") || !fileExists(after+"-poststop") {
					t.Errorf("delete with a failing poststop hook: want a warning and the next poststop hook run; stderr %q", del.Stderr)
				}
				return
			}
			if which == "startContainer" && isRunc(t) {
				// runc 1.1.5 deviation: start returns once the init is
				// released, before the init runs the hook, so start
				// succeeds; the init then exits without running the user
				// process.
				rt.Start(id).OK(t)
				if code := rt.Wait(id); code == 0 {
					t.Errorf("container exited 0 after a failing startContainer hook")
				}
			} else {
				rt.Start(id).Fails(t)
			}
			if which == "startContainer" && fileExists(b.Path("tmp/user-ran")) {
				t.Errorf("the user process ran although a startContainer hook failed")
			}
			// Stopped: the state says so, or the container is gone.
			if res := rt.Do("state", id); res.ExitCode == 0 {
				if s := rt.State(id); s.Status != "stopped" {
					t.Errorf("after a failed %s hook the container is %q, want stopped", which, s.Status)
				}
			}
		})
	}
}

// TestPoststartAfterExec: runtime-spec "post-start hooks MUST be called
// after the user-specified process is executed": the poststart hook finds
// the container's pid already running the user's program, not the runtime
// (runtime-tools poststart; `start` returns once the init has exec'd).
func TestPoststartAfterExec(t *testing.T) {
	skipIfRunc(t, "runc 1.1.5 runs poststart hooks in create, before the user's process")
	rt := newRuntime(t)
	out := filepath.Join(hostDir(t), "exe")
	hook := specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c",
		`pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'); readlink /proc/$pid/exe > ` + out}}
	// A seccomp filter loaded late (after start) widens the window between
	// the init's go-ahead and its execve, which a runtime that runs the
	// hooks at the go-ahead would show.
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{Poststart: []specs.Hook{hook}}
			s.Process.NoNewPrivileges = true
			s.Linux.Seccomp = seccomp.DefaultProfile()
		}))
	id := rt.NewID("poststartexec")
	rt.Create(id, b.Dir).OK(t)
	rt.Start(id).OK(t)
	exe, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("poststart hook output: %v", err)
	}
	if got := strings.TrimSpace(string(exe)); !strings.HasSuffix(got, "/bin/busybox") {
		t.Errorf("when the poststart hook ran, the container's pid ran %q, want the user's program (/bin/busybox)", got)
	}
	rt.Delete(id, "--force").OK(t)
}

// TestStartContainerHookEnv: a startContainer hook with no env of its own
// runs with the process's environment, as runc has always run it; a
// failing hook's error carries runc's "error running <kind> hook #N"
// (runc hooks.bats).
func TestStartContainerHookEnv(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"),
		testutil.WithRootfs(func(rootfs string) error {
			return os.WriteFile(filepath.Join(rootfs, "check-env.sh"), []byte("#!/bin/sh -ue\ntest $ONE = two\n"), 0o755)
		}),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Process.Env = append(s.Process.Env, "ONE=two")
			s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/check-env.sh"}}}
		}))
	if res := rt.Run(rt.NewID("hookenv"), b.Dir); res.ExitCode != 0 {
		t.Errorf("startContainer hook without env: want the process's ONE=two: %s", res)
	}
	fail := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/true"}, {Path: "/bin/false"}}}
	}))
	id := rt.NewID("hookmsg")
	res := rt.Create(id, fail.Dir)
	want := "error running prestart hook #1"
	if isRunc(t) {
		want = "error running hook #1" // runc 1.1.5; 1.3 names the kind
	}
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, want) {
		t.Errorf("a failing second prestart hook: want runc's \"error running prestart hook #1\": %s", res)
	}
	checkCreateLeftNothing(t, rt, id, fail)
}

// TestCreateContainerHookCwd: createContainer hooks run in the rootfs, as
// runc runs them, so a hook may use paths relative to it (runc's
// hooks_so.bats binds ./lib/...).
func TestCreateContainerHookCwd(t *testing.T) {
	rt := newRuntime(t)
	marker := "berth-cwd-marker"
	b := testutil.NewBundle(t, testutil.WithArgs("true"),
		testutil.WithRootfs(func(rootfs string) error {
			return os.WriteFile(filepath.Join(rootfs, marker), nil, 0o644)
		}),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "test -e ./" + marker}}}}
		}))
	if res := rt.Run(rt.NewID("hookcwd"), b.Dir); res.ExitCode != 0 {
		t.Errorf("createContainer hook did not run in the rootfs: %s", res)
	}
}

// TestStartContainerHookFds: a startContainer hook gets stdio and nothing
// else of the runtime's (runc seccomp-notify.bats "(SCMP_ACT_NOTIFY
// startContainer hook)" counts its fds).
func TestStartContainerHookFds(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/sh",
			Args: []string{"sh", "-c", `n=$(ls /proc/self/fd/ | wc -l); [ "$n" -eq 4 ] || { echo "hook has $n fds"; ls -l /proc/self/fd/; exit 1; }`}}}}
	}))
	if res := rt.Run(rt.NewID("hookfds"), b.Dir); res.ExitCode != 0 {
		t.Errorf("startContainer hook saw more than stdio: %s", res)
	}
}
