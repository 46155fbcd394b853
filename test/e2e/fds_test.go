package e2e

import (
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// TestRunWithInheritedFds: a caller may leave any number of fds open in the
// runtime (containerd's shim, kubelet's exec plugins and berthd all do). The
// runtime re-executes itself through /proc/self/fd/N; whatever fds it holds,
// N must still name its binary when the fork has shuffled the fds it passes
// on, or run fails with "permission denied" (berthd once hit it: Go's fork
// moved its error pipe onto N).
func TestRunWithInheritedFds(t *testing.T) {
	rt := newRuntime(t)
	// Bind mounts and a console-less detached-style run give the runtime
	// several fds of its own to pass to its init, as berthd's containers do.
	src := t.TempDir()
	b := testutil.NewBundle(t, testutil.WithShell("exit 0"), testutil.WithMounts(
		specs.Mount{Destination: "/mnt/a", Type: "bind", Source: src, Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/mnt/b", Type: "bind", Source: src, Options: []string{"rbind", "rw"}},
		specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: "/etc/hosts", Options: []string{"rbind", "ro"}},
	))
	for n := 0; n <= 24; n++ {
		var extra []*os.File
		for range n {
			f, err := os.Open("/dev/null")
			if err != nil {
				t.Fatal(err)
			}
			extra = append(extra, f)
		}
		id := rt.NewID("fds")
		cmd := rt.Cmd("run", "--bundle", b.Dir, id)
		cmd.ExtraFiles = extra
		out, err := cmd.CombinedOutput()
		for _, f := range extra {
			f.Close()
		}
		if err != nil {
			t.Errorf("run with %d inherited fds: %v\n%s", n, err, out)
			if strings.Contains(string(out), "permission denied") {
				t.Errorf("the re-exec through /proc/self/fd named another file than the runtime's binary")
			}
		}
	}
}
