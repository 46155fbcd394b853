package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/snapshot"
	"github.com/berth-project/berth/internal/testutil"
)

// These tests drive the engine's API as the CLI and the CRI server do, with
// real containers: an image imported from Debian's busybox-static, the
// berth-monitor built from this tree, and the runtime under test
// ($BERTH_RUNTIME, else runc).

const testImage = "localhost/berth-engine-test:latest"

// busyboxTar is a root file system tarball: busybox and its applets.
func busyboxTar(t *testing.T) []byte {
	t.Helper()
	bb := testutil.RequiresBinary(t, "busybox", "busybox-static")
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string) {
		tw.WriteHeader(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	for _, d := range []string{"bin", "etc", "tmp", "data", "proc", "sys", "dev"} {
		dir(d)
	}
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))})
	tw.Write(data)
	for _, a := range []string{"sh", "echo", "cat", "sleep", "ls", "id", "hostname", "true", "false", "head", "tr", "ps", "wget", "nslookup", "trap", "kill"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n"
	group := "root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"
	for name, s := range map[string]string{"etc/passwd": passwd, "etc/group": group, "data/seed": "from the image\n"} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(s))})
		tw.Write([]byte(s))
	}
	tw.Close()
	return buf.Bytes()
}

// testEngine opens an engine on fresh roots with the busybox image stored.
func testEngine(t *testing.T) *Engine {
	t.Helper()
	testutil.RequiresRoot(t)
	rt := os.Getenv("BERTH_RUNTIME")
	if rt == "" {
		rt = testutil.RequiresBinary(t, "runc", "runc")
	}
	mon := filepath.Join(t.TempDir(), "berth-monitor")
	if out, err := exec.Command("go", "build", "-o", mon, "github.com/berth-project/berth/cmd/berth-monitor").CombinedOutput(); err != nil {
		t.Fatalf("build berth-monitor: %v\n%s", err, out)
	}
	root := t.TempDir()
	// Unix socket paths are short: the run root lives in /tmp.
	runRoot, err := os.MkdirTemp("/tmp", "bet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runRoot) })
	images, err := image.Open(root, registry.New(registry.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := images.Import(ctx, bytes.NewReader(busyboxTar(t)), image.ImportOptions{
		Name: testImage, Config: ocispec.ImageConfig{Cmd: []string{"sh"}, Volumes: map[string]struct{}{"/data": {}}},
	}); err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, Options{
		Root: root, RunRoot: runRoot, Images: images, MonitorBin: mon,
		Runtimes: map[string]string{"default": rt}, DefaultRuntime: "default",
		Self: []string{"/bin/false"},
		Warn: func(msg string) { t.Log("warning:", msg) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		recs, _ := e.store.list()
		for _, r := range recs {
			if err := e.Remove(context.Background(), r.ID, RemoveOptions{Force: true, Volumes: true}); err != nil {
				t.Errorf("cleanup: rm -f %s: %v", r.ID[:12], err)
			}
			if cg := testutil.FindCgroups(r.ID); len(cg) > 0 {
				t.Errorf("cgroups left after rm -f: %v", cg)
			}
		}
		checkSharedParentGone(t)
		if m := testutil.MountsUnder(runRoot); len(m) > 0 {
			t.Errorf("mounts left under the run root: %v", m)
		}
		if m := testutil.MountsUnder(root); len(m) > 0 {
			t.Errorf("mounts left under the root: %v", m)
		}
		images.Close()
	})
	return e
}

func runTest(t *testing.T, e *Engine, o CreateOptions) (Container, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if o.Config.Image == "" {
		o.Config.Image = testImage
	}
	if o.HostConfig.NetworkMode == "" {
		o.HostConfig.NetworkMode = "none"
	}
	c, err := e.Create(ctx, o)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	var out bytes.Buffer
	code, err := e.StartAttached(ctx, c.ID, AttachStreams{Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return c, out.String(), code
}

func TestEngineRunOutputAndExitCode(t *testing.T) {
	e := testEngine(t)
	c, out, code := runTest(t, e, CreateOptions{Config: Config{Cmd: []string{"sh", "-c", "echo hello; id -u; hostname; exit 7"}}})
	if code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	want := "hello\n0\n" + c.ID[:12] + "\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	got, err := e.Inspect(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State.Status != "exited" || got.State.ExitCode != 7 || got.State.Running {
		t.Errorf("state after exit: %+v", got.State)
	}
	var logs bytes.Buffer
	if err := e.Logs(context.Background(), c.ID, LogsOptions{Tail: -1}, &logs, &logs); err != nil {
		t.Fatal(err)
	}
	if logs.String() != want {
		t.Errorf("logs %q, want %q", logs.String(), want)
	}
}

func TestEngineNotFoundAndNotExecutable(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()
	for _, tc := range []struct {
		cmd  []string
		code int
	}{{[]string{"nosuchcmd"}, 127}, {[]string{"/data/seed"}, 126}} {
		c, err := e.Create(ctx, CreateOptions{Config: Config{Image: testImage, Cmd: tc.cmd}, HostConfig: HostConfig{NetworkMode: "none"}})
		if err != nil {
			t.Fatal(err)
		}
		code, err := e.StartAttached(ctx, c.ID, AttachStreams{Stdout: io.Discard, Stderr: io.Discard})
		var xe *ExitError
		switch {
		case errors.As(err, &xe):
			code = xe.Code
		case err != nil:
			t.Fatalf("%v: %v", tc.cmd, err)
		}
		if code != tc.code {
			t.Errorf("%v: exit %d (%v), want %d", tc.cmd, code, err, tc.code)
		}
	}
}

func TestEngineStopDeliversSignalAndWaits(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()
	c, err := e.Create(ctx, CreateOptions{
		Config:     Config{Image: testImage, Cmd: []string{"sh", "-c", "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done"}},
		HostConfig: HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	waitLog(t, e, c.ID, "ready")
	st, _ := e.Inspect(ctx, c.ID)
	if !st.State.Running || st.State.Pid == 0 {
		t.Fatalf("not running after start: %+v", st.State)
	}
	if err := e.Stop(ctx, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	st, _ = e.Inspect(ctx, c.ID)
	if st.State.Status != "exited" || st.State.ExitCode != 3 {
		t.Errorf("after stop: %+v, want exited 3", st.State)
	}
	waitLog(t, e, c.ID, "got TERM")
}

func TestEngineNameTakenLeavesNothing(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()
	if _, err := e.Create(ctx, CreateOptions{Name: "web", Config: Config{Image: testImage}, HostConfig: HostConfig{NetworkMode: "none"}}); err != nil {
		t.Fatal(err)
	}
	before := snapshotCount(t, e)
	_, err := e.Create(ctx, CreateOptions{Name: "web", Config: Config{Image: testImage}, HostConfig: HostConfig{NetworkMode: "none"}})
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), `"/web" is already in use`) {
		t.Fatalf("second create of one name: %v", err)
	}
	if after := snapshotCount(t, e); after != before {
		t.Errorf("a refused create left snapshots: %d before, %d after", before, after)
	}
	if l, _ := e.List(ctx, ListOptions{All: true}); len(l) != 1 {
		t.Errorf("%d containers listed, want 1", len(l))
	}
	_, err = e.Create(ctx, CreateOptions{Config: Config{Image: "localhost/nosuch:1"}, Pull: "never"})
	if !errdefs.IsNotFound(err) {
		t.Errorf("create of a missing image with --pull never: %v", err)
	}
	_, err = e.Create(ctx, CreateOptions{Config: Config{Image: testImage}, HostConfig: HostConfig{Binds: []string{"/nonexistent-berth:/x"}}})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "/nonexistent-berth") {
		t.Errorf("create with a missing bind source: %v", err)
	}
	if after := snapshotCount(t, e); after != before {
		t.Errorf("refused creates left snapshots: %d before, %d after", before, after)
	}
	vols, _ := e.VolumeList(ctx, nil)
	if len(vols) != 1 { // the first container's anonymous /data
		t.Errorf("volumes after refused creates: %v", vols)
	}
}

func TestEngineVolumeCopyUpAndOutlives(t *testing.T) {
	e := testEngine(t)
	_, out, code := runTest(t, e, CreateOptions{
		Config:     Config{Cmd: []string{"sh", "-c", "cat /data/seed; echo kept > /data/new"}},
		HostConfig: HostConfig{Binds: []string{"vol1:/data"}, AutoRemove: false},
	})
	if code != 0 || out != "from the image\n" {
		t.Fatalf("first run: %d %q", code, out)
	}
	_, out, code = runTest(t, e, CreateOptions{
		Config:     Config{Cmd: []string{"cat", "/data/new"}},
		HostConfig: HostConfig{Binds: []string{"vol1:/data:ro"}},
	})
	if code != 0 || out != "kept\n" {
		t.Fatalf("second run: %d %q", code, out)
	}
	if err := e.VolumeRemove(context.Background(), "vol1", false); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("rm of a volume in use: %v", err)
	}
}

func TestEngineMonitorKilledRemoveCleans(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()
	c, err := e.Create(ctx, CreateOptions{Config: Config{Image: testImage, Cmd: []string{"sleep", "1000"}}, HostConfig: HostConfig{NetworkMode: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	st, _ := e.Inspect(ctx, c.ID)
	if st.State.MonitorPid == 0 {
		t.Fatalf("no monitor: %+v", st.State)
	}
	if err := os.NewSyscallError("kill", killPid(st.State.MonitorPid)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the monitor to die", func() bool {
		s, _ := e.Inspect(ctx, c.ID)
		return s.State.MonitorPid == 0
	})
	s, _ := e.Inspect(ctx, c.ID)
	if !s.State.Running || s.State.Pid != st.State.Pid {
		t.Errorf("after kill -9 of the monitor the container still runs, but inspect says %+v", s.State)
	}
	if err := e.Remove(ctx, c.ID, RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if processOf(st.State.Pid, c.ID) {
		t.Errorf("the container's process %d survived rm -f", st.State.Pid)
	}
}

func snapshotCount(t *testing.T, e *Engine) int {
	n := 0
	e.images.Snapshots.Walk(context.Background(), func(context.Context, snapshotInfo) error { n++; return nil })
	return n
}

func waitLog(t *testing.T, e *Engine, id, want string) {
	t.Helper()
	waitFor(t, "log line "+want, func() bool {
		var b bytes.Buffer
		e.Logs(context.Background(), id, LogsOptions{Tail: -1}, &b, &b)
		return strings.Contains(b.String(), want)
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type snapshotInfo = snapshot.Info

func killPid(pid int) error { return unix.Kill(pid, unix.SIGKILL) }

func TestEngineHealthCheck(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()
	c, err := e.Create(ctx, CreateOptions{
		Config: Config{Image: testImage, Cmd: []string{"sleep", "1000"},
			Healthcheck: &HealthConfig{Test: []string{"CMD-SHELL", "test -f /tmp/ok && echo fine"}, Interval: 100 * time.Millisecond, Retries: 2}},
		HostConfig: HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	health := func() string {
		got, _ := e.Inspect(ctx, c.ID)
		if got.State.Health == nil {
			return ""
		}
		return got.State.Health.Status
	}
	waitFor(t, "unhealthy", func() bool { return health() == "unhealthy" })
	if code, err := e.Exec(ctx, c.ID, ExecOptions{Cmd: []string{"sh", "-c", "echo > /tmp/ok"}}, AttachStreams{Stdout: io.Discard, Stderr: io.Discard}); err != nil || code != 0 {
		t.Fatalf("exec touch: %d %v", code, err)
	}
	waitFor(t, "healthy", func() bool { return health() == "healthy" })
	got, _ := e.Inspect(ctx, c.ID)
	if l := got.State.Health.Log; len(l) == 0 || l[len(l)-1].Output != "fine\n" || l[len(l)-1].ExitCode != 0 {
		t.Errorf("last probe: %+v", l)
	}
}

// checkSharedParentGone fails t when the cgroup parent Berth's containers
// share (/berth) outlives the last of them: it is removed with the last
// container in it. With other containers' cgroups still in it, there is
// nothing to say.
func checkSharedParentGone(t *testing.T) {
	t.Helper()
	for _, h := range []string{"/sys/fs/cgroup/memory/berth", "/sys/fs/cgroup/berth", "/sys/fs/cgroup/pids/berth"} {
		ents, err := os.ReadDir(h)
		if err != nil {
			continue
		}
		children := false
		for _, e := range ents {
			children = children || e.IsDir()
		}
		if !children {
			t.Errorf("the shared cgroup parent %s is left with no container in it", h)
		}
	}
}
