package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
)

// Docker drives the runtime under test as a runtime of its own
// (`dockerd --add-runtime berth=PATH`, then `docker run --runtime berth`):
// dockerd, the containerd it manages and containerd's runc shim with
// BinaryName set to the runtime. The daemon is private to the test: its
// data root, exec root, socket, configuration and cgroup parent are the
// test's; no bridge, no iptables rules, no userland proxy. The runtime
// keeps its state under the exec root (runtime-runc/moby: Docker 20.10's
// root for every runc-like runtime, and containerd's namespace). What stays host-wide, as
// Docker 20.10 and containerd 1.6 hard-code it: the shim's sockets in
// /run/containerd/s, and /etc/docker/key.json, which dockerd makes when
// it is missing (the test removes it again then).

type docker struct {
	t       *testing.T
	dir     string
	cli     string
	sock    string
	runtime string
	parent  string // --cgroup-parent
	root    string // the runtime's --root, as Docker sets it
	daemon  *exec.Cmd
	exited  chan struct{}
}

// startDocker starts a private dockerd with the runtime under test as
// runtime "berth" and imports the busybox image as localhost/bb:1.
func startDocker(t *testing.T, runtimeBin string) *docker {
	t.Helper()
	testutil.RequiresRoot(t)
	dockerd := testutil.RequiresBinary(t, "dockerd", "docker.io")
	testutil.RequiresBinary(t, "containerd", "containerd")
	testutil.RequiresBinary(t, "containerd-shim-runc-v2", "containerd")
	d := &docker{
		t:       t,
		cli:     testutil.RequiresBinary(t, "docker", "docker.io"),
		dir:     callersDir(t, "docker"),
		runtime: runtimeBin,
		parent:  "/" + callersName(t, "docker"),
		exited:  make(chan struct{}),
	}
	d.sock = filepath.Join(d.dir, "docker.sock")
	d.root = filepath.Join(d.dir, "exec", "runtime-runc", "moby")
	conf := filepath.Join(d.dir, "daemon.json")
	if err := os.WriteFile(conf, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const key = "/etc/docker/key.json"
	_, keyErr := os.Stat(key)
	log, err := os.Create(filepath.Join(d.dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.daemon = exec.Command(dockerd,
		"--config-file", conf,
		"--data-root", filepath.Join(d.dir, "data"),
		"--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "dockerd.pid"),
		"--host", "unix://"+d.sock,
		"--bridge", "none", "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false",
		"--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", d.parent,
		"--storage-driver", "overlay2",
		"--add-runtime", "berth="+runtimeBin,
		// Docker's default nofile exceeds this host's hard limit, which
		// root cannot raise without CAP_SYS_RESOURCE.
		"--default-ulimit", "nofile=20000:20000")
	d.daemon.Stdout, d.daemon.Stderr = log, log
	d.daemon.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := d.daemon.Start(); err != nil {
		t.Fatal(err)
	}
	log.Close()
	go func() { d.daemon.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		// Containers first, through Docker; then the daemon (which stops
		// its containerd); then whatever a failure left.
		if out, _, code := d.docker("ps", "-aq"); code == 0 {
			for _, id := range strings.Fields(out) {
				d.docker("rm", "-f", id)
			}
		}
		d.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(45 * time.Second):
			t.Errorf("dockerd did not stop within 45s of SIGTERM")
			d.daemon.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
			t.Logf("dockerd's log:\n%s", lastLines(string(b), 40))
		}
		callersKillCmdline(t, d.dir)
		callersReapZombies("containerd", "containerd-shim", "containerd-shim-runc-v2")
		callersRemoveCgroups(t, d.parent)
		if errors.Is(keyErr, os.ErrNotExist) {
			os.Remove(key)
		}
	})
	waitForLong(t, "dockerd to answer", 60*time.Second, func() bool {
		select {
		case <-d.exited:
			b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
			t.Fatalf("dockerd exited at start:\n%s", lastLines(string(b), 40))
		default:
		}
		_, _, code := d.docker("version")
		return code == 0
	})
	rootfs := filepath.Join(d.dir, "rootfs.tar")
	if err := os.WriteFile(rootfs, callersRootfsTar(t), 0o644); err != nil {
		t.Fatal(err)
	}
	d.ok("import", rootfs, "localhost/bb:1")
	return d
}

func (d *docker) docker(args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	return callersCmd(d.t, nil, d.cli, append([]string{"--host", "unix://" + d.sock}, args...)...)
}

func (d *docker) ok(args ...string) string {
	d.t.Helper()
	out, stderr, code := d.docker(args...)
	if code != 0 {
		d.t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, stderr)
	}
	return out
}

// checkGone checks that Docker no longer knows container id and that the
// runtime left nothing of it: no state under the shim's root, no cgroup
// (Docker's cgroupfs driver names it PARENT/ID), no process of pids.
func (d *docker) checkGone(id string, pids []int) {
	t := d.t
	t.Helper()
	if out := d.ok("ps", "-aq", "--no-trunc"); containsField(out, id) {
		t.Errorf("docker ps -a still lists %s", id)
	}
	for _, pid := range pids {
		waitFor(t, fmt.Sprintf("process %d of %s to exit", pid, id), func() bool { return callersGone(pid) })
	}
	waitFor(t, "the runtime's state of "+id+" to go", func() bool {
		st, _ := callersRuntimeStatus(t, d.runtime, d.root, id)
		return st == ""
	})
	testutil.CheckNoLeaks(t, testutil.Leaks{ID: id, Pids: pids})
}

func TestDockerDrivesRuntime(t *testing.T) {
	bin := runtimeBin(t)
	d := startDocker(t, bin)

	// run --rm: Docker prints what the container writes and exits with
	// its status, then removes it.
	out, stderr, code := d.docker("run", "--rm", "--runtime", "berth", "--network", "none", "localhost/bb:1",
		"sh", "-c", "echo hello from; echo to stderr >&2; exit 3")
	if code != 3 || out != "hello from\n" || !strings.Contains(stderr, "to stderr") {
		t.Errorf("docker run --rm: exit %d (want 3)\nstdout: %q\nstderr: %s", code, out, stderr)
	}
	// A terminal: the runtime makes the console and hands it to the shim.
	out, stderr, code = d.docker("run", "--rm", "-t", "--runtime", "berth", "--network", "none", "localhost/bb:1", "tty")
	if code != 0 || !strings.Contains(out, "/dev/pts/0") {
		t.Errorf("docker run -t tty: exit %d, %q %s; want /dev/pts/0", code, out, stderr)
	}

	name := callersName(t, "docker")
	id := strings.TrimSpace(d.ok("run", "-d", "--name", name, "--runtime", "berth", "--network", "none", "--memory", "64m",
		"localhost/bb:1", "sleep", "1000"))
	var info []struct {
		State struct {
			Status string
			Pid    int
		}
		HostConfig struct{ Runtime string }
	}
	if err := json.Unmarshal([]byte(d.ok("inspect", name)), &info); err != nil || len(info) != 1 {
		t.Fatalf("docker inspect: %v", err)
	}
	if info[0].State.Status != "running" || info[0].HostConfig.Runtime != "berth" || info[0].State.Pid == 0 {
		t.Fatalf("docker inspect after run -d: %+v", info[0])
	}
	pid := info[0].State.Pid
	if filepath.Base(bin) == "berth-runtime" {
		// Proof that Docker ran the runtime under test and not its runc:
		// a state file only berth-runtime writes.
		if _, err := os.Stat(filepath.Join(d.root, id, "fastpath")); err != nil {
			t.Errorf("no berth-runtime state for %s under %s: %v", id, d.root, err)
		}
	}
	if st, printed := callersRuntimeStatus(t, bin, d.root, id); st != "running" {
		t.Errorf("the runtime's own state of %s under %s: %s", id, d.root, printed)
	}
	if len(testutil.FindCgroups(id)) == 0 {
		t.Errorf("running container %s has no cgroup", id)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err != nil || !strings.Contains(string(b), d.parent+"/"+id) {
		t.Errorf("the container's init is not in %s/%s: %s", d.parent, id, b)
	}

	out, stderr, code = d.docker("exec", name, "sh", "-c", callersExecScript+"; exit 4")
	if code != 4 || out != callersExecOut {
		t.Errorf("docker exec: exit %d (want 4)\nstdout: %q\nstderr: %s", code, out, stderr)
	}
	if top := d.ok("top", name); !strings.Contains(top, "sleep 1000") {
		t.Errorf("docker top lacks the container's sleep:\n%s", top)
	}
	for _, step := range []struct{ cmd, want string }{{"pause", "paused"}, {"unpause", "running"}} {
		d.ok(step.cmd, name)
		if s := strings.TrimSpace(d.ok("inspect", "-f", "{{.State.Status}}", name)); s != step.want {
			t.Errorf("status after docker %s: %q, want %s", step.cmd, s, step.want)
		}
		if st, printed := callersRuntimeStatus(t, bin, d.root, id); st != step.want {
			t.Errorf("the runtime's state after docker %s: %s, want %s", step.cmd, printed, step.want)
		}
	}
	// Docker reads the limits and usage from the cgroup itself.
	stats := strings.Fields(d.ok("stats", "--no-stream", "--format", "{{.PIDs}} {{.MemUsage}}", name))
	if len(stats) < 4 || stats[0] != "1" || stats[3] != "64MiB" {
		t.Errorf("docker stats --no-stream: %q, want 1 pid and the 64MiB limit", stats)
	}
	d.ok("update", "--memory", "96m", "--memory-swap", "-1", name)
	if b, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", d.parent, id, "memory.limit_in_bytes")); strings.TrimSpace(string(b)) != strconv.Itoa(96<<20) && cgroupV1Memory() {
		t.Errorf("memory limit after docker update: %q, want %d", b, 96<<20)
	}
	// sleep ignores SIGTERM as PID 1: stop kills it after one second.
	d.ok("stop", "-t", "1", name)
	if s := strings.TrimSpace(d.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name)); s != "exited 137" {
		t.Errorf("after docker stop: %q, want exited 137", s)
	}
	d.ok("rm", name)
	d.checkGone(id, []int{pid})
}

// cgroupV1Memory says whether the memory controller is on a v1 hierarchy.
func cgroupV1Memory() bool {
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes")
	return err == nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
