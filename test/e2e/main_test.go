package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
)

func TestMain(m *testing.M) {
	// Containers' inits are reparented to the test process after `create`
	// returns; see testutil/reaper_linux.go for why the tests reap them.
	if os.Geteuid() == 0 {
		if err := testutil.SetChildSubreaper(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// runtimeBin returns the runtime under test from $BERTH_RUNTIME. It is a
// failure, not a skip, to leave it unset: a suite that silently skips
// everything proves nothing.
func runtimeBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("BERTH_RUNTIME")
	if bin == "" {
		t.Fatal("BERTH_RUNTIME is not set: run `make test`, or set BERTH_RUNTIME to a runtime binary (e.g. BERTH_RUNTIME=/usr/sbin/runc)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("BERTH_RUNTIME=%s: %v", bin, err)
	}
	return bin
}

// newRuntime returns a driver for the runtime under test with a fresh state
// root; the test needs root.
func newRuntime(t *testing.T) *testutil.Runtime {
	t.Helper()
	testutil.RequiresRoot(t)
	return testutil.NewRuntime(t, runtimeBin(t))
}

// isRunc reports whether the runtime under test is runc, for the few places
// where runc 1.1.5 deviates from the runtime-spec.
func isRunc(t *testing.T) bool {
	return filepath.Base(runtimeBin(t)) == "runc"
}

// skipIfRunc skips when the runtime under test is runc; why says how runc
// 1.1.5 deviates from the spec. The test still runs against every other
// runtime.
func skipIfRunc(t *testing.T, why string) {
	t.Helper()
	if isRunc(t) {
		t.Skipf("runc 1.1.5 deviation: %s", why)
	}
}

// waitFor polls cond until it holds, failing t after a generous deadline. It
// waits for an event the test caused; it does not measure time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// runOut runs a container in the foreground with the given options and
// returns its stdout, failing t unless it exits 0.
func runOut(t *testing.T, rt *testutil.Runtime, short string, opts ...testutil.BundleOption) string {
	t.Helper()
	b := testutil.NewBundle(t, opts...)
	res := rt.Run(rt.NewID(short), b.Dir)
	if res.ExitCode != 0 {
		t.Fatalf("run: %s", res)
	}
	return res.Stdout
}

// statusField returns the value of a "Name:\tvalue" line of
// /proc/PID/status text.
func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// runtimeWithoutCap returns a driver for the runtime under test that runs
// with capability name (e.g. "sys_resource") dropped from its bounding set,
// through util-linux's setpriv: the runtime then lacks it whatever the host
// grants, so a test of what happens without it runs on any host.
func runtimeWithoutCap(t *testing.T, name string) *testutil.Runtime {
	t.Helper()
	testutil.RequiresRoot(t)
	setpriv := testutil.RequiresBinary(t, "setpriv", "util-linux")
	wrapper := filepath.Join(t.TempDir(), filepath.Base(runtimeBin(t)))
	script := fmt.Sprintf("#!/bin/sh\nexec %s --bounding-set -%s %s \"$@\"\n", setpriv, name, runtimeBin(t))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return testutil.NewRuntime(t, wrapper)
}
