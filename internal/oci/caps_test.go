package oci

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseCapability(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"CAP_KILL", true}, {"cap_sys_admin", true}, {"CAP_CHECKPOINT_RESTORE", true},
		{"KILL", false}, {"CAP_", false}, {"", false}, {"CAP_TEST", false}, {"CAP_KILL ", false},
	} {
		if _, ok := ParseCapability(tc.name); ok != tc.ok {
			t.Errorf("ParseCapability(%q) ok = %v, want %v", tc.name, ok, tc.ok)
		}
	}
}

func TestValidateCapabilitiesNamesTheField(t *testing.T) {
	err := validateCapabilities(&specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL", "CAP_NOPE"}}, "process")
	if err == nil || !strings.Contains(err.Error(), `process.capabilities.ambient[1]: unknown capability "CAP_NOPE"`) {
		t.Errorf("got %v, want an error naming process.capabilities.ambient[1] and CAP_NOPE", err)
	}
}

func FuzzParseCapability(f *testing.F) {
	for _, s := range []string{"CAP_KILL", "cap_net_raw", "CAP_", "CAP_CAP_KILL", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := ParseCapability(s)
		if !ok {
			return
		}
		if !strings.EqualFold("CAP_"+c.String(), s) {
			t.Errorf("ParseCapability(%q) = %v", s, c)
		}
	})
}
