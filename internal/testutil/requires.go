package testutil

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
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
		if os.Getenv("CI") == "true" && ciInstalls(debianPackage) {
			// CI installs it: a skip would hide a broken machine.
			t.Fatalf("requires %s (Debian package %s), which .ci/apt-packages lists and .ci/run installs", name, debianPackage)
		}
		t.Skipf("requires %s (Debian package %s)", name, debianPackage)
	}
	return p
}

// ciInstalls says whether .ci/apt-packages lists the Debian package.
func ciInstalls(pkg string) bool {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return false
	}
	f, err := os.Open(filepath.Join(filepath.Dir(file), "..", "..", ".ci", "apt-packages"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line, _, _ := strings.Cut(sc.Text(), "#"); strings.TrimSpace(line) == pkg {
			return true
		}
	}
	return false
}
