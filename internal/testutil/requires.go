package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// RequiresRoot skips t unless the test runs as root: the test needs to create
// namespaces, mounts and cgroups.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("requires root")
	}
}

// RequiresBinary skips t unless the program name is on PATH (or, if name is a
// path, exists), and names the Debian package that provides it.
func RequiresBinary(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("requires %s (Debian package %s)", name, debianPackage)
	}
	return p
}
