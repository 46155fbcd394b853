package cri

import (
	"os"
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// An unnamed profile is the runtime default unless berthd is told to
// follow the CRI's text (unconfined); a named one means the same either
// way.
func TestSeccompOption(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "seccomp.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	localhost := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}
	for _, c := range []struct {
		name            string
		p               *runtimeapi.SecurityProfile
		legacy          string
		emptyUnconfined bool
		want            string
	}{
		{"unset", nil, "", false, ""},
		{"unset, CRI's text", nil, "", true, "seccomp=unconfined"},
		{"legacy runtime/default, CRI's text", nil, "runtime/default", true, ""},
		{"legacy unconfined", nil, "unconfined", false, "seccomp=unconfined"},
		{"RuntimeDefault, CRI's text", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, "", true, ""},
		{"Unconfined", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, "", false, "seccomp=unconfined"},
		{"Localhost", localhost, "", true, "seccomp=" + profile},
	} {
		got, err := seccompOption(c.p, c.legacy, c.emptyUnconfined)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := seccompOption(nil, "localhost/relative", false); err == nil {
		t.Error("a relative localhost profile was taken")
	}
}
