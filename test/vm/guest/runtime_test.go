//go:build berthvm

package guest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBerthRuntimeRuns proves the runtime reached the VM and runs there; the
// runtime's own tests in the VM build on berthRuntime the same way.
func TestBerthRuntimeRuns(t *testing.T) {
	runtime := berthRuntime(t)
	out, err := exec.Command(runtime, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v, output:\n%s", runtime, err, out)
	}
	if !strings.Contains(string(out), "version") {
		t.Fatalf("%s --version printed no version:\n%s", runtime, out)
	}
}
