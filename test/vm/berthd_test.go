package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// berthdFiles returns what TestSystemdVM copies into the VM for the guest
// test TestSystemdBerthd (berthd --cgroup-driver systemd driven by
// crictl), as VM path → host path, all in /berth/bin. berthd, berth and
// berth-monitor are those beside runtime (make build puts them there),
// else built here; crictl is the one .ci/run installs. Without crictl the
// guest test is left out (a failure under CI=true).
func berthdFiles(t *testing.T, runtime string) map[string]string {
	t.Helper()
	crictl, err := exec.LookPath("crictl")
	if err != nil {
		home, _ := os.UserHomeDir()
		crictl = filepath.Join(home, "go", "bin", "crictl")
		if _, err := os.Stat(crictl); err != nil {
			msg := "crictl not found (go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0; .ci/run does): berthd's systemd test is left out"
			if os.Getenv("CI") == "true" {
				t.Error(msg)
			} else {
				t.Log(msg)
			}
			return nil
		}
	}
	files := map[string]string{"/berth/bin/crictl": crictl}
	var build []string
	for _, name := range []string{"berthd", "berth", "berth-monitor", "berth-secmon"} {
		p := filepath.Join(filepath.Dir(runtime), name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			files["/berth/bin/"+name] = p
			continue
		}
		build = append(build, "github.com/berth-project/berth/cmd/"+name)
	}
	if len(build) > 0 {
		dir := t.TempDir()
		cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, build...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %v for the VM: %v\n%s", build, err, out)
		}
		for _, pkg := range build {
			name := filepath.Base(pkg)
			files["/berth/bin/"+name] = filepath.Join(dir, name)
		}
	}
	return files
}
