package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/testutil"
)

// nobody is the unprivileged host user the rootless tests run the runtime as.
const nobody = 65534

// asNobody runs the runtime under test as an unprivileged user, with
// XDG_RUNTIME_DIR as its only hint of where to keep state (as a rootless
// Podman does).
func asNobody(t *testing.T, xdg string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(runtimeBin(t), args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR=" + xdg}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	// Files, not pipes: a detached container keeps its stdio open, and
	// Run would wait for a pipe's last writer.
	dir := t.TempDir()
	o, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	e, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cmd.Stdout, cmd.Stderr = o, e
	err = cmd.Run()
	out, _ := os.ReadFile(o.Name())
	errOut, _ := os.ReadFile(e.Name())
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), string(errOut), ee.ExitCode()
		}
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out), string(errOut), 0
}

// TestRootless: an unprivileged user runs a container from a
// `spec --rootless`-shaped config: it is root only inside its user
// namespace, the runtime keeps state under $XDG_RUNTIME_DIR, and exec,
// kill and delete work without privileges and leave nothing behind.
func TestRootless(t *testing.T) {
	testutil.RequiresRoot(t) // to make the unprivileged user's directories
	xdg := t.TempDir()
	if err := os.Chmod(filepath.Dir(xdg), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(xdg, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(xdg, "berth")
	if isRunc(t) {
		stateDir = filepath.Join(xdg, "runc")
	}
	rootless := testutil.WithSpec(func(s *specs.Spec) { oci.ToRootless(s, nobody, nobody) })

	b := testutil.NewBundle(t, rootless, testutil.WithShell(`id; cat /proc/self/uid_map; touch /tmp/x 2>&1; echo touch=$?`))
	stdout, stderr, code := asNobody(t, xdg, "run", "--bundle", b.Dir, "berth-e2e-rootless-fg")
	if code != 0 {
		t.Fatalf("rootless run: exit %d: %s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "uid=0(root) gid=0(root)") {
		t.Errorf("rootless container: want root inside its user namespace: %s", stdout)
	}
	if !regexp.MustCompile(`(?m)^\s*0\s+65534\s+1$`).MatchString(stdout) {
		t.Errorf("rootless container's uid_map: want 0 -> 65534 (one id): %s", stdout)
	}

	b2 := testutil.NewBundle(t, rootless, testutil.WithArgs("sleep", "1000"))
	const id = "berth-e2e-rootless-bg"
	t.Cleanup(func() { asNobody(t, xdg, "delete", "--force", id) })
	if out, errOut, code := asNobody(t, xdg, "run", "-d", "--bundle", b2.Dir, id); code != 0 {
		t.Fatalf("rootless run -d: exit %d: %s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(stateDir, id)); err != nil {
		t.Errorf("rootless state: want it under $XDG_RUNTIME_DIR/berth: %v", err)
	}
	if out, errOut, code := asNobody(t, xdg, "exec", id, "id", "-u"); code != 0 || strings.TrimSpace(out) != "0" {
		t.Errorf("rootless exec id -u: exit %d, %q %s", code, out, errOut)
	}
	if out, errOut, code := asNobody(t, xdg, "kill", id, "KILL"); code != 0 {
		t.Errorf("rootless kill: exit %d: %s%s", code, out, errOut)
	}
	waitFor(t, "the rootless container to stop", func() bool {
		out, _, _ := asNobody(t, xdg, "state", id)
		return strings.Contains(out, `"stopped"`)
	})
	if out, errOut, code := asNobody(t, xdg, "delete", id); code != 0 {
		t.Errorf("rootless delete: exit %d: %s%s", code, out, errOut)
	}
	if left, _ := os.ReadDir(stateDir); len(left) != 0 {
		t.Errorf("rootless delete left state entries %v", left)
	}

	// A limit needs a cgroup that an unprivileged user cannot make.
	b3 := testutil.NewBundle(t, rootless, testutil.WithArgs("true"), testutil.WithSpec(func(s *specs.Spec) {
		limit := int64(10)
		s.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}
	}))
	_, errOut, code := asNobody(t, xdg, "run", "--bundle", b3.Dir, "berth-e2e-rootless-limit")
	if code == 0 || !strings.Contains(errOut, "pids") {
		t.Errorf("rootless run with a pids limit and no cgroup: want a failure naming pids, got exit %d: %s", code, errOut)
	}
	if left, _ := os.ReadDir(stateDir); len(left) != 0 {
		t.Errorf("failed rootless run left state entries %v", left)
	}
}
