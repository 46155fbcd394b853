package e2e

import (
	"testing"

	"github.com/berth-project/berth/internal/testutil"
)

// TestExecExitCodes: exec exits with the process's status, and with 255
// when exec itself fails (a missing binary, a bad pid file, no such
// container), as runc does (runc exec.bats), so callers can tell them apart.
func TestExecExitCodes(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("execcodes")
	rt.Run(id, b.Dir, "-d").OK(t)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{id, "false"}, 1},
		{[]string{id, "sh", "-c", "exit 42"}, 42},
		{[]string{id, "berth-no-such-binary"}, 255},
		{[]string{"--pid-file", "/berth-non-existent/dir/pid", id, "true"}, 255},
		{[]string{"berth-e2e-no-such-container", "true"}, 255},
	} {
		if res := rt.Do(append([]string{"exec"}, tc.args...)...); res.ExitCode != tc.want {
			t.Errorf("exec %v: exit %d, want %d: %s", tc.args, res.ExitCode, tc.want, res)
		}
	}
	rt.Delete(id, "--force").OK(t)
}
