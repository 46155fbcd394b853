package e2e

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// TestRootfsPropagation: linux.rootfsPropagation is the propagation of the
// container's own root mount, as its /proc/self/mountinfo shows it.
func TestRootfsPropagation(t *testing.T) {
	skipIfRunc(t, "runc 1.1.5 applies rootfsPropagation to the old root only (runtime-tools linux_rootfs_propagation fails for it too)")
	rt := newRuntime(t)
	for _, tc := range []struct{ prop, want, not string }{
		{"shared", "shared:", "unbindable"},
		{"rshared", "shared:", "unbindable"},
		{"private", "", "shared:"},
		{"unbindable", "unbindable", "shared:"},
		{"runbindable", "unbindable", "shared:"},
	} {
		t.Run(tc.prop, func(t *testing.T) {
			out := runOut(t, rt, "prop", testutil.WithShell(`awk '$5=="/"' /proc/self/mountinfo`),
				testutil.WithSpec(func(s *specs.Spec) { s.Linux.RootfsPropagation = tc.prop }))
			opt := strings.SplitN(out, " - ", 2)[0]
			if !strings.Contains(opt, tc.want) || strings.Contains(opt, tc.not) {
				t.Errorf("rootfsPropagation %s: the container's / is %q, want %q and not %q", tc.prop, strings.TrimSpace(out), tc.want, tc.not)
			}
		})
	}
}
