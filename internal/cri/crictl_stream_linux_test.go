package cri

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/berth-project/berth/internal/engine"
)

// TestCrictlStreaming drives exec, exec -s and port-forward with crictl,
// as an operator would by hand.
func TestCrictlStreaming(t *testing.T) {
	crictl := findCrictl(t)
	e := newStreamEnv(t)
	pod, id := e.runHTTPD(t)
	cfg := filepath.Join(t.TempDir(), "crictl.yaml")
	if err := os.WriteFile(cfg, []byte("runtime-endpoint: unix://"+e.socket+"\nimage-endpoint: unix://"+e.socket+"\ntimeout: 30\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, crictl, append([]string{"--config", cfg}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		code := 0
		if xe, ok := err.(*exec.ExitError); ok {
			code = xe.ExitCode()
		} else if err != nil {
			t.Fatalf("crictl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), code
	}
	if out, code := run("", "exec", "-s", id, "echo", "sync"); code != 0 || !strings.HasPrefix(out, "sync\n") {
		t.Errorf("crictl exec -s: exit %d, output %q", code, out)
	}
	// crictl reports a command's failure with its own exit status 1.
	if out, code := run("", "exec", "-s", id, "sh", "-c", "echo sync-err >&2; exit 2"); code == 0 || !strings.Contains(out, "exited with 2: sync-err") {
		t.Errorf("crictl exec -s of a failing command: exit %d, output %q", code, out)
	}
	if out, code := run("", "exec", id, "sh", "-c", "echo hi; exit 3"); code == 0 || !strings.Contains(out, "hi\n") || !strings.Contains(out, "exit code 3") {
		t.Errorf("crictl exec: exit %d, output %q", code, out)
	}
	if out, code := run("through crictl\n", "exec", "-i", id, "cat"); code != 0 || out != "through crictl\n" {
		t.Errorf("crictl exec -i cat: exit %d, output %q", code, out)
	}

	// attach: a container reading its stdin; crictl sends its own.
	reader := e.run(t, engine.Config{OpenStdin: true, Cmd: []string{"sh", "-c", `while read l; do echo "got $l"; [ "$l" = bye ] && exit 0; done`}})
	if out, code := run("hello\nbye\n", "attach", "-i", reader); code != 0 || out != "got hello\ngot bye\n" {
		t.Errorf("crictl attach -i: exit %d, output %q", code, out)
	}

	// exec -it: crictl's terminal is a pty of the test's, whose size
	// crictl sends as the first resize.
	if rt := os.Getenv("BERTH_RUNTIME"); rt != "" && filepath.Base(rt) != "runc" {
		ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, crictl, "--config", cfg, "exec", "-it", id, "sh", "-c", `until [ "$(stty size)" = "33 77" ]; do sleep 0.1; done; echo "size $(stty size)"; exit 4`)
		tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 77})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(tty) // EIO once crictl exits
		tty.Close()
		err = cmd.Wait()
		if !strings.Contains(string(out), "size 33 77") {
			t.Errorf("crictl exec -it: %v, output %q", err, out)
		}
	}

	// port-forward: crictl listens on a loopback port of its choosing
	// and says which; the page comes from httpd in the container's
	// network namespace.
	ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
	defer cancel()
	pf := exec.CommandContext(ctx, crictl, "--config", cfg, "port-forward", pod, "0:80")
	stdout, err := pf.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	pf.Stderr = pf.Stdout
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		pf.Process.Kill()
		pf.Wait()
	}()
	br := bufio.NewReader(stdout)
	var local string
	for local == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("crictl port-forward ended: %v (last line %q)", err, line)
		}
		// "Forwarding from 127.0.0.1:PORT -> 80"
		if rest, ok := strings.CutPrefix(line, "Forwarding from 127.0.0.1:"); ok {
			local, _, _ = strings.Cut(rest, " ")
		}
	}
	go io.Copy(io.Discard, br)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + local + "/index.html")
	if err != nil {
		t.Fatalf("GET through crictl port-forward: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hi from berth\n" {
		t.Errorf("GET through crictl port-forward: %q", body)
	}
}
