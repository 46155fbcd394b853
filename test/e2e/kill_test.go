package e2e

import (
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
)

// TestKillSignalZero: `kill ID 0` checks that the container runs, as
// kill(2) does: it succeeds while it runs, fails with "container not
// running" once it stopped, and with --all still succeeds (runc kill.bats).
func TestKillSignalZero(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("kill0")
	rt.Run(id, b.Dir, "-d").OK(t)
	rt.Kill(id, "0").OK(t)
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
	res := rt.Kill(id, "0")
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "container not running") {
		t.Errorf("kill 0 of a stopped container: want a failure saying \"container not running\": %s", res)
	}
	rt.Kill(id, "0", "--all").OK(t)
	rt.Delete(id).OK(t)
}
