//go:build berthvm

package guest

import (
	"os"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestBerthCgroup2Events checks `events` on cgroup v2, where the stats come
// from the unified hierarchy's files and OOM kills from memory.events: the
// one-shot stats of a running container, then an oom event when it
// outgrows memory.max, and the stream's end when it has died.
func TestBerthCgroup2Events(t *testing.T) {
	rt := newBerth(t)
	const limit = 32 << 20
	// tail keeps the "line" it reads from /dev/zero in memory and grows
	// until the OOM killer ends it; it waits for /tmp/go so that the
	// stats are of an idle container and `events` watches before the kill.
	b := testutil.NewBundle(t, testutil.WithWritableRoot(),
		testutil.WithShell(`while [ ! -e /tmp/go ]; do sleep 0.05; done; exec tail /dev/zero`),
		withResources(func(r *specs.LinuxResources) {
			l := int64(limit)
			r.Memory = &specs.LinuxMemory{Limit: &l}
		}))
	id := rt.NewID("events")
	createOK(t, rt, id, b)
	rt.Start(id).OK(t)

	st := rt.Stats(id).Data
	if st.Memory.Usage.Limit != limit {
		// Fatal: without the limit, the hog would eat the VM's memory.
		t.Fatalf("events --stats: memory limit %d, want %d (memory.max)", st.Memory.Usage.Limit, limit)
	}
	if st.Pids.Current < 1 || st.Memory.Usage.Usage == 0 || st.CPU.Usage.Total == 0 {
		t.Errorf("events --stats of a running container: pids.current %d, memory usage %d, cpu total %d; want all > 0",
			st.Pids.Current, st.Memory.Usage.Usage, st.CPU.Usage.Total)
	}

	s := rt.StartEvents(id, "--interval", "200ms")
	s.Until(id, "stats")
	if err := os.WriteFile(b.Path("tmp/go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Until(id, "oom")
	if status := rt.Wait(id); status != 128+int(unix.SIGKILL) {
		t.Errorf("OOM-killed container exited %d, want 137", status)
	}
	if res := s.Wait(); res.ExitCode != 0 {
		t.Errorf("events after the container died: %s", res)
	}
	deleteGone(t, rt, id)
}
