package e2e

// Exec and open-for-write deny rules, carried out by Landlock that
// berth-runtime applies to the container's processes (see
// internal/runtime/landlock_linux.go), with their alerts from the agent.

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-project/berth/internal/secmon"
	"github.com/berth-project/berth/internal/secmon/kern"
	"github.com/berth-project/berth/internal/secmon/landlock"
)

var (
	ownShellOnce sync.Once
	ownShellRef  string
	ownShellErr  error
)

// ownShellImage is the test image with /bin/sh a copy of busybox of its
// own (in the plain image it is a symbolic link to busybox, which
// Landlock cannot deny by that name alone), pushed beside it.
func ownShellImage(e *engineT) string {
	e.t.Helper()
	ownShellOnce.Do(func() {
		bb, err := os.ReadFile("/bin/busybox")
		if err != nil {
			ownShellErr = err
			return
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "bin/sh", Mode: 0o755, Size: int64(len(bb))})
		tw.Write(bb)
		tw.Close()
		data := buf.Bytes()
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			ownShellErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), engineCmdTimeout)
		defer cancel()
		base, err := name.ParseReference(e.images.Plain, name.Insecure)
		if err != nil {
			ownShellErr = err
			return
		}
		img, err := remote.Image(base, remote.WithContext(ctx))
		if err == nil {
			img, err = mutate.AppendLayers(img, layer)
		}
		if err != nil {
			ownShellErr = err
			return
		}
		ownShellRef = e.images.registry + "/berth-test/busybox-ownsh:latest"
		ref, err := name.ParseReference(ownShellRef, name.Insecure)
		if err == nil {
			err = remote.Write(ref, img, remote.WithContext(ctx))
		}
		ownShellErr = err
	})
	if ownShellErr != nil {
		e.t.Fatalf("image with its own /bin/sh: %v", ownShellErr)
	}
	e.ok("pull", ownShellRef)
	return ownShellRef
}

func requiresLandlock(t *testing.T) {
	if abi := landlock.ABI(); abi < 3 {
		t.Skipf("needs Landlock ABI 3 or later (this kernel: %d)", abi)
	}
	if kern.ProbeLSM() == "" {
		t.Skip("needs a kernel without BPF LSM: this one runs BPF LSM programs, which carry out exec and open denies instead of Landlock (test/vm's TestSystemdSecmonLSM tests that path)")
	}
}

const landlockRules = `rules:
- name: no-shell
  event: exec
  condition: exec.path in ["/bin/sh", "/bin/bash"] && !("allow-shell" in container.labels)
  action: deny
- name: no-etc-writes
  event: open
  condition: file.write && file.path.startsWith("/etc/")
  action: deny
`

// TestSecmonLandlockDeny: a shell exec fails with EACCES under a deny rule
// while other commands run; a write under /etc fails while /tmp works;
// both are alerts with action deny; a labelled container is let through
// the shell rule; the same holds for a process started by `berth exec`.
func TestSecmonLandlockDeny(t *testing.T) {
	requiresLandlock(t)
	e := newSecmon(t)
	img := ownShellImage(e)
	rules := e.rulesFile(landlockRules)

	// The container's own process: the init's exec is refused.
	r := e.berth("run", "--rm", "--network", "none", "--security-opt", "monitor="+rules, img, "/bin/sh", "-c", "echo SHELL")
	if r.code != 126 || strings.Contains(r.stdout, "SHELL") || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("a container whose process is a denied shell: %s", r)
	}

	id := e.runD("--network", "none", "--security-opt", "monitor="+rules, img, "sleep", "1000")
	script := `/bin/sh -c "echo SHELL"; echo sh=$?; /bin/busybox echo other-ok
echo x > /etc/berth-x; echo etc=$?; echo x >> /etc/passwd; echo passwd=$?; rm /etc/group; echo rm=$?
echo y > /tmp/y && cat /tmp/y && echo tmp=ok; ln /bin/sh /tmp/sh; echo ln=$?`
	r = e.berth("exec", id, "/bin/busybox", "ash", "-c", script)
	for _, want := range []string{"sh=126", "other-ok", "etc=1", "passwd=1", "rm=1", "y\ntmp=ok", "ln=1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("under the deny rules, want %q: %s", want, r)
		}
	}
	if strings.Contains(r.stdout, "SHELL") {
		t.Fatalf("a denied shell ran: %s", r)
	}
	a := e.waitAlert("no-shell", func(a secmon.Alert) bool { return a.Container == id })
	if a.Action != "deny" || a.Event != "exec" || a.Exec == nil || a.Exec.Path != "/bin/sh" || a.Process.Pid == 0 {
		t.Errorf("shell alert %+v", a)
	}
	a = e.waitAlert("no-etc-writes", func(a secmon.Alert) bool { return a.Container == id && a.File != nil && a.File.Path == "/etc/berth-x" })
	if a.Action != "deny" || !a.File.Write {
		t.Errorf("/etc alert %+v", a)
	}
	for _, a := range e.alerts() {
		if a.File != nil && strings.HasPrefix(a.File.Path, "/tmp/") {
			t.Errorf("a /tmp write alerted: %+v", a)
		}
	}

	// The label lifts the shell rule; the /etc rule still holds.
	r = e.berth("run", "--rm", "--network", "none", "--label", "allow-shell=1", "--security-opt", "monitor="+rules, img,
		"/bin/sh", "-c", "echo SHELL; echo x > /etc/berth-x; echo etc=$?")
	if r.code != 0 || !strings.Contains(r.stdout, "SHELL") || !strings.Contains(r.stdout, "etc=1") {
		t.Fatalf("labelled container: %s", r)
	}
	// Without rules, nothing is denied.
	r = e.berth("run", "--rm", "--network", "none", img, "/bin/sh", "-c", "echo SHELL; echo x > /etc/berth-x; echo etc=$?")
	if !strings.Contains(r.stdout, "SHELL") || !strings.Contains(r.stdout, "etc=0") {
		t.Fatalf("container without rules: %s", r)
	}
}

// TestSecmonLandlockRefused: a denied path that is a symbolic link is
// refused at create (Landlock denies files, not names), and so is a
// container with Landlock rules whose runtime is not berth-runtime;
// nothing is left behind.
func TestSecmonLandlockRefused(t *testing.T) {
	requiresLandlock(t)
	e := newSecmon(t)
	ls := e.rulesFile("rules:\n- name: no-ls\n  event: exec\n  condition: exec.path == '/bin/ls'\n  action: deny\n")
	r := e.berth("run", "--rm", "--network", "none", "--security-opt", "monitor="+ls, e.image, "true")
	if r.code == 0 || !strings.Contains(r.stderr, `rule "no-ls" denies /bin/ls, a symbolic link to /bin/busybox`) {
		t.Errorf("a denied symbolic link: %s", r)
	}
	for _, rt := range []string{"runc", "crun"} {
		if _, err := os.Stat("/usr/sbin/" + rt); err != nil {
			if _, err := os.Stat("/usr/bin/" + rt); err != nil {
				continue
			}
		}
		r := e.berth("create", "--runtime", rt, "--network", "none", "--security-opt", "monitor="+e.rulesFile(landlockRules), e.image, "true")
		if r.code != 125 || !strings.Contains(r.stderr, `monitor rules "no-shell", "no-etc-writes" deny exec or open through Landlock, which runtime "`+rt+`"`) {
			t.Errorf("runtime %s: %s", rt, r)
		}
	}
	if out := e.ok("ps", "-a", "-q"); out != "" {
		t.Errorf("containers left: %q", out)
	}
	if out := e.ok("monitor", "mechanisms"); !strings.Contains(out, "Landlock (EXECUTE)") || !strings.Contains(out, "Landlock (WRITE_FILE") {
		t.Errorf("mechanisms: %s", out)
	}
}
