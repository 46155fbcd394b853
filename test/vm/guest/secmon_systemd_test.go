//go:build berthvm

package guest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
)

// TestSystemdSecmonLSM runs containers with monitor rules in the VM,
// whose Debian kernel (6.1) runs BPF LSM programs (bpf is among its
// default LSMs) and whose connect programs cannot signal: exec and open
// denies are carried out by the BPF LSM programs, under berth-runtime
// and under runc (which applies no Landlock); a shell and a drifted
// binary fail to run, a write, a create (which leaves no file), a mkdir
// and a remove under /etc fail while /tmp and reading /etc work, each
// denial is an alert; a connect kill rule is refused
// with the kernel's reason; the agent's pins are gone with the last
// container. BERTH_VM_BERTHD names the directory holding berth,
// berth-monitor, berth-runtime and berth-secmon.
func TestSystemdSecmonLSM(t *testing.T) {
	requireSystemd(t)
	bin := os.Getenv("BERTH_VM_BERTHD")
	if bin == "" {
		t.Skip("needs berth and berth-secmon in the VM: TestSystemdVM copies them (set BERTH_VM_BERTHD to their directory)")
	}
	dir := t.TempDir()
	base := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run")}
	berth := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(bin, "berth"), append(base, args...)...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	mustBerth := func(args ...string) string {
		t.Helper()
		out, err := berth(args...)
		if err != nil {
			t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// The image: the busybox bundle's rootfs (with /etc/passwd).
	b := testutil.NewBundle(t).Rootfs
	tarball := filepath.Join(dir, "rootfs.tar")
	mustRun(t, nil, "tar", "-C", b, "-cf", tarball, ".")
	mustBerth("import", tarball, "localhost/bb:1")

	mech := mustBerth("monitor", "mechanisms")
	for _, want := range []string{"BPF LSM bprm_check_security", "BPF LSM file_open"} {
		if !strings.Contains(mech, want) {
			t.Errorf("berth monitor mechanisms does not name %q:\n%s", want, mech)
		}
	}
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(`rules:
- name: no-shell
  event: exec
  condition: exec.path in ["/bin/sh", "/bin/bash"]
  action: deny
- name: no-drift
  event: exec
  condition: exec.drift
  action: deny
- name: no-etc
  event: open
  condition: file.write && file.path.startsWith("/etc/")
  action: deny
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, runtime := range []string{"berth-runtime", "runc"} {
		t.Run(runtime, func(t *testing.T) {
			if runtime == "runc" {
				if _, err := exec.LookPath("runc"); err != nil {
					t.Fatalf("runc is in the VM's image (containerd brings it): %v", err)
				}
			}
			id := mustBerth("run", "-d", "--network", "none", "--runtime", runtime, "--security-opt", "monitor="+rules, "localhost/bb:1", "sleep", "1000")
			id = id[strings.LastIndexAny(id, "\n")+1:]
			defer berth("rm", "-f", id)
			check := func(what string, wantOK bool, want string, args ...string) {
				t.Helper()
				out, err := berth(append([]string{"exec", id}, args...)...)
				if (err == nil) != wantOK || !strings.Contains(out, want) {
					t.Errorf("%s: err %v, output %q (want ok=%v and %q)", what, err, out, wantOK, want)
				}
			}
			check("a shell", false, "ermission denied", "/bin/sh", "-c", "echo SHELL")
			check("busybox itself", true, "OK", "/bin/busybox", "echo", "OK")
			check("copy busybox to /tmp", true, "", "/bin/busybox", "cp", "/bin/busybox", "/tmp/busybox")
			check("the drifted copy", false, "ermission denied", "/tmp/busybox", "echo", "DRIFTED")
			check("a write under /etc", false, "ermission denied", "/bin/busybox", "dd", "if=/dev/zero", "of=/etc/passwd", "count=1")
			check("a file made under /etc", false, "ermission denied", "/bin/busybox", "touch", "/etc/new")
			check("the denied file", false, "No such file", "/bin/busybox", "ls", "/etc/new")
			check("a directory made under /etc", false, "ermission denied", "/bin/busybox", "mkdir", "/etc/d")
			check("a file removed under /etc", false, "ermission denied", "/bin/busybox", "rm", "/etc/passwd")
			check("a write under /tmp", true, "", "/bin/busybox", "dd", "if=/dev/zero", "of=/tmp/x", "count=1")
			check("reading /etc", true, "root", "/bin/busybox", "cat", "/etc/passwd")
			for _, rule := range []string{"no-shell", "no-drift", "no-etc"} {
				waitFor(t, "a deny alert of "+rule, 20*time.Second, func() bool {
					out, _ := berth("monitor", "events", "--format", "json")
					for _, l := range strings.Split(out, "\n") {
						if strings.Contains(l, `"rule":"`+rule+`"`) && strings.Contains(l, `"action":"deny"`) && strings.Contains(l, id) {
							return true
						}
					}
					return false
				})
			}
		})
	}
	// The kernel's connect programs cannot signal here (6.1): a kill on
	// connect is refused with that reason, nothing started.
	kill := filepath.Join(dir, "kill.yaml")
	os.WriteFile(kill, []byte("rules:\n- name: k\n  event: connect\n  condition: connect.port == 1\n  action: kill\n"), 0o600)
	if out, err := berth("run", "-d", "--network", "none", "--security-opt", "monitor="+kill, "localhost/bb:1", "true"); err == nil || !strings.Contains(out, "bpf_send_signal") {
		t.Errorf("a connect kill rule: err %v, output %q (want refused, naming bpf_send_signal)", err, out)
	}
	// The last container gone, the agent removes every pin and exits.
	waitFor(t, "the agent's pins to go", 30*time.Second, func() bool {
		_, err := os.Stat("/sys/fs/bpf/berth")
		return os.IsNotExist(err)
	})
}

// waitFor polls cond every 200 ms until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("no %s within %s", what, d)
			return
		}
	}
}
