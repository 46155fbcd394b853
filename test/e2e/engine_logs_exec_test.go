package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// syncBuffer collects what a process writes, for polling.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// `logs -f` follows a running container and ends when it exits; --tail and
// -t (issue 8, test 4).
func TestEngineLogs(t *testing.T) {
	e := newEngine(t)
	trig := t.TempDir()
	id := e.runD("-v", trig+":/trig", e.image, "sh", "-c",
		"echo first; echo to-stderr >&2; while [ ! -e /trig/go ]; do sleep 0.1; done; echo second")
	ctx, cancel := context.WithTimeout(context.Background(), engineCmdTimeout)
	defer cancel()
	cmd := e.command(ctx, "logs", "-f", id)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, "logs -f to show the first line", func() bool { return strings.Contains(out.String(), "first") })
	select {
	case err := <-done:
		t.Fatalf("logs -f ended while the container runs: %v\n%s", err, out.String())
	default:
	}
	if strings.Contains(out.String(), "second") {
		t.Fatalf("the second line came before the trigger: %q", out.String())
	}
	os.WriteFile(filepath.Join(trig, "go"), nil, 0o644)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("logs -f: %v\n%s", err, errOut.String())
		}
	case <-ctx.Done():
		t.Fatalf("logs -f did not end when the container exited: %q", out.String())
	}
	if got := out.String(); got != "first\nsecond\n" {
		t.Errorf("logs -f stdout: %q, want first, second", got)
	}
	if got := errOut.String(); got != "to-stderr\n" {
		t.Errorf("logs -f stderr: %q, want the container's stderr", got)
	}

	id2 := e.runD(e.image, "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo l$i; done")
	e.ok("wait", id2)
	if out := e.ok("logs", "--tail", "3", id2); out != "l8\nl9\nl10" {
		t.Errorf("logs --tail 3: %q, want l8 l9 l10", out)
	}
	lines := strings.Split(e.ok("logs", "-t", id2), "\n")
	if len(lines) != 10 {
		t.Fatalf("logs -t: %d lines, want 10: %q", len(lines), lines)
	}
	for _, l := range lines {
		ts, rest, _ := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasPrefix(rest, "l") {
			t.Errorf("logs -t line %q: want an RFC 3339 timestamp, a space and the line", l)
		}
	}
}

// ptyRun drives a berth command through a pseudo-terminal.
type ptyRun struct {
	t    *testing.T
	ptmx *os.File
	out  syncBuffer
	done chan error
	cmd  *exec.Cmd
}

func (e *engineT) startPty(ctx context.Context, args ...string) *ptyRun {
	e.t.Helper()
	cmd := e.command(ctx, args...)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		e.t.Fatalf("start %v on a pty: %v", args, err)
	}
	p := &ptyRun{t: e.t, ptmx: ptmx, done: make(chan error, 1), cmd: cmd}
	go io.Copy(&p.out, ptmx)
	go func() { p.done <- cmd.Wait() }()
	e.t.Cleanup(func() { ptmx.Close() })
	return p
}

func (p *ptyRun) send(s string) {
	p.t.Helper()
	if _, err := p.ptmx.Write([]byte(s)); err != nil {
		p.t.Fatalf("write to the pty: %v", err)
	}
}

func (p *ptyRun) expect(what string, re *regexp.Regexp) string {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindString(p.out.String()); m != "" {
			return m
		}
		select {
		case err := <-p.done:
			p.done <- err
			time.Sleep(100 * time.Millisecond)
			if m := re.FindString(p.out.String()); m != "" {
				return m
			}
			p.t.Fatalf("%s: the command ended (%v) first; output %q", what, err, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s; output %q", what, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exitCode waits for the command and returns its exit code.
func (p *ptyRun) exitCode() int {
	p.t.Helper()
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		} else if err != nil {
			p.t.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(engineCmdTimeout):
		p.t.Fatalf("the command did not exit; output: %q", p.out.String())
		return -1
	}
}

// `exec -it` and `run -it` give the container a terminal; exec's exit
// codes come back (issue 8, test 5).
func TestEngineExecAndRunTerminal(t *testing.T) {
	e := newEngine(t)
	id := e.runD(e.image, "sleep", "3600")
	ctx, cancel := context.WithTimeout(context.Background(), 2*engineCmdTimeout)
	defer cancel()

	p := e.startPty(ctx, "exec", "-it", id, "sh")
	p.send("tty\n")
	p.expect("exec -it: tty to print /dev/pts/N", regexp.MustCompile(`/dev/pts/[0-9]+`))
	// The terminal echoes what is typed; the shell prints the result.
	p.send("echo ab$((40+2))cd\n")
	p.expect("the terminal to echo the typed line", regexp.MustCompile(`echo ab\$\(\(40\+2\)\)cd`))
	p.expect("the shell to run it", regexp.MustCompile(`ab42cd`))
	p.send("exit 5\n")
	if code := p.exitCode(); code != 5 {
		t.Errorf("exec -it ... sh; exit 5: berth exited %d, want 5; output %q", code, p.out.String())
	}

	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"true"}, 0},
		{[]string{"no-such-command"}, 127},
		{[]string{"/notexec"}, 126},
	} {
		if r := e.berth(append([]string{"exec", id}, c.args...)...); r.code != c.want {
			t.Errorf("exec %v: exit %d, want %d\n%s", c.args, r.code, c.want, r)
		}
	}
	if out := e.ok("exec", "-u", "app", id, "id", "-u"); out != "1000" {
		t.Errorf("exec -u app id -u: %q, want 1000", out)
	}

	r := e.startPty(ctx, "run", "-it", "--rm", e.image, "sh")
	r.send("tty; echo in$((2+3))side\n")
	r.expect("run -it: tty", regexp.MustCompile(`/dev/pts/[0-9]+`))
	r.expect("run -it: the shell to answer", regexp.MustCompile(`in5side`))
	r.send("exit 4\n")
	if code := r.exitCode(); code != 4 {
		t.Errorf("run -it ... sh; exit 4: berth exited %d, want 4; output %q", code, r.out.String())
	}
}
