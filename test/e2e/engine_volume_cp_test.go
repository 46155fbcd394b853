package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cp reaches a running container's volume, not the root file system under
// the mount point, both ways; a read-only volume refuses a copy in.
func TestEngineCopyIntoVolume(t *testing.T) {
	e := newEngine(t)
	vol := uniq("cpvol")
	name := uniq("cp")
	e.runD("--name", name, "-v", vol+":/data", "-v", uniq("ro")+":/ro:ro", e.image, "sleep", "3600")
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "f"), []byte("into the volume\n"), 0o644)
	e.ok("cp", filepath.Join(host, "f"), name+":/data/f")
	if out := e.ok("exec", name, "cat", "/data/f"); out != "into the volume" {
		t.Errorf("cp into a volume: the container reads %q", out)
	}
	e.ok("exec", name, "sh", "-c", "echo from the volume > /data/g")
	e.ok("cp", name+":/data/g", filepath.Join(host, "g"))
	if b, _ := os.ReadFile(filepath.Join(host, "g")); string(b) != "from the volume\n" {
		t.Errorf("cp out of a volume: %q", b)
	}
	r := e.berth("cp", filepath.Join(host, "f"), name+":/ro/f")
	if r.code == 0 || !strings.Contains(r.stderr, "read-only") {
		t.Errorf("cp into a read-only volume: %s", r)
	}
}
