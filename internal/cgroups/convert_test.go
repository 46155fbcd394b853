package cgroups

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A device rule's access keeps r, w and m and drops other letters, as
// runc does (its update.bats denies "rwa"); one with none of them is
// refused with the value named.
func TestDeviceRuleAccess(t *testing.T) {
	major, minor := int64(1), int64(11)
	for _, c := range []struct{ access, want, err string }{
		{"", "rwm", ""},
		{"rwa", "rw", ""},
		{"m", "m", ""},
		{"a", "", `"a" names none of r, w and m`},
		{"xyz", "", `"xyz"`},
	} {
		r, err := deviceRule(specs.LinuxDeviceCgroup{Allow: false, Type: "c", Major: &major, Minor: &minor, Access: c.access})
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("access %q: %v, want an error containing %q", c.access, err, c.err)
			}
		case err != nil:
			t.Errorf("access %q: %v", c.access, err)
		case string(r.Permissions) != c.want:
			t.Errorf("access %q: permissions %q, want %q", c.access, r.Permissions, c.want)
		}
	}
}
