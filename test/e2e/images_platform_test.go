package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// imagesPushIndex puts an OCI index of the given platform manifests (tags
// of repo on reg, as "os/arch" -> tag) to reg as repo:tag, as `docker
// buildx --platform` would publish a multi-platform image.
func imagesPushIndex(t *testing.T, reg, repo, tag string, platforms map[string]string) {
	t.Helper()
	type platform struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	}
	type entry struct {
		MediaType string   `json:"mediaType"`
		Digest    string   `json:"digest"`
		Size      int64    `json:"size"`
		Platform  platform `json:"platform"`
	}
	idx := struct {
		SchemaVersion int     `json:"schemaVersion"`
		MediaType     string  `json:"mediaType"`
		Manifests     []entry `json:"manifests"`
	}{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json"}
	for p, ptag := range platforms {
		req, _ := http.NewRequest(http.MethodHead, fmt.Sprintf("http://%s/v2/%s/manifests/%s", reg, repo, ptag), nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("HEAD manifest %s: %v %v", ptag, err, resp)
		}
		resp.Body.Close()
		size, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
		goos, arch, _ := strings.Cut(p, "/")
		idx.Manifests = append(idx.Manifests, entry{MediaType: resp.Header.Get("Content-Type"),
			Digest: resp.Header.Get("Docker-Content-Digest"), Size: size, Platform: platform{goos, arch}})
	}
	b, _ := json.Marshal(idx)
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/v2/%s/manifests/%s", reg, repo, tag), bytes.NewReader(b))
	req.Header.Set("Content-Type", idx.MediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT index: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestImagesPullPlatformFromIndex publishes a linux/amd64 and a linux/arm64
// image under one index on Debian's docker-registry: `berth pull
// --platform linux/arm64` stores the arm64 image, no flag the amd64 one on
// an amd64 host, and a platform the index lacks fails naming what it has.
func TestImagesPullPlatformFromIndex(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay snapshots")
	}
	berth := imagesBerth(t)
	reg := imagesRegistry(t)
	builder := t.TempDir()
	rootfs := imagesRootfs(t)
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		name := reg + "/berth-test/multi:" + strings.ReplaceAll(p, "/", "-")
		imagesRun(t, berth, builder, "import", "--platform", p, rootfs, name)
		imagesRun(t, berth, builder, "push", name)
	}
	imagesPushIndex(t, reg, "berth-test/multi", "latest", map[string]string{"linux/amd64": "linux-amd64", "linux/arm64": "linux-arm64"})
	name := reg + "/berth-test/multi:latest"

	type inspected struct {
		Platform string `json:"platform"`
	}
	pullAndInspect := func(args ...string) inspected {
		t.Helper()
		root := t.TempDir()
		imagesRun(t, berth, root, append(append([]string{"pull"}, args...), name)...)
		var got []inspected
		if err := json.Unmarshal([]byte(imagesRun(t, berth, root, "image", "inspect", name)), &got); err != nil || len(got) != 1 {
			t.Fatalf("inspect: %v %+v", err, got)
		}
		return got[0]
	}
	if got := pullAndInspect("--platform", "linux/arm64"); got.Platform != "linux/arm64" {
		t.Errorf("pull --platform linux/arm64 stored a %s image", got.Platform)
	}
	if hostArch := runtime.GOARCH; hostArch == "amd64" || hostArch == "arm64" {
		if got := pullAndInspect(); got.Platform != "linux/"+hostArch {
			t.Errorf("pull without --platform on a linux/%s host stored a %s image", hostArch, got.Platform)
		}
	}
	root := t.TempDir()
	out, err := imagesTry(berth, root, "pull", "--platform", "linux/s390x", name)
	if err == nil || !strings.Contains(out, "no image for platform linux/s390x") ||
		!strings.Contains(out, "linux/amd64") || !strings.Contains(out, "linux/arm64") {
		t.Errorf("pull of a platform the index lacks: %v\n%s", err, out)
	}
	if list := imagesList(t, berth, root); len(list) != 0 {
		t.Errorf("images after the failed pull: %+v", list)
	}
	if left := imagesStoreFiles(root); len(left) != 0 {
		t.Errorf("the failed pull left %v", left)
	}
}
