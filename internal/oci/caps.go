package oci

import (
	"fmt"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ParseCapability maps a capability name ("CAP_KILL"; case does not matter,
// as with runc) to its number. ok is false for a name that no Linux
// capability has; a known name may still be beyond what the running kernel
// has (capability.LastCap), which the runtime warns about at create.
func ParseCapability(name string) (c capability.Cap, ok bool) {
	rest, found := strings.CutPrefix(strings.ToUpper(name), "CAP_")
	if !found {
		return 0, false
	}
	rest = strings.ToLower(rest)
	for _, k := range capability.ListKnown() {
		if k.String() == rest {
			return k, true
		}
	}
	return 0, false
}

// validateCapabilities refuses a name that is no capability at all
// (runtime-tools process_capabilities_fail): a typo must not turn into a
// container that silently lacks what it asked for. Names the kernel or the
// runtime cannot grant are the runtime's warning, not an error here.
func validateCapabilities(c *specs.LinuxCapabilities, field string) error {
	if c == nil {
		return nil
	}
	sets := []struct {
		name  string
		names []string
	}{{"bounding", c.Bounding}, {"effective", c.Effective}, {"permitted", c.Permitted}, {"inheritable", c.Inheritable}, {"ambient", c.Ambient}}
	for _, s := range sets {
		for i, n := range s.names {
			if _, ok := ParseCapability(n); !ok {
				return fmt.Errorf("%s.capabilities.%s[%d]: unknown capability %q", field, s.name, i, n)
			}
		}
	}
	return nil
}
