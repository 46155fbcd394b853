package cri

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// findCrictl looks for crictl on PATH and in $HOME/go/bin (where `go
// install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0` puts it). Absent, the
// test is skipped, except in CI, where it fails.
func findCrictl(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("crictl"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "crictl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("crictl not found on PATH or in $HOME/go/bin: go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0")
	}
	t.Skip("requires crictl: go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0")
	return ""
}

func TestCrictl(t *testing.T) {
	crictl := findCrictl(t)
	e := newTestEnv(t, "/usr/lib/cni")
	id, _ := e.pushImage(t, "cri/crictl:v1", "pulled by crictl")
	name := e.regHost + "/cri/crictl:v1"
	cfg := filepath.Join(t.TempDir(), "crictl.yaml")
	if err := os.WriteFile(cfg, []byte("runtime-endpoint: unix://"+e.socket+"\nimage-endpoint: unix://"+e.socket+"\ntimeout: 30\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, crictl, append([]string{"--config", cfg}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("crictl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("version"); !strings.Contains(out, "RuntimeName:  berth") || !strings.Contains(out, "RuntimeApiVersion:  v1") {
		t.Errorf("crictl version:\n%s", out)
	}
	if out := run("info"); !strings.Contains(out, `"NetworkReady"`) {
		t.Errorf("crictl info:\n%s", out)
	}
	if out := run("pull", name); !strings.Contains(out, id.String()) {
		t.Errorf("crictl pull:\n%s", out)
	}
	var list struct {
		Images []struct {
			ID       string   `json:"id"`
			RepoTags []string `json:"repoTags"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(run("images", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Images) != 1 || list.Images[0].ID != id.String() || len(list.Images[0].RepoTags) != 1 || list.Images[0].RepoTags[0] != name {
		t.Errorf("crictl images: %+v", list.Images)
	}
	if out := run("inspecti", name); !strings.Contains(out, id.String()) {
		t.Errorf("crictl inspecti:\n%s", out)
	}
	if out := run("imagefsinfo"); !strings.Contains(out, "usedBytes") {
		t.Errorf("crictl imagefsinfo:\n%s", out)
	}
	run("rmi", name)
	if out := run("images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("crictl images after rmi:\n%s", out)
	}
}
