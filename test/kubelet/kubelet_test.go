//go:build kubelet

// Package kubelet runs a real kubelet (standalone, static pods) against
// berthd through run.sh, which does the work and the cleanup; this test
// gives it a deadline and checks that nothing of the run is left on the
// host. Build tag kubelet: it needs root, `make build`, crictl and a
// kubelet binary (build.sh makes one from the Go module proxy, 10+ minutes
// the first time), so plain `go test ./...` skips it.
//
//	go test -tags kubelet -v -timeout 30m ./test/kubelet/
package kubelet

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStaticPodsOnBerthd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: kubelet and berthd make namespaces, mounts and cgroups")
	}
	for _, tool := range []string{"crictl", "jq", "curl", "unshare", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("needs %s in PATH", tool)
			}
			t.Skipf("needs %s in PATH", tool)
		}
	}
	before := leftovers(t)

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./run.sh")
	// A cancelled run gets SIGTERM, so that its EXIT trap still cleans up.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 2 * time.Minute
	cmd.Env = append(os.Environ(), "KL_KEEP=")
	out, err := cmd.CombinedOutput()
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		t.Log(sc.Text())
	}
	if err != nil {
		t.Errorf("run.sh: %v", err)
	}

	for l := range leftovers(t) {
		if !before[l] {
			t.Errorf("left on the host: %s", l)
		}
	}
}

// leftovers lists what a run could leave behind: its private directories,
// mounts under them, its cgroups, kubelet and berthd processes naming them.
func leftovers(t *testing.T) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	dirs, _ := filepath.Glob("/tmp/berth-kl.*")
	for _, d := range dirs {
		found["dir "+d] = true
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && strings.HasPrefix(f[4], "/tmp/berth-kl.") {
				found["mount "+f[4]] = true
			}
		}
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/berth-kl-*")
	for _, c := range cgs {
		found["cgroup "+c] = true
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "/tmp/berth-kl.") {
			found["process "+strings.ReplaceAll(string(b), "\x00", " ")] = true
		}
	}
	return found
}
