package cri

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/testutil"
)

// The pause image's layer holds the binary at /pause, executable, and the
// directories the runtime mounts over; its name follows the binary.
func TestPauseLayer(t *testing.T) {
	bin := []byte("\x7fELF pretend binary")
	layer, err := pauseLayer(bin)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	got := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		if h.Name == "pause" {
			b, _ := io.ReadAll(tr)
			if !bytes.Equal(b, bin) || h.Mode&0o111 == 0 {
				t.Errorf("/pause: mode %o, content %q", h.Mode, b)
			}
		}
	}
	for _, n := range []string{"pause", "dev/", "proc/", "sys/", "etc/", "tmp/"} {
		if got[n] == nil {
			t.Errorf("the pause layer lacks %s (has %v)", n, got)
		}
	}
	a, b := pauseImageName(bin), pauseImageName(append(bin, '!'))
	if a == b || !strings.HasPrefix(a, "localhost/berth/pause:") || a != pauseImageName(bin) {
		t.Errorf("pause image names %q and %q: want one per binary", a, b)
	}
}

// New refuses a sandbox mode it does not know, or one for a handler that
// is not configured, and pins the pause image of an infra handler.
func TestNewSandboxModes(t *testing.T) {
	root := t.TempDir()
	images, err := image.Open(root, registry.New(registry.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer images.Close()
	pause := filepath.Join(t.TempDir(), "berth-monitor")
	if err := os.WriteFile(pause, []byte("pause"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := Options{Images: images, Root: root, Runtimes: []string{"berth-runtime", "runsc"}, PauseBinary: pause}
	for _, tc := range []struct {
		modes map[string]string
		want  string
	}{
		{map[string]string{"runsc": "vm"}, `runtime handler "runsc": sandbox mode "vm"`},
		{map[string]string{"kata": "infra"}, `runtime handler "kata" has a sandbox mode but is not configured`},
	} {
		o := base
		o.SandboxModes = tc.modes
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New with modes %v: %v, want %q", tc.modes, err, tc.want)
		}
	}
	o := base
	o.SandboxModes = map[string]string{"runsc": "infra", "berth-runtime": "pinned"}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if !s.infraMode("runsc") || s.infraMode("berth-runtime") || s.infraMode("") {
		t.Errorf("infra modes = %v", s.sandboxModes)
	}
	if !s.pinned[pauseImageName([]byte("pause"))] {
		t.Errorf("the pause image is not pinned: %v", s.pinned)
	}
	// No pause binary: an infra handler needs a sandbox image instead.
	o.PauseBinary = ""
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "pause binary") {
		t.Errorf("New without a pause binary: %v", err)
	}
	o.SandboxImage = "registry.k8s.io/pause:3.10"
	s, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	if img, args, err := s.infraImage(context.Background()); err != nil || img != o.SandboxImage || args != nil {
		t.Errorf("infraImage with --sandbox-image = %q %q %v", img, args, err)
	}
}

func FuzzParseSandboxMode(f *testing.F) {
	for _, s := range []string{"", "pinned", "infra", "vm", "INFRA", "infra\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseSandboxMode(s)
		if err == nil && m != SandboxModePinned && m != SandboxModeInfra {
			t.Errorf("ParseSandboxMode(%q) = %q", s, m)
		}
		if err != nil && !strings.Contains(err.Error(), "want pinned or infra") {
			t.Errorf("ParseSandboxMode(%q): %v", s, err)
		}
	})
}

// An image stored under the pause image's name that is not berthd's (a
// pull from a registry on localhost could put one there) is replaced
// before any infra container runs it; berthd's own is reused.
func TestPauseImageNotTakenOver(t *testing.T) {
	testutil.RequiresRoot(t) // overlay snapshots
	root := t.TempDir()
	images, err := image.Open(root, registry.New(registry.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer images.Close()
	bin := []byte("the real pause binary")
	pause := filepath.Join(t.TempDir(), "berth-monitor")
	if err := os.WriteFile(pause, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Images: images, Root: root, Runtimes: []string{"runsc"}, PauseBinary: pause, SandboxModes: map[string]string{"runsc": "infra"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	impostor, err := pauseLayer([]byte("#!/bin/sh\necho pwned\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := images.Import(ctx, bytes.NewReader(impostor), image.ImportOptions{Name: s.pauseImage}); err != nil {
		t.Fatal(err)
	}
	want, _ := pauseLayer(bin)
	for i := range 2 {
		name, args, err := s.infraImage(ctx)
		if err != nil || name != s.pauseImage || len(args) != 3 || args[0] != "/pause" {
			t.Fatalf("infraImage = %q %q %v", name, args, err)
		}
		d, err := images.Inspect(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if ids := d.Config.RootFS.DiffIDs; len(ids) != 1 || ids[0] != digest.FromBytes(want) {
			t.Errorf("round %d: the pause image's layers are %v, want the binary's %s", i, ids, digest.FromBytes(want))
		}
	}
}
