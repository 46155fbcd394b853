package monitor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
)

func TestPlainCommand(t *testing.T) {
	f := &os.File{}
	for _, c := range []struct {
		runtime  string
		rtArgs   []string
		stderr   *os.File
		args     []string
		wantSent bool
	}{
		{"/usr/bin/berth-runtime", nil, nil, []string{"start", "ID"}, true},
		{"/usr/bin/runc", nil, nil, []string{"start", "ID"}, false},
		{"/usr/bin/berth-runtime", []string{"--systemd-cgroup"}, nil, []string{"start", "ID"}, false},
		{"/usr/bin/berth-runtime", nil, f, []string{"start", "ID"}, false}, // stderr not ours to read
		{"/usr/bin/berth-runtime", nil, nil, []string{"create", "--bundle", "B", "ID"}, false},
		{"/usr/bin/berth-runtime", nil, nil, []string{"delete", "--force", "ID"}, false},
	} {
		s := &server{cfg: Config{Runtime: c.runtime, RuntimeArgs: c.rtArgs}}
		if got := s.plainCommand([3]*os.File{nil, nil, c.stderr}, c.args); got != c.wantSent {
			t.Errorf("plainCommand(%s %v %v, stderr %v) = %v, want %v", c.runtime, c.rtArgs, c.args, c.stderr != nil, got, c.wantSent)
		}
	}
}

// berthRuntimeOnly is BERTH_RUNTIME when it is berth-runtime.
func berthRuntimeOnly(t *testing.T) string {
	t.Helper()
	rt := firstRuntime(t)
	if filepath.Base(rt) != berthRuntime {
		t.Skip("requires berth-runtime (BERTH_RUNTIME)")
	}
	return rt
}

// TestPlainStartRuns: berth-runtime's start, called without --log (so that
// its C fast path can take it), starts the container; the start leaves no
// runtime log behind it (the create's is removed before each command).
func TestPlainStartRuns(t *testing.T) {
	rt := berthRuntimeOnly(t)
	b := testutil.NewBundle(t, testutil.WithShell(`echo started; sleep 30`))
	cfg := newConfig(t, rt, b)
	if _, err := Create(ctxT(t), monitorBin, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "runtime.log")); err != nil {
		t.Fatalf("create ran without --log: %v", err)
	}
	st, err := StartCreated(ctxT(t), cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateRunning {
		t.Fatalf("state %q after start, want running", st.State)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "runtime.log")); !os.IsNotExist(err) {
		t.Errorf("start of berth-runtime was given --log (runtime.log: %v): its fast path cannot take it", err)
	}
	waitUntil(t, "output", func() bool {
		o, _ := readLog(t, cfg.LogPath)
		return o == "started\n"
	})
	if err := Stopping(ctxT(t), cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	deleteContainer(cfg)
	waitMonitorGone(t, cfg)
}

// TestPlainStartError: a failing start without --log reports the
// runtime's message from its stderr as the log would have held it,
// without berth-runtime's prefix.
func TestPlainStartError(t *testing.T) {
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
