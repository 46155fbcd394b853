package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// TestSpecHardened: `spec --hardened` writes a config with Docker's 14
// capabilities and default seccomp profile, and a container run from it
// has exactly those capabilities and cannot make a user namespace.
func TestSpecHardened(t *testing.T) {
	rt := newRuntime(t)
	skipIfRunc(t, "spec --hardened is berth-runtime's; runc's spec has no such flag")
	dir := t.TempDir()
	rt.Do("spec", "--hardened", "--bundle", dir).OK(t)
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var hardened specs.Spec
	if err := json.Unmarshal(data, &hardened); err != nil {
		t.Fatalf("config.json of spec --hardened: %v", err)
	}
	if hardened.Linux.Seccomp == nil || hardened.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Fatalf("spec --hardened: want a seccomp profile that refuses by default, got %+v", hardened.Linux.Seccomp)
	}
	if !hardened.Process.NoNewPrivileges {
		t.Errorf("spec --hardened: noNewPrivileges is false")
	}
	b := testutil.NewBundle(t, withUnshare(),
		testutil.WithShell(`grep -E '^Cap(Bnd|Eff)' /proc/self/status; unshare -U true; echo unshare=$?`),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Process.Capabilities = hardened.Process.Capabilities
			s.Process.NoNewPrivileges = true
			s.Linux.Seccomp = hardened.Linux.Seccomp
		}))
	res := rt.Run(rt.NewID("hardened"), b.Dir)
	// Docker's default set: chown dac_override fowner fsetid kill setgid
	// setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write
	// setfcap.
	for _, want := range []string{"CapBnd:\t00000000a80425fb", "CapEff:\t00000000a80425fb", "unshare=1"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("container from spec --hardened: want %q in its output: %s", want, res)
		}
	}
}
