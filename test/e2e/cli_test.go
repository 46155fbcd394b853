package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSpecRuns(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t)
	cfg := filepath.Join(b.Dir, "config.json")
	if err := os.Remove(cfg); err != nil {
		t.Fatal(err)
	}
	rt.Do("spec", "--bundle", b.Dir).OK(t)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatalf("spec wrote no config.json: %v", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("spec wrote config.json that is not a spec: %v\n%s", err, data)
	}
	if s.Process == nil || s.Root == nil || s.Root.Path != "rootfs" || s.Linux == nil {
		t.Fatalf("spec's config.json lacks process, root rootfs or linux:\n%s", data)
	}
	if res := rt.Do("spec", "--bundle", b.Dir); res.ExitCode == 0 {
		t.Errorf("spec over an existing config.json succeeded: %s", res)
	}
	s.Process.Terminal = false
	s.Process.Args = []string{"sh", "-c", "echo spec-ok; hostname"}
	b.Spec = &s
	b.Save(t)
	res := rt.Run(rt.NewID("spec"), b.Dir).OK(t)
	if got := strings.Fields(res.Stdout); len(got) != 2 || got[0] != "spec-ok" || got[1] != s.Hostname {
		t.Errorf("run of the spec's bundle printed %q, want spec-ok and hostname %q", res.Stdout, s.Hostname)
	}
}

func TestFeatures(t *testing.T) {
	rt := newRuntime(t)
	out := rt.Do("features").OK(t).Stdout
	var f struct {
		OCIVersionMin string   `json:"ociVersionMin"`
		OCIVersionMax string   `json:"ociVersionMax"`
		Hooks         []string `json:"hooks"`
		MountOptions  []string `json:"mountOptions"`
		Linux         struct {
			Namespaces   []string `json:"namespaces"`
			Capabilities []string `json:"capabilities"`
		} `json:"linux"`
	}
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("features: %v\n%s", err, out)
	}
	version := regexp.MustCompile(`^1\.\d+\.\d+`)
	if !version.MatchString(f.OCIVersionMin) || !version.MatchString(f.OCIVersionMax) {
		t.Errorf("features: ociVersionMin %q, ociVersionMax %q, want 1.x.y versions", f.OCIVersionMin, f.OCIVersionMax)
	}
	for _, h := range []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"} {
		if !slices.Contains(f.Hooks, h) {
			t.Errorf("features: hooks %v lacks %s", f.Hooks, h)
		}
	}
	for _, ns := range []string{"pid", "network", "ipc", "uts", "mount", "user", "cgroup"} {
		if !slices.Contains(f.Linux.Namespaces, ns) {
			t.Errorf("features: linux.namespaces %v lacks %s", f.Linux.Namespaces, ns)
		}
	}
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_KILL", "CAP_CHOWN"} {
		if !slices.Contains(f.Linux.Capabilities, c) {
			t.Errorf("features: linux.capabilities lacks %s", c)
		}
	}
	for _, o := range []string{"ro", "rbind", "nosuid"} {
		if !slices.Contains(f.MountOptions, o) {
			t.Errorf("features: mountOptions %v lacks %s", f.MountOptions, o)
		}
	}
}

func TestVersion(t *testing.T) {
	rt := newRuntime(t)
	out := rt.Do("--version").OK(t).Stdout
	// runc prints "<name> version X", "commit: ...", "spec: X"; containerd
	// and Podman show it, and tools parse the spec line.
	if !regexp.MustCompile(`(?m)^\S+ version \S+`).MatchString(out) || !regexp.MustCompile(`(?m)^spec: 1\.\d+\.\d+`).MatchString(out) {
		t.Errorf("--version printed %q, want a `NAME version X` line and a `spec: 1.x.y` line", out)
	}
}

func TestConsoleSocket(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithShell(
		// /dev/console is the pty (a Unix98 pty slave has major 136, 0x88).
		`[ -t 0 ] && [ -t 1 ] && echo "tty-ok $(stty size)"; echo "console-major $(stat -c %t /dev/console)"; read line; echo "got:$line"`),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Process.Terminal = true
			s.Process.ConsoleSize = &specs.Box{Height: 37, Width: 111}
		}))
	cs := testutil.NewConsoleSocket(t)
	id := rt.NewID("console")
	rt.Create(id, b.Dir, "--console-socket", cs.Path).OK(t)
	master, err := cs.Receive(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	rt.Start(id).OK(t)
	if _, err := master.WriteString("hello-through-pty\n"); err != nil {
		t.Fatal(err)
	}
	out := readUntilEOF(t, master)
	if code := rt.Wait(id); code != 0 {
		t.Errorf("container exit status %d, want 0; output %q", code, out)
	}
	if !strings.Contains(out, "got:hello-through-pty") {
		t.Errorf("input written to the pty master did not reach the container; output %q", out)
	}
	if !strings.Contains(out, "console-major 88") {
		t.Errorf("/dev/console is not the container's pty; output %q", out)
	}
	if !strings.Contains(out, "tty-ok 37 111") {
		t.Errorf("output %q, want `tty-ok 37 111`: stdio a terminal of process.consoleSize", out)
	}
}

// readUntilEOF reads a pty master until the slave side is closed (EIO).
func readUntilEOF(t *testing.T, f *os.File) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 4096)
	f.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, syscall.EIO) || errors.Is(err, io.EOF) {
			return strings.ReplaceAll(string(out), "\r", "")
		}
		if err != nil {
			t.Fatalf("read pty master: %v (so far %q)", err, out)
		}
	}
}

func TestPreserveFds(t *testing.T) {
	rt := newRuntime(t)
	// No pipeline around ls: the shell would hold the pipe's fds.
	b := testutil.NewBundle(t, testutil.WithShell(`cat <&3; echo; ls /proc/$$/fd; :`))
	extra, err := os.CreateTemp(b.Dir, "preserved")
	if err != nil {
		t.Fatal(err)
	}
	extra.WriteString("preserved-content")
	extra.Seek(0, io.SeekStart)
	id := rt.NewID("preserve")
	cmd := rt.Cmd("run", "--bundle", b.Dir, "--preserve-fds", "1", id)
	cmd.ExtraFiles = []*os.File{extra}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run --preserve-fds 1: %v\n%s", err, out)
	}
	if got := strings.Join(strings.Fields(string(out)), " "); got != "preserved-content 0 1 2 3" {
		t.Errorf("output %q, want the preserved file's content and fds 0 1 2 3", out)
	}
}
