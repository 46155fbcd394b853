package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestEngineImageMount: `--mount type=image` shows another image's files,
// read-only, at the target (or one directory of it with image-subpath); the
// image cannot be removed while a container mounts it; nothing of the
// mount is left after the container goes.
func TestEngineImageMount(t *testing.T) {
	e := newEngine(t)
	vol := e.images.Vol
	e.ok("pull", "-q", vol)
	out := e.ok("run", "--rm", "--mount", "type=image,source="+vol+",target=/img", "--mount", "type=image,source="+vol+",target=/etc2,image-subpath=/etc", e.image, "sh", "-c",
		"ls /img/data/seed && cat /img/index.html | head -c 0 && echo has-index; grep -c app /etc2/group; touch /img/x 2>&1 || echo img-ro; touch /etc2/y 2>&1 || echo sub-ro")
	for _, want := range []string{"/img/data/seed", "has-index", "img-ro", "sub-ro", "Read-only file system"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output %q lacks %q", out, want)
		}
	}

	id := e.ok("create", "--mount", "type=image,source="+vol+",target=/img", e.image, "true")
	if r := e.berth("rmi", vol); r.code == 0 {
		t.Errorf("rmi of an image a container mounts succeeded: %v", r)
	}
	e.ok("rm", id)
	e.ok("rmi", vol)

	for _, tc := range []struct{ mount, want string }{
		{"type=image,source=" + vol + ",target=/img", "not found"}, // removed above: not local
		{"type=image,source=" + e.image + ",target=/img,image-subpath=../x", "climbs with .."},
		{"type=image,source=" + e.image + ",target=/img,readonly=false", "read-only"},
		{"type=image,target=/img", "source=IMAGE"},
	} {
		r := e.berth("create", "--mount", tc.mount, e.image, "true")
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("--mount %s: %v; want a refusal saying %q", tc.mount, r, tc.want)
		}
	}
	// A sub-path the image lacks fails the start, naming it, and leaves
	// nothing mounted.
	r := e.berth("run", "--rm", "--mount", "type=image,source="+e.image+",target=/img,image-subpath=no/such", e.image, "true")
	if r.code == 0 || !strings.Contains(r.stderr, "no/such") {
		t.Errorf("a missing sub-path: %v; want a failure naming it", r)
	}
	if ids := strings.Fields(e.ok("ps", "-aq")); len(ids) != 0 {
		t.Errorf("containers left: %v", ids)
	}
	assertNoMountsUnder(t, e.runroot)
	assertNoMountsUnder(t, e.root)
}

// assertNoMountsUnder fails t if anything is mounted under dir.
func assertNoMountsUnder(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			t.Errorf("still mounted: %s", f[4])
		}
	}
}

// TestCRIImageVolume: a CRI mount with an image (an image volume) shows the
// image read-only in the container, with image_sub_path choosing a
// directory of it.
func TestCRIImageVolume(t *testing.T) {
	c := newCRI(t)
	pod, _ := c.podConfig("imgvol")
	ctr := c.ctrConfig("v", []string{"sh", "-c", "grep -c app /vol/group; touch /vol/x 2>&1 || echo vol-ro; sleep 300"},
		map[string]any{"mounts": []map[string]any{{"container_path": "/vol", "image": map[string]any{"image": c.image}, "image_sub_path": "etc", "readonly": true}}})
	_, ids := c.runPod(pod, "imgvol", ctr)
	waitForOut(t, "the container's output", 30*time.Second, func() (bool, string) {
		out := c.crictlRun("logs", ids[0])
		return strings.Contains(out.stdout+out.stderr, "vol-ro"), out.stdout + out.stderr
	})
}
