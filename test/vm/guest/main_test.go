//go:build berthvm

package guest

import (
	"fmt"
	"os"
	"testing"
)

// helperEnv names the environment variable that makes the test binary, run
// again by a test, act as the helper process it names instead.
const helperEnv = "BERTH_GUEST_HELPER"

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(runHelper(name))
	}
	if os.Getenv("BERTH_VM_GUEST") != "1" {
		fmt.Fprintln(os.Stderr, "these tests change the root cgroup and run only inside the test VM: run go test ./test/vm")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// berthRuntime returns the path of berth-runtime in the VM, skipping the test
// when the host test was given none.
func berthRuntime(t *testing.T) string {
	t.Helper()
	path := os.Getenv("BERTH_RUNTIME")
	if path == "" {
		t.Skip("needs berth-runtime in the VM: set BERTH_RUNTIME to a built berth-runtime when running go test ./test/vm")
	}
	return path
}
