package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestStatsWithoutRuntimeEvents: a runtime without an `events` command
// (crun has none) still gives stats, read from the cgroup of the
// container's init: its processes, memory with its limit, CPU time. The
// stand-in runtime is the real one behind a wrapper that answers `events`
// as crun does (crun itself refuses this hybrid host; the VM test runs
// the real crun under berthd).
func TestStatsWithoutRuntimeEvents(t *testing.T) {
	e := testEngine(t)
	real := e.opts.Runtimes["default"]
	wrapper := filepath.Join(t.TempDir(), "crun-like")
	script := fmt.Sprintf("#!/bin/sh\nfor a; do [ \"$a\" = events ] && { echo 'unknown command events' >&2; exit 1; }; done\nexec %s \"$@\"\n", real)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e.opts.Runtimes["default"] = wrapper
	ctx := context.Background()
	c, err := e.Create(ctx, CreateOptions{
		Config:     Config{Image: testImage, Cmd: []string{"sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo ready; sleep 600 & sleep 600"}},
		HostConfig: HostConfig{NetworkMode: "none", Resources: Resources{Memory: 96 << 20}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	waitLog(t, e, c.ID, "ready")
	st, err := e.Stats(ctx, c.ID)
	if err != nil {
		t.Fatalf("stats through a runtime without events: %v", err)
	}
	if st.Pids < 2 || st.MemUsage == 0 || st.CPUNanos == 0 || st.MemLimit != 96<<20 {
		t.Errorf("stats: pids %d (want >= 2: the shell or its last sleep, and the other sleep), memory %d of limit %d (want > 0 of %d), CPU %d ns (want > 0)",
			st.Pids, st.MemUsage, st.MemLimit, 96<<20, st.CPUNanos)
	}
}
