package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// imagesPty opens a pseudo-terminal of 120x40 and returns its master and
// slave ends.
func imagesPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}); err != nil {
		t.Fatal(err)
	}
	return m, s
}

// TestImagesPullProgress: `berth pull` writes a line per change of a
// layer's state when its output is not a terminal, draws a bar per layer
// on a terminal, and with -q prints the image digest alone.
func TestImagesPullProgress(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay snapshots")
	}
	berth := imagesBerth(t)
	reg := imagesRegistry(t)
	name := reg + "/berth-test/busybox:1"
	builder := t.TempDir()
	imagesRun(t, berth, builder, "import", imagesRootfs(t), name)
	imagesRun(t, berth, builder, "push", name)
	var inspected []struct {
		Digest   string `json:"digest"`
		Manifest struct {
			Layers []struct {
				Digest string `json:"digest"`
			} `json:"layers"`
		} `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(imagesRun(t, berth, builder, "image", "inspect", name)), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	layer := strings.TrimPrefix(inspected[0].Manifest.Layers[0].Digest, "sha256:")[:12]

	plain := imagesRun(t, berth, t.TempDir(), "pull", name)
	for _, want := range []string{layer + ": waiting\n", layer + ": downloading\n", layer + ": unpacked\n", "Pulled " + name + "\n"} {
		if !strings.Contains(plain, want) {
			t.Errorf("pull to a pipe lacks %q:\n%s", want, plain)
		}
	}

	if quiet := imagesRun(t, berth, t.TempDir(), "pull", "-q", name); quiet != inspected[0].Digest+"\n" {
		t.Errorf("pull -q printed %q, want the digest %s alone", quiet, inspected[0].Digest)
	}

	master, slave := imagesPty(t)
	cmd := exec.Command(berth, "--root", t.TempDir(), "pull", name)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = slave, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var screen bytes.Buffer
	io.Copy(&screen, master) // ends with EIO once berth exits and closes the terminal
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pull on a terminal: %v\n%s", err, stderr.String())
	}
	out := screen.String()
	if !strings.Contains(out, layer+" unpacked") || !strings.Contains(out, "[") || !strings.Contains(out, "=]") || !strings.Contains(out, "MiB / ") {
		t.Errorf("pull on a terminal drew no bar for layer %s:\n%q", layer, out)
	}
	if strings.Contains(out, layer+": downloading") {
		t.Errorf("pull on a terminal wrote plain lines:\n%q", out)
	}
}
