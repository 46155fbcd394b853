package kern

import (
	"testing"

	"github.com/berth-project/berth/internal/testutil"
)

// TestLoad loads the committed objects: the verifier accepts them on this
// kernel (raw tracepoints and cgroup sock_addr programs, CO-RE against
// the kernel's BTF).
func TestLoad(t *testing.T) {
	testutil.RequiresRoot(t)
	o, err := LoadUnpinned()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
}
