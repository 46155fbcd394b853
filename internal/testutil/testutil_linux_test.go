package testutil

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestDefaultSpecIsRuncs(t *testing.T) {
	s := DefaultSpec()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"readonly":true`, `"type":"cgroup"`, `"/proc/kcore"`, `"/proc/sys"`, `"noNewPrivileges":true`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("DefaultSpec JSON lacks %s", want)
		}
	}
	s.Process.Args[0] = "changed"
	if DefaultSpec().Process.Args[0] != "sh" {
		t.Error("DefaultSpec values share memory between calls")
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:   "/a b",
		`/plain`:    "/plain",
		`/tab\011`:  "/tab\t",
		`/short\04`: `/short\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzUnescapeMountinfo(f *testing.F) {
	for _, s := range []string{`/a\040b`, `\`, `\\\`, `/x\0`, `\777`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := unescapeMountinfo(s); len(got) > len(s) {
			t.Errorf("unescapeMountinfo(%q) = %q grew", s, got)
		}
	})
}

func TestConsoleSocketReceivesFd(t *testing.T) {
	cs := NewConsoleSocket(t)
	f, err := os.CreateTemp(t.TempDir(), "berth-pty-stand-in")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("through-scm-rights")
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: cs.Path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, _, err := conn.WriteMsgUnix([]byte("/dev/ptmx"), unix.UnixRights(int(f.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	got, err := cs.Receive(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	data, _ := os.ReadFile(filepath.Join("/proc/self/fd", strconv.Itoa(int(got.Fd()))))
	if string(data) != "through-scm-rights" || got.Name() != "/dev/ptmx" {
		t.Errorf("received fd reads %q, name %q", data, got.Name())
	}
}

func TestLeakedTracesFindsStateDir(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "berth-e2e-leak"), 0o755)
	traces := LeakedTraces(Leaks{Root: root, ID: "berth-e2e-leak", Pids: []int{os.Getpid()}})
	if len(traces) != 2 {
		t.Errorf("LeakedTraces = %q, want the state directory and the live process", traces)
	}
}

func TestFreePortOutsideEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t)
		if lo > 11000 && (p < 10000 || p >= lo) {
			t.Errorf("FreePort = %d, want a port in 10000-%d, below the ephemeral range", p, lo-1)
		}
		if seen[p] {
			t.Errorf("FreePort handed out %d twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Errorf("port %d from FreePort: %v", p, err)
			continue
		}
		l.Close()
	}
}
