package monitor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
)

// berthRuntimeOnly is BERTH_RUNTIME when it is berth-runtime.
func berthRuntimeOnly(t *testing.T) string {
	t.Helper()
	rt := firstRuntime(t)
	if filepath.Base(rt) != "berth-runtime" {
		t.Skip("requires berth-runtime (BERTH_RUNTIME)")
	}
	return rt
}

// TestStartErrorFromLog: a start that fails (here: berth-runtime refuses a
// container frozen from outside) reports the runtime's message as its
// --log file holds it, without the prefix berth-runtime gives it on stderr.
func TestStartErrorFromLog(t *testing.T) {
	rt := berthRuntimeOnly(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	cfg := newConfig(t, rt, b)
	if _, err := Create(ctxT(t), monitorBin, cfg); err != nil {
		t.Fatal(err)
	}
	file, frozen, thawed := freezerOf(t, cfg.ID)
	if err := os.WriteFile(file, []byte(frozen), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(file, []byte(thawed), 0) })
	_, err := StartCreated(ctxT(t), cfg.StateDir)
	os.WriteFile(file, []byte(thawed), 0)
	if err == nil {
		t.Fatal("start of a frozen created container succeeded")
	}
	msg := strings.TrimPrefix(err.Error(), "start container: ")
	if !strings.HasPrefix(msg, "cannot start a container whose cgroup is frozen") {
		t.Errorf("error %q, want berth-runtime's message without its prefix", err)
	}
	waitMonitorGone(t, cfg)
}

// freezerOf is the freezer file of container id's cgroup (v1 freezer,
// else v2) and the values that freeze and thaw it.
func freezerOf(t *testing.T, id string) (file, frozen, thawed string) {
	t.Helper()
	dirs := testutil.FindCgroups(id)
	for _, d := range dirs {
		if strings.HasPrefix(d, "/sys/fs/cgroup/freezer/") {
			return filepath.Join(d, "freezer.state"), "FROZEN", "THAWED"
		}
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "cgroup.freeze")); err == nil {
			return filepath.Join(d, "cgroup.freeze"), "1", "0"
		}
	}
	t.Skipf("requires a cgroup freezer (v1 freezer hierarchy or cgroup v2; cgroups of the container: %v)", dirs)
	return "", "", ""
}

// TestAttachedSessionGetsExitCode: a session attached before start gets
// the container's exit code even when the monitor exits right after it
// (it waits for its session writers to send it).
func TestAttachedSessionGetsExitCode(t *testing.T) {
	rt := firstRuntime(t)
	for i := 0; i < 5; i++ {
		b := testutil.NewBundle(t, testutil.WithShell(`exit 7`))
		cfg := newConfig(t, rt, b)
		if _, err := Create(ctxT(t), monitorBin, cfg); err != nil {
			t.Fatal(err)
		}
		sess, err := OpenAttach(ctxT(t), cfg.StateDir, AttachOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := StartCreated(ctxT(t), cfg.StateDir); err != nil {
			t.Fatal(err)
		}
		if code, err := sess.Wait(ctxT(t)); err != nil || code != 7 {
			t.Fatalf("run %d: session ended with %d, %v; want exit code 7", i, code, err)
		}
		waitMonitorGone(t, cfg)
	}
}
