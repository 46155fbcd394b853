package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Volumes as a user sees them (issue 8, test 3): a named volume outlives
// its container, an image VOLUME's content is copied up, `rm -v` removes an
// anonymous volume, a :ro bind refuses writes, --tmpfs mounts a tmpfs.
func TestEngineVolumes(t *testing.T) {
	e := newEngine(t)
	vol := uniq("vol")
	e.ok("volume", "create", vol)
	e.ok("run", "--rm", "-v", vol+":/data", e.image, "sh", "-c", "echo kept > /data/f")
	if out := e.ok("run", "--rm", "-v", vol+":/data", e.image, "cat", "/data/f"); out != "kept" {
		t.Errorf("a named volume read by a second container: %q, want kept", out)
	}

	t.Run("image VOLUME copied up", func(t *testing.T) {
		e.ok("pull", e.images.Vol)
		fresh := uniq("fresh")
		if out := e.ok("run", "--rm", "-v", fresh+":/data", e.images.Vol, "cat", "/data/seed"); out != "seeded by the image" {
			t.Errorf("a new named volume on the image's VOLUME /data: %q, want the image's /data/seed", out)
		}
		id := e.runD(e.images.Vol)
		if out := e.ok("exec", id, "cat", "/data/seed"); out != "seeded by the image" {
			t.Errorf("the anonymous volume of VOLUME /data: %q, want the image's /data/seed", out)
		}
		anon := e.inspectF(id, `{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}`)
		if anon == "" {
			t.Fatalf("inspect .Mounts has no volume on /data: %s", e.ok("inspect", "-f", "{{json .Mounts}}", id))
		}
		if !strings.Contains(e.ok("volume", "ls", "-q"), anon) {
			t.Errorf("volume ls does not list the anonymous volume %s", anon)
		}
		e.ok("rm", "-f", "-v", id)
		if strings.Contains(e.ok("volume", "ls", "-q"), anon) {
			t.Errorf("rm -v left the anonymous volume %s", anon)
		}
	})

	t.Run("bind ro", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "f"), []byte("from the host\n"), 0o644)
		r := e.berth("run", "--rm", "-v", dir+":/mnt:ro", e.image, "sh", "-c", "cat /mnt/f; echo x > /mnt/g")
		if r.code == 0 || !strings.Contains(r.stdout, "from the host") {
			t.Errorf("a :ro bind: %s\nwant the file read and the write refused", r)
		}
		if fileExists(filepath.Join(dir, "g")) {
			t.Errorf("a write through a :ro bind reached the host")
		}
		e.ok("run", "--rm", "-v", dir+":/mnt", e.image, "sh", "-c", "echo x > /mnt/g")
		if !fileExists(filepath.Join(dir, "g")) {
			t.Errorf("a write through a rw bind did not reach the host")
		}
	})

	t.Run("tmpfs", func(t *testing.T) {
		out := e.ok("run", "--rm", "--tmpfs", "/scratch", e.image, "sh", "-c", "grep ' /scratch ' /proc/mounts; echo hi > /scratch/x; cat /scratch/x")
		if !strings.Contains(out, "tmpfs /scratch tmpfs") || !strings.HasSuffix(out, "hi") {
			t.Errorf("--tmpfs /scratch: %q, want a tmpfs mount that takes a write", out)
		}
	})
}
