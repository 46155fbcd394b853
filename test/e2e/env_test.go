package e2e

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// TestProcessEnv: as with runc, a name given twice in process.env takes the
// last value and appears once, and an unset or empty HOME comes from the
// user's entry in the container's /etc/passwd (runc's env.bats).
func TestProcessEnv(t *testing.T) {
	rt := newRuntime(t)
	for _, tc := range []struct {
		name string
		env  []string
		uid  uint32
		want string
	}{
		{"HOME given", []string{"HOME=/override"}, 0, "HOME=/override ONE="},
		{"HOME empty", []string{"HOME=/override", "HOME="}, 0, "HOME=/root ONE="},
		{"HOME unset, nobody", nil, 65534, "HOME=/nonexistent ONE="},
		{"last value wins", []string{"ONE=two", "ONE=three", "HOME=/h"}, 0, "HOME=/h ONE=three"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			out := runOut(t, rt, "env", testutil.WithShell(`echo "HOME=$HOME ONE=$ONE"; env | grep -c '^ONE='; true`),
				testutil.WithSpec(func(s *specs.Spec) {
					s.Process.Env = append([]string{"PATH=/bin"}, tc.env...)
					s.Process.User.UID = tc.uid
				}))
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if lines[0] != tc.want {
				t.Errorf("env %q: got %q, want %q", tc.env, lines[0], tc.want)
			}
			if strings.Contains(tc.want, "ONE=three") && (len(lines) < 2 || lines[1] != "1") {
				t.Errorf("env %q: ONE appears %v times, want once", tc.env, lines[1:])
			}
		})
	}
}
