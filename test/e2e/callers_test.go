package e2e

// Real callers drive the runtime under test: containerd (through its runc
// shim, containerd-shim-runc-v2, with ctr as the client) and Podman (through
// conmon); Docker in docker_test.go. Each test starts its caller with private state in a temporary
// directory, so it neither sees nor touches the host's containers, and checks
// at the end that the runtime left nothing behind: no state directory, no
// cgroup, no process, no mount.
//
// Both callers reparent their long-lived helpers (the shim, conmon) to the
// nearest child subreaper, which is the test process (see TestMain): the
// tests reap what exits of them, as PID 1 would.
//
// What stays host-wide, as the callers hard-code it: containerd 1.6's shims
// put their sockets in /run/containerd/s (the test checks its shim removed
// its own), and Podman's image import records blob digests in
// /var/lib/containers/cache, a cache every root Podman shares.
//
// Both tests pass against runc 1.1.5 (BERTH_RUNTIME=/usr/sbin/runc) with no
// difference in behaviour; crun 1.8 cannot run on this host's hybrid cgroup
// layout at all.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specsv "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// callersTimeout bounds one command of a caller, so a hang fails the test
// instead of the suite.
const callersTimeout = 60 * time.Second

// callersExecScript, run by an exec into a container whose init is
// `sleep 1000`, prints callersExecOut: it shows the process joined the
// container's pid namespace.
const (
	callersExecScript = `echo exec in; tr '\0' ' ' </proc/1/cmdline`
	callersExecOut    = "exec in\nsleep 1000 "
)

// callersName returns "berth-e2e-<short>-<random>".
func callersName(t *testing.T, short string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "berth-e2e-" + short + "-" + hex.EncodeToString(b[:])
}

// callersDir makes a private directory for a caller's state. Its cleanup
// (registered first, so it runs last) unmounts whatever the caller left
// mounted under it before removing it.
func callersDir(t *testing.T, short string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-e2e-"+short+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mounts := testutil.MountsUnder(dir)
		for i := len(mounts) - 1; i >= 0; i-- {
			if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", mounts[i], err)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// callersRootfsTar returns a tar of the busybox root file system that
// testutil.NewBundle builds.
func callersRootfsTar(t *testing.T) []byte {
	t.Helper()
	rootfs := testutil.NewBundle(t).Rootfs
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == rootfs {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootfs, p)
		hdr.Name = rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("tar %s: %v", rootfs, err)
	}
	return buf.Bytes()
}

// callersOCIArchive writes an OCI image layout tar of one image, named name
// (containerd's io.containerd.image.name annotation), whose one layer is the
// uncompressed tar layer, and returns its path.
func callersOCIArchive(t *testing.T, dir, name string, layer []byte) string {
	t.Helper()
	config, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[digest.Digest][]byte{}
	describe := func(mediaType string, b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		blobs[d] = b
		return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
	}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specsv.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    describe(ocispec.MediaTypeImageConfig, config),
		Layers:    []ocispec.Descriptor{describe(ocispec.MediaTypeImageLayer, layer)},
	})
	if err != nil {
		t.Fatal(err)
	}
	md := describe(ocispec.MediaTypeImageManifest, manifest)
	md.Annotations = map[string]string{
		"io.containerd.image.name": name,
		ocispec.AnnotationRefName:  name[strings.LastIndexByte(name, ':')+1:],
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specsv.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{md},
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	add(ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"`+ocispec.ImageLayoutVersion+`"}`))
	add("index.json", index)
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, string(d))
	}
	sort.Strings(digests)
	for _, d := range digests {
		dg := digest.Digest(d)
		add("blobs/"+dg.Algorithm().String()+"/"+dg.Encoded(), blobs[dg])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "image.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// callersCmd runs a caller's command with a deadline and returns its stdout,
// stderr and exit code (-1 if it could not run or timed out). Output goes to
// files, not pipes: a daemon the command leaves behind (a shim, conmon) must
// not hold a pipe of the test open.
func callersCmd(t *testing.T, env []string, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callersTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var files [2]string
	for i := range files {
		f, err := os.CreateTemp("", "berth-e2e-callers-out-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		files[i] = f.Name()
		if i == 0 {
			cmd.Stdout = f
		} else {
			cmd.Stderr = f
		}
	}
	err := cmd.Run()
	b0, _ := os.ReadFile(files[0])
	b1, _ := os.ReadFile(files[1])
	stdout, stderr = string(b0), string(b1)
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return stdout, stderr + fmt.Sprintf("\n[timed out after %v]", callersTimeout), -1
	case err == nil:
		return stdout, stderr, 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return stdout, stderr, ee.ExitCode()
	default:
		return stdout, stderr + "\n[" + err.Error() + "]", -1
	}
}

// callersGone reports whether process pid no longer exists, reaping it first
// if it is a zombie child of the test process (a shim or conmon reparented
// to it). Only that one pid is waited for.
func callersGone(pid int) bool {
	unix.Wait4(pid, nil, unix.WNOHANG, nil)
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err != nil
}

// callersReapZombies reaps the zombie children of the test process whose
// command name is one of comms: the daemons a caller left reparented to the
// test process, and that exited without being waited for.
func callersReapZombies(comms ...string) {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(s[end+1:]) // state, ppid, ...
		if len(fields) < 2 || fields[0] != "Z" || fields[1] != strconv.Itoa(self) {
			continue
		}
		for _, c := range comms {
			if s[open+1:end] == c {
				unix.Wait4(pid, nil, unix.WNOHANG, nil)
			}
		}
	}
}

// callersPidsWithCmdline returns the processes (other than the test's)
// whose NUL-separated command line holds every marker.
func callersPidsWithCmdline(markers ...string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		all := true
		for _, m := range markers {
			all = all && strings.Contains(string(b), m)
		}
		if all {
			pids = append(pids, pid)
		}
	}
	return pids
}

// callersKillCmdline SIGKILLs and reaps every process whose command line
// holds marker (a path private to the test), for cleanup after a failure.
func callersKillCmdline(t *testing.T, marker string) {
	t.Helper()
	for _, pid := range callersPidsWithCmdline(marker) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		t.Logf("cleanup: killing leftover process %d %q", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
		unix.Kill(pid, unix.SIGKILL)
		waitFor(t, fmt.Sprintf("leftover process %d to die", pid), func() bool { return callersGone(pid) })
	}
}

// callersRemoveCgroups removes the cgroup directory tree named rel (a
// cgroupsPath parent the test chose, like /berth-e2e-ctr-1234abcd) from
// every hierarchy, deepest first. rmdir of a cgroup that still holds
// processes fails, so nothing in use is removed.
func callersRemoveCgroups(t *testing.T, rel string) {
	t.Helper()
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hierarchies {
		top := filepath.Join(h, rel)
		var dirs []string
		filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil {
				t.Errorf("remove cgroup %s: %v", dirs[i], err)
			}
		}
	}
}

// callersForceDelete runs `BIN [--root ROOT] delete --force id` for a
// container a caller failed to remove, so that a failed test does not leave
// it running. With root "" (the runtime's default root, which other users
// share) it first makes sure the runtime knows the container; the entries of
// a root of the test's own are the test's.
func callersForceDelete(t *testing.T, bin, root, id string) {
	t.Helper()
	var global []string
	if root != "" {
		global = []string{"--root", root}
	} else if st, _ := callersRuntimeStatus(t, bin, "", id); st == "" {
		return
	}
	t.Logf("cleanup: container %s is left to the runtime: force-deleting it", id)
	args := append(global, "delete", "--force", id)
	if out, stderr, code := callersCmd(t, nil, bin, args...); code != 0 {
		t.Errorf("%s %s: exit %d: %s %s", bin, strings.Join(args, " "), code, out, stderr)
	}
}

// callersRuntimeStatus returns the status that `BIN [--root ROOT] state id`
// reports ("" if the runtime does not know id), and what it printed. Root ""
// is the runtime's default, where it keeps the state of Podman's containers.
func callersRuntimeStatus(t *testing.T, bin, root, id string) (status, printed string) {
	t.Helper()
	args := []string{"state", id}
	if root != "" {
		args = append([]string{"--root", root}, args...)
	}
	out, stderr, code := callersCmd(t, nil, bin, args...)
	var st struct {
		Status string `json:"status"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		return "", out + stderr
	}
	return st.Status, out
}

// containerd is a containerd daemon the test started, with its root, state
// and sockets in a private directory.
type containerd struct {
	t        *testing.T
	dir      string
	sock     string
	ns       string // the ctr namespace; also the containers' cgroup parent
	runcRoot string // the shim's --runc-root: the runtime's --root is runcRoot/ns
	fifoDir  string
	runtime  string // the runtime under test
	log      string
	ctrBin   string
	exited   chan struct{}
}

// startContainerd starts a containerd of the test's own (CRI disabled) and
// waits until it answers. Cleanup removes what is left of the test's
// containers, stops containerd and any shim it left, unmounts and removes
// its directories and the namespace's cgroups.
func startContainerd(t *testing.T, runtimeBin string) *containerd {
	t.Helper()
	testutil.RequiresRoot(t)
	bin := testutil.RequiresBinary(t, "containerd", "containerd")
	testutil.RequiresBinary(t, "containerd-shim-runc-v2", "containerd")
	c := &containerd{
		t:       t,
		dir:     callersDir(t, "containerd"),
		ns:      callersName(t, "ctr"),
		ctrBin:  testutil.RequiresBinary(t, "ctr", "containerd"),
		runtime: runtimeBin,
		exited:  make(chan struct{}),
	}
	c.sock = filepath.Join(c.dir, "containerd.sock")
	c.runcRoot = filepath.Join(c.dir, "state", "runc")
	c.fifoDir = filepath.Join(c.dir, "fifo")
	c.log = filepath.Join(c.dir, "containerd.log")
	// Disabled besides CRI: opt (it installs to /opt/containerd) and
	// snapshotters that cannot work here. The tasks service needs the v1
	// runtime plugin loaded, though ctr uses the v2 runtime.
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = %q

[debug]
  level = "info"
`, filepath.Join(c.dir, "root"), filepath.Join(c.dir, "state"), c.sock)
	cfg := filepath.Join(c.dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { c.stop(cmd) })
	waitFor(t, "containerd to listen on "+c.sock, func() bool {
		select {
		case <-c.exited:
			t.Fatalf("containerd exited at start:\n%s", c.logTail())
		default:
		}
		conn, err := net.Dial("unix", c.sock)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
	return c
}

// logTail returns the end of containerd's log, for a failure message.
func (c *containerd) logTail() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// ctr runs `ctr --address SOCK --namespace NS args...`.
func (c *containerd) ctr(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	return callersCmd(c.t, nil, c.ctrBin, append([]string{"--address", c.sock, "--namespace", c.ns}, args...)...)
}

// ok runs ctr and fails the test unless it exits 0; it returns stdout.
func (c *containerd) ok(args ...string) string {
	c.t.Helper()
	out, stderr, code := c.ctr(args...)
	if code != 0 {
		c.t.Fatalf("ctr %s: exit %d\nstdout: %s\nstderr: %s\ncontainerd log:\n%s", strings.Join(args, " "), code, out, stderr, c.logTail())
	}
	return out
}

// task returns the pid and status columns of `ctr task ls` for id, or "",
// "" if it is not listed.
func (c *containerd) task(id string) (pid, status string) {
	c.t.Helper()
	for _, line := range strings.Split(c.ok("task", "ls"), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == id {
			return f[1], f[2]
		}
	}
	return "", ""
}

// bundle is the directory containerd made for a container's task: the
// runtime's --bundle, where the shim mounts the rootfs.
func (c *containerd) bundle(id string) string {
	return filepath.Join(c.dir, "state", "io.containerd.runtime.v2.task", c.ns, id)
}

// stop removes what is left of the test's containers, stops containerd,
// kills any shim it left, force-deletes any container the shim left to the
// runtime, and removes the namespace's cgroups.
func (c *containerd) stop(cmd *exec.Cmd) {
	t := c.t
	select {
	case <-c.exited:
	default:
		tasks, _, _ := c.ctr("task", "ls", "-q")
		for _, id := range strings.Fields(tasks) {
			t.Logf("cleanup: task %s left", id)
			c.ctr("task", "kill", "-s", "KILL", id)
			c.ctr("task", "rm", "-f", id)
		}
		containers, _, _ := c.ctr("container", "ls", "-q")
		for _, id := range strings.Fields(containers) {
			c.ctr("container", "rm", id)
		}
		cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(callersTimeout):
			t.Errorf("containerd did not stop on SIGTERM:\n%s", c.logTail())
			cmd.Process.Kill()
			<-c.exited
		}
	}
	// A shim's command line names containerd's socket.
	callersKillCmdline(t, c.sock)
	callersReapZombies("containerd-shim")
	root := filepath.Join(c.runcRoot, c.ns)
	left, _ := os.ReadDir(root)
	for _, e := range left {
		callersForceDelete(t, c.runtime, root, e.Name())
	}
	callersRemoveCgroups(t, c.ns)
}

func TestContainerdDrivesRuntime(t *testing.T) {
	bin := runtimeBin(t)
	c := startContainerd(t, bin)
	image := "localhost/berth-e2e/busybox:1"
	c.ok("image", "import", callersOCIArchive(t, c.dir, image, callersRootfsTar(t)))
	if out := c.ok("image", "ls", "-q"); !strings.Contains(out, image) {
		t.Fatalf("image ls after import: %q", out)
	}
	// Without --runc-root the shim would keep the runtime's state in the
	// host-wide /run/containerd/runc/NS, and without --fifo-dir ctr would
	// make its fifos in /run/containerd/fifo.
	run := []string{"run", "--runc-binary", bin, "--runc-root", c.runcRoot, "--fifo-dir", c.fifoDir}

	// A foreground run: ctr prints what the container writes and exits
	// with its status.
	fg := callersName(t, "ctr-fg")
	out, stderr, code := c.ctr(append(run, "--rm", image, fg, "sh", "-c", "echo hello from; cat /etc/hostname; echo to stderr >&2; exit 3")...)
	if code != 3 || out != "hello from\nberth-e2e\n" || !strings.Contains(stderr, "to stderr") {
		t.Errorf("ctr run: exit %d (want 3)\nstdout: %q (want the image's /etc/hostname)\nstderr: %s\ncontainerd log:\n%s", code, out, stderr, c.logTail())
	}
	c.checkGone(fg, nil)

	// A detached task, driven through its life.
	id := callersName(t, "ctr-d")
	c.ok(append(run, "-d", "--null-io", image, id, "sleep", "1000")...)
	pidStr, status := c.task(id)
	if status != "RUNNING" {
		t.Fatalf("task ls: %s is %q, want RUNNING", id, status)
	}
	pid, _ := strconv.Atoi(pidStr)
	shim, shimSocket := c.shim(id)
	// What checkGone will look for is there while the task runs.
	if st, printed := callersRuntimeStatus(t, bin, filepath.Join(c.runcRoot, c.ns), id); st != "running" {
		t.Errorf("the runtime's own state of %s under the shim's root: %s", id, printed)
	}
	if len(testutil.FindCgroups(id)) == 0 || len(testutil.MountsUnder(c.bundle(id))) == 0 {
		t.Errorf("running task %s has no cgroup named for it (%v) or no rootfs mount under its bundle (%v)",
			id, testutil.FindCgroups(id), testutil.MountsUnder(c.bundle(id)))
	}

	out, stderr, code = c.ctr("task", "exec", "--exec-id", "probe", "--fifo-dir", c.fifoDir, id, "sh", "-c", callersExecScript+"; exit 5")
	if code != 5 || out != callersExecOut {
		t.Errorf("task exec: exit %d (want 5), stdout %q, stderr %s", code, out, stderr)
	}

	// The exec'd process is gone: the init is the task's one process.
	ps := strings.Split(strings.TrimSpace(c.ok("task", "ps", id)), "\n")
	if len(ps) != 2 || !containsField(ps[1], pidStr) {
		t.Errorf("task ps %s: want a header and the init pid %s:\n%s", id, pidStr, strings.Join(ps, "\n"))
	}

	c.ok("task", "pause", id)
	if _, status := c.task(id); status != "PAUSED" {
		t.Errorf("task ls after pause: %q, want PAUSED", status)
	}
	c.ok("task", "resume", id)
	if _, status := c.task(id); status != "RUNNING" {
		t.Errorf("task ls after resume: %q, want RUNNING", status)
	}

	// The shim reads the cgroups of the task's init itself; it does not
	// ask the runtime for `events --stats`.
	metrics := c.ok("task", "metrics", id)
	if !strings.Contains(metrics, "\nmemory.usage") || !strings.Contains(metrics, "\npids.current") {
		t.Errorf("task metrics lacks memory and pids rows:\n%s", metrics)
	}
	if v := metricsValue(metrics, "pids.current"); v != "1" {
		t.Errorf("task metrics: pids.current = %q, want 1 (sleep alone)", v)
	}

	// The exit status of a killed task reaches containerd's events.
	events := filepath.Join(c.dir, "events.log")
	ef, err := os.Create(events)
	if err != nil {
		t.Fatal(err)
	}
	evCmd := exec.Command(c.ctrBin, "--address", c.sock, "events")
	evCmd.Stdout, evCmd.Stderr = ef, ef
	if err := evCmd.Start(); err != nil {
		t.Fatal(err)
	}
	ef.Close()
	defer func() {
		evCmd.Process.Kill()
		evCmd.Wait()
	}()
	// `ctr events` subscribes asynchronously: the test pauses and resumes
	// the task until a /tasks/paused event shows it is listening.
	waitFor(t, "ctr events to report /tasks/paused", func() bool {
		c.ok("task", "pause", id)
		c.ok("task", "resume", id)
		b, _ := os.ReadFile(events)
		return strings.Contains(string(b), "/tasks/paused")
	})

	c.ok("task", "kill", "-s", "KILL", id)
	waitFor(t, "task ls to report "+id+" STOPPED", func() bool {
		_, status := c.task(id)
		return status == "STOPPED"
	})
	var exit string
	waitFor(t, "a /tasks/exit event for "+id, func() bool {
		b, _ := os.ReadFile(events)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, " /tasks/exit ") && strings.Contains(line, `"container_id":"`+id+`","id":"`+id+`"`) {
				exit = line
				return true
			}
		}
		return false
	})
	if !strings.Contains(exit, `"exit_status":137`) {
		t.Errorf("the /tasks/exit event of %s does not report exit status 137: %s", id, exit)
	}
	out, stderr, code = c.ctr("task", "rm", id)
	if code != 0 {
		t.Errorf("task rm: exit %d: %s %s", code, out, stderr)
	}
	c.ok("container", "rm", id)
	c.checkGone(id, []int{pid, shim})
	if fileExists(shimSocket) {
		t.Errorf("the shim's socket %s is left", shimSocket)
	}
	if t.Failed() {
		t.Logf("containerd log:\n%s", c.logTail())
	}
}

// containsField reports whether a line of text starts with the field f.
func containsField(text, f string) bool {
	for _, line := range strings.Split(text, "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && fields[0] == f {
			return true
		}
	}
	return false
}

// metricsValue returns the value of a row of `ctr task metrics`.
func metricsValue(text, row string) string {
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == row {
			return f[1]
		}
	}
	return ""
}

// shim returns the pid of the shim of a running task (the process whose
// command line names the test's containerd and the task), and the path of
// its socket, from the address file it leaves in the bundle.
func (c *containerd) shim(id string) (pid int, socket string) {
	c.t.Helper()
	pids := callersPidsWithCmdline(c.sock, "\x00"+id+"\x00")
	if len(pids) != 1 {
		c.t.Fatalf("want one shim for %s, found pids %v", id, pids)
	}
	b, err := os.ReadFile(filepath.Join(c.bundle(id), "address"))
	if err != nil {
		c.t.Fatalf("shim address of %s: %v", id, err)
	}
	return pids[0], strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://")
}

// checkGone checks that containerd lists neither a task nor a container id,
// and that the runtime left nothing of it: no state under the shim's root,
// no cgroup, no process of pids (the shim exits after `task rm`, so it is
// waited for), no mount under the bundle.
func (c *containerd) checkGone(id string, pids []int) {
	t := c.t
	t.Helper()
	if out := c.ok("task", "ls", "-q"); containsField(out, id) {
		t.Errorf("task ls still lists %s", id)
	}
	if out := c.ok("container", "ls", "-q"); containsField(out, id) {
		t.Errorf("container ls still lists %s", id)
	}
	for _, pid := range pids {
		waitFor(t, fmt.Sprintf("process %d of %s to exit", pid, id), func() bool { return callersGone(pid) })
	}
	waitFor(t, "the shim of "+id+" to exit", func() bool {
		callersReapZombies("containerd-shim")
		return len(callersPidsWithCmdline(c.sock, "\x00"+id+"\x00")) == 0
	})
	testutil.CheckNoLeaks(t, testutil.Leaks{
		Root:   filepath.Join(c.runcRoot, c.ns),
		ID:     id,
		Pids:   pids,
		Bundle: c.bundle(id),
	})
	if fileExists(c.bundle(id)) {
		t.Errorf("containerd's bundle %s is left", c.bundle(id))
	}
}

// podman runs Podman with a store, run root, temporary directory, network
// configuration and locks of the test's own, cgroupfs cgroups, events in a
// file, and the runtime under test. Podman passes the runtime no --root, so
// the runtime keeps its state under its default root.
type podman struct {
	t       *testing.T
	dir     string
	bin     string
	runtime string // the runtime under test
	global  []string
	env     []string
	parent  string // the --cgroup-parent of the test's containers
}

// newPodman prepares a private Podman and imports the busybox image as
// localhost/bb:1. Cleanup resets the store (`system reset -f` stops and
// removes every container), force-deletes through the runtime any container
// Podman failed to remove (the test's containers write their ids to
// DIR/*.cid), kills and reaps what is left of conmon and Podman's exit
// commands, and removes the cgroup parent; callersDir then unmounts what is
// left under the directory.
func newPodman(t *testing.T, runtimeBin string) *podman {
	t.Helper()
	testutil.RequiresRoot(t)
	p := &podman{
		t:       t,
		bin:     testutil.RequiresBinary(t, "podman", "podman"),
		runtime: runtimeBin,
		dir:     callersDir(t, "podman"),
		parent:  "/" + callersName(t, "podman"),
	}
	testutil.RequiresBinary(t, "conmon", "conmon")
	// File locks under --tmpdir instead of the shared memory segment that
	// every Podman of the host shares (/dev/shm/libpod_lock).
	conf := filepath.Join(p.dir, "containers.conf")
	if err := os.WriteFile(conf, []byte("[engine]\nlock_type = \"file\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.env = []string{"CONTAINERS_CONF=" + conf}
	p.global = []string{
		"--root", filepath.Join(p.dir, "root"),
		"--runroot", filepath.Join(p.dir, "run"),
		"--tmpdir", filepath.Join(p.dir, "tmp"),
		"--network-config-dir", filepath.Join(p.dir, "cni"),
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
		"--runtime", runtimeBin,
	}
	t.Cleanup(func() {
		if _, stderr, code := p.podman("system", "reset", "-f"); code != 0 {
			t.Errorf("podman system reset: exit %d: %s", code, stderr)
		}
		cids, _ := filepath.Glob(filepath.Join(p.dir, "*.cid"))
		for _, f := range cids {
			if b, err := os.ReadFile(f); err == nil && len(b) > 0 {
				callersForceDelete(t, p.runtime, "", strings.TrimSpace(string(b)))
			}
		}
		callersKillCmdline(t, p.dir)
		callersReapZombies("conmon", "podman")
		callersRemoveCgroups(t, p.parent)
	})
	rootfs := filepath.Join(p.dir, "rootfs.tar")
	if err := os.WriteFile(rootfs, callersRootfsTar(t), 0o644); err != nil {
		t.Fatal(err)
	}
	p.ok("import", rootfs, "localhost/bb:1")
	return p
}

// podman runs podman with the test's global flags.
func (p *podman) podman(args ...string) (stdout, stderr string, code int) {
	p.t.Helper()
	return callersCmd(p.t, p.env, p.bin, append(append([]string{}, p.global...), args...)...)
}

// ok runs podman and fails the test unless it exits 0; it returns stdout.
func (p *podman) ok(args ...string) string {
	p.t.Helper()
	out, stderr, code := p.podman(args...)
	if code != 0 {
		p.t.Fatalf("podman %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, stderr)
	}
	return out
}

// runFlags are the options of every `podman run` of the test. The container
// writes its id to DIR/<cid>.cid, for the checks and for cleanup. No network:
// the test needs none. The rlimits: Podman's defaults (nofile 1048576,
// nproc 4194304) exceed this host's hard limits, and raising a hard limit
// needs CAP_SYS_RESOURCE, which this VM withholds from root; runc and crun
// fail to start a container with the defaults just as the runtime under
// test does.
func (p *podman) runFlags(cid string) []string {
	return []string{"--cidfile", filepath.Join(p.dir, cid+".cid"), "--network", "none", "--cgroup-parent", p.parent,
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"}
}

// cid returns the id of a container run with runFlags(cid).
func (p *podman) cid(cid string) string {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, cid+".cid"))
	if err != nil || len(b) == 0 {
		p.t.Fatalf("podman wrote no container id to --cidfile: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// status returns `podman inspect --format {{.State.Status}}` of a container.
func (p *podman) status(name string) string {
	p.t.Helper()
	return strings.TrimSpace(p.ok("inspect", "--format", "{{.State.Status}}", name))
}

// checkGone checks that Podman no longer knows container id and that the
// runtime left nothing of it: no state under its default root, no cgroup
// (Podman's cgroupfs manager names it libpod-ID), no process of pids, and no
// mount under the test's directory.
func (p *podman) checkGone(id string, pids []int) {
	t := p.t
	t.Helper()
	if out := p.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}}"); containsField(out, id) {
		t.Errorf("podman ps -a still lists %s", id)
	}
	if st, printed := callersRuntimeStatus(t, p.runtime, "", id); st != "" {
		t.Errorf("the runtime still has state of %s under its default root: %s", id, printed)
	}
	for _, pid := range pids {
		waitFor(t, fmt.Sprintf("process %d of %s to exit", pid, id), func() bool { return callersGone(pid) })
	}
	// conmon, and the `podman container cleanup` it runs when the
	// container exits, name the container in their command lines.
	waitFor(t, "conmon and the exit command of "+id+" to exit", func() bool {
		callersReapZombies("conmon", "podman")
		return len(callersPidsWithCmdline(p.dir, id)) == 0
	})
	testutil.CheckNoLeaks(t, testutil.Leaks{ID: "libpod-" + id, Pids: pids, Bundle: p.dir})
}

func TestPodmanDrivesRuntime(t *testing.T) {
	bin := runtimeBin(t)
	p := newPodman(t, bin)

	// run --rm: Podman prints what the container writes and exits with
	// its status, then removes it.
	args := append(append([]string{"run", "--rm"}, p.runFlags("fg")...),
		"localhost/bb:1", "sh", "-c", "echo hello from; echo to stderr >&2; exit 3")
	out, stderr, code := p.podman(args...)
	if code != 3 || out != "hello from\n" || !strings.Contains(stderr, "to stderr") {
		t.Errorf("podman run --rm: exit %d (want 3)\nstdout: %q\nstderr: %s", code, out, stderr)
	}
	p.checkGone(p.cid("fg"), nil)

	// run -d, then the commands that reach the runtime.
	name := callersName(t, "podman")
	args = append(append([]string{"run", "-d", "--name", name}, p.runFlags("d")...), "localhost/bb:1", "sleep", "1000")
	if id := strings.TrimSpace(p.ok(args...)); id != p.cid("d") {
		t.Errorf("run -d printed %q, the cidfile holds %q", id, p.cid("d"))
	}
	id := p.cid("d")
	if s := p.status(name); s != "running" {
		t.Fatalf("status after run -d: %q, want running", s)
	}
	// The container's init and its conmon.
	var pids []int
	for _, f := range strings.Fields(p.ok("inspect", "--format", "{{.State.Pid}} {{.State.ConmonPid}}", name)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 2 {
		t.Fatalf("inspect: init and conmon pids %v", pids)
	}
	// What checkGone will look for is there while the container runs.
	if st, printed := callersRuntimeStatus(t, bin, "", id); st != "running" {
		t.Errorf("the runtime's own state of %s under its default root: %s", id, printed)
	}
	if len(testutil.FindCgroups("libpod-"+id)) == 0 || len(testutil.MountsUnder(p.dir)) == 0 {
		t.Errorf("running container %s has no cgroup libpod-ID (%v) or no mount under %s (%v)",
			id, testutil.FindCgroups("libpod-"+id), p.dir, testutil.MountsUnder(p.dir))
	}

	out, stderr, code = p.podman("exec", name, "sh", "-c", callersExecScript+"; exit 4")
	if code != 4 || out != callersExecOut {
		t.Errorf("podman exec: exit %d (want 4)\nstdout: %q\nstderr: %s", code, out, stderr)
	}

	if top := p.ok("top", name); !strings.Contains(top, "sleep 1000") {
		t.Errorf("podman top lacks the container's sleep:\n%s", top)
	}

	// Podman records a pause in its own database: the runtime's state
	// must agree.
	for _, step := range []struct{ cmd, want string }{{"pause", "paused"}, {"unpause", "running"}} {
		p.ok(step.cmd, name)
		if s := p.status(name); s != step.want {
			t.Errorf("status after %s: %q, want %s", step.cmd, s, step.want)
		}
		if st, printed := callersRuntimeStatus(t, bin, "", id); st != step.want {
			t.Errorf("the runtime's state after podman %s: %s, want status %s", step.cmd, printed, step.want)
		}
	}

	// Podman reads the container's cgroups itself.
	stats := strings.Fields(p.ok("stats", "--no-stream", "--format", "{{.PIDs}} {{.MemUsage}}", name))
	if len(stats) < 2 || stats[0] != "1" || stats[1] == "0B" {
		t.Errorf("stats --no-stream: %q, want 1 pid and some memory", stats)
	}

	// sleep, the container's pid 1, ignores SIGTERM: stop kills it after
	// one second.
	p.ok("stop", "-t", "1", name)
	if s := p.ok("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name); strings.TrimSpace(s) != "exited 137" {
		t.Errorf("after stop: %q, want exited 137", s)
	}
	p.ok("rm", name)
	p.checkGone(id, pids)
}
