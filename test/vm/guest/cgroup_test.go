//go:build berthvm

package guest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	cgroupRoot = "/sys/fs/cgroup"
	// cgroup2SuperMagic is CGROUP2_SUPER_MAGIC from linux/magic.h.
	cgroup2SuperMagic = 0x63677270
	// settle bounds how long a test waits for the kernel to report a state
	// change (frozen, unpopulated) before it fails; it is a deadlock guard,
	// not a timing assertion.
	settle = 30 * time.Second
)

// The controllers Berth's cgroup v2 driver uses; the VM must offer them all.
var wantControllers = []string{"cpu", "io", "memory", "pids"}

func TestCgroup2Mounted(t *testing.T) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupRoot, &st); err != nil {
		t.Fatalf("statfs %s: %v", cgroupRoot, err)
	}
	if st.Type != cgroup2SuperMagic {
		t.Fatalf("%s has filesystem magic %#x, want cgroup2 (%#x)", cgroupRoot, st.Type, cgroup2SuperMagic)
	}
	// On a v2-only host a process belongs to exactly one hierarchy: "0::PATH".
	self := readFile(t, "/proc/self/cgroup")
	if lines := strings.Split(strings.TrimSpace(self), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "0::/") {
		t.Fatalf("/proc/self/cgroup = %q, want one line 0::PATH", self)
	}
}

func TestCgroupControllersAvailable(t *testing.T) {
	available := strings.Fields(readFile(t, filepath.Join(cgroupRoot, "cgroup.controllers")))
	enabled := strings.Fields(readFile(t, filepath.Join(cgroupRoot, "cgroup.subtree_control")))
	for _, c := range wantControllers {
		if !slices.Contains(available, c) {
			t.Errorf("controller %s not in %s/cgroup.controllers %q", c, cgroupRoot, available)
		}
		if !slices.Contains(enabled, c) {
			t.Errorf("controller %s not enabled in %s/cgroup.subtree_control %q", c, cgroupRoot, enabled)
		}
	}
	cg := newCgroup(t, "controllers")
	inChild := strings.Fields(readFile(t, filepath.Join(cg, "cgroup.controllers")))
	for _, c := range wantControllers {
		if !slices.Contains(inChild, c) {
			t.Errorf("controller %s not delegated to child %s: its cgroup.controllers is %q", c, cg, inChild)
		}
	}
	// A limit of each kind reads back as written.
	for file, value := range map[string]string{
		"cpu.max":    "50000 100000",
		"cpu.weight": "50",
		"memory.max": "67108864",
		"pids.max":   "64",
	} {
		writeFile(t, filepath.Join(cg, file), value)
		if got := strings.TrimSpace(readFile(t, filepath.Join(cg, file))); got != value {
			t.Errorf("%s/%s reads %q after writing %q", cg, file, got, value)
		}
	}
}

func TestCgroupMemoryMaxOOMKills(t *testing.T) {
	cg := newCgroup(t, "oom")
	writeFile(t, filepath.Join(cg, "memory.max"), strconv.Itoa(32<<20))
	if _, err := os.Stat(filepath.Join(cg, "memory.swap.max")); err == nil {
		writeFile(t, filepath.Join(cg, "memory.swap.max"), "0")
	}
	if n := eventCount(t, cg, "memory.events", "oom_kill"); n != 0 {
		t.Fatalf("new cgroup %s already has oom_kill %d", cg, n)
	}

	hog := helperCommand(t, "memhog")
	out, err := runIn(t, cg, hog)
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("memory hog in %s (memory.max 32M): want it killed, got err %v, output:\n%s", cg, err, out)
	}
	ws := exitErr.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("memory hog in %s: want death by SIGKILL (OOM), got %v, output:\n%s", cg, exitErr, out)
	}
	if want := "cgroup 0::/" + filepath.Base(cg); !strings.Contains(out, want) {
		t.Fatalf("memory hog did not run in %s: want %q in its output:\n%s", cg, want, out)
	}
	if n := eventCount(t, cg, "memory.events", "oom_kill"); n < 1 {
		t.Fatalf("%s/memory.events oom_kill = %d after the hog was killed, want >= 1", cg, n)
	}
}

func TestCgroupPidsMaxStopsForkLoop(t *testing.T) {
	const pidsMax = 8
	cg := newCgroup(t, "pids")
	writeFile(t, filepath.Join(cg, "pids.max"), strconv.Itoa(pidsMax))

	// The shell forks sleepers until fork fails (ash then exits non-zero);
	// reaching 100 means pids.max was not enforced. The sleepers must not
	// hold the output pipe open.
	loop := exec.Command("/bin/busybox", "sh", "-c",
		`i=0; while [ $i -lt 100 ]; do /bin/busybox sleep 1000 >/dev/null 2>&1 & i=$((i+1)); done; echo "forked $i"`)
	out, err := runIn(t, cg, loop)
	if err == nil {
		t.Fatalf("fork loop in %s (pids.max %d) ended normally; output:\n%s", cg, pidsMax, out)
	}
	if !strings.Contains(out, "can't fork") {
		t.Fatalf("fork loop in %s: want the shell's \"can't fork\", got %v, output:\n%s", cg, err, out)
	}
	if n := eventCount(t, cg, "pids.events", "max"); n < 1 {
		t.Errorf("%s/pids.events max = %d after a refused fork, want >= 1", cg, n)
	}
	current, err := strconv.Atoi(strings.TrimSpace(readFile(t, filepath.Join(cg, "pids.current"))))
	if err != nil {
		t.Fatal(err)
	}
	if current > pidsMax {
		t.Errorf("%s/pids.current = %d, above pids.max %d", cg, current, pidsMax)
	}
	// The shell held one pid: every other one went to a sleeper.
	if procs := cgroupProcs(t, cg); len(procs) != pidsMax-1 {
		t.Errorf("%s holds %d processes after the loop, want the %d sleepers that fit", cg, len(procs), pidsMax-1)
	}
}

func TestCgroupFreeze(t *testing.T) {
	cg := newCgroup(t, "freeze")
	sleeper := exec.Command("/bin/busybox", "sleep", "1000")
	startIn(t, cg, sleeper)

	writeFile(t, filepath.Join(cg, "cgroup.freeze"), "1")
	waitEvent(t, cg, "frozen", 1)
	// The kernel sets frozen only once every task in the cgroup is stopped
	// in the freezer; frozen tasks stay members, alive.
	if procs := cgroupProcs(t, cg); !slices.Equal(procs, []string{strconv.Itoa(sleeper.Process.Pid)}) {
		t.Errorf("frozen %s holds processes %q, want the sleeper %d", cg, procs, sleeper.Process.Pid)
	}

	writeFile(t, filepath.Join(cg, "cgroup.freeze"), "0")
	waitEvent(t, cg, "frozen", 0)
	if err := sleeper.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal thawed sleeper: %v", err)
	}
	err := sleeper.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("thawed sleeper: want death by SIGTERM, got %v", err)
	}
}

// newCgroup creates a child of the root cgroup named for the test, and
// removes it, killing whatever is left in it, when the test ends.
func newCgroup(t *testing.T, name string) string {
	t.Helper()
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cgroupRoot, "berth-guest-"+name+"-"+hex.EncodeToString(suffix))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
			t.Errorf("kill the processes of %s: %v", dir, err)
		}
		waitEvent(t, dir, "populated", 0)
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove cgroup: %v", err)
		}
	})
	return dir
}

// helperCommand runs this test binary again as the helper process name.
func helperCommand(t *testing.T, name string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	return cmd
}

// runIn runs cmd as a member of cgroup dir from its first instruction on
// (clone3 CLONE_INTO_CGROUP, as a runtime places a container's init) and
// returns its combined output.
func runIn(t *testing.T, dir string, cmd *exec.Cmd) (string, error) {
	t.Helper()
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	// A leftover child holding the output pipe must not hang the test.
	cmd.WaitDelay = settle
	startIn(t, dir, cmd)
	err := cmd.Wait()
	return out.String(), err
}

// startIn starts cmd as a member of cgroup dir.
func startIn(t *testing.T, dir string, cmd *exec.Cmd) {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open cgroup: %v", err)
	}
	defer syscall.Close(fd)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v in %s: %v", cmd.Args, dir, err)
	}
}

// eventCount returns the counter key of the flat-keyed file name in dir.
func eventCount(t *testing.T, dir, name, key string) int {
	t.Helper()
	path := filepath.Join(dir, name)
	for _, line := range strings.Split(readFile(t, path), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: %s is %q, not a number", path, key, v)
			}
			return n
		}
	}
	t.Fatalf("%s has no %s", path, key)
	return 0
}

// waitEvent waits until key of dir's cgroup.events reads want.
func waitEvent(t *testing.T, dir, key string, want int) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		got := eventCount(t, dir, "cgroup.events", key)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/cgroup.events %s is still %d after %v, want %d", dir, key, got, settle, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func cgroupProcs(t *testing.T, dir string) []string {
	t.Helper()
	return strings.Fields(readFile(t, filepath.Join(dir, "cgroup.procs")))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, value string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		t.Fatal(err)
	}
}
