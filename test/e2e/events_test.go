package e2e

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// `events` is what containerd's go-runc and Podman call for a container's
// resource usage and OOM kills: runc's JSON, one event a line.

// statsKeys are the keys of runc's stats data that are always printed.
var statsKeys = []string{"blkio", "cpu", "cpuset", "hugetlb", "intel_rdt", "memory", "network_interfaces", "pids"}

// sortedKeys returns the keys of a decoded JSON object, sorted; none for
// anything else.
func sortedKeys(m any) []string {
	mm, _ := m.(map[string]any)
	var keys []string
	for k := range mm {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestEventsStats: the one-shot stats of a running container come from its
// own cgroup: its process count, its memory and CPU use, its limits.
func TestEventsStats(t *testing.T) {
	rt := newRuntime(t)
	const memLimit, pidsLimit = 64 << 20, 100
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"),
		withResources(func(r *specs.LinuxResources) {
			r.Memory = &specs.LinuxMemory{Limit: ptrTo(int64(memLimit))}
			r.Pids = &specs.LinuxPids{Limit: ptrTo(int64(pidsLimit))}
		}))
	id := rt.NewID("evstats")
	rt.Run(id, b.Dir, "-d").OK(t)
	ev := rt.Stats(id)
	s := ev.Data
	if s.Pids.Current < 1 || s.Pids.Limit != pidsLimit {
		t.Errorf("pids = %+v, want current >= 1 (the sleep) and limit %d", s.Pids, pidsLimit)
	}
	if s.Memory.Usage.Usage == 0 || s.Memory.Usage.Limit != memLimit {
		t.Errorf("memory.usage = %+v, want usage > 0 and limit %d", s.Memory.Usage, memLimit)
	}
	if s.CPU.Usage.Total == 0 {
		t.Errorf("cpu.usage.total = 0 for a container that has exec'd its process: %s", ev.Line)
	}
	if got := sortedKeys(ev.Raw["data"]); !reflect.DeepEqual(got, statsKeys) {
		t.Errorf("stats data keys = %q, want runc's %q", got, statsKeys)
	}
	// A paused container still has stats; a manager asks for them.
	rt.Do("pause", id).OK(t)
	rt.Stats(id)
	rt.Do("resume", id).OK(t)
	rt.Delete(id, "--force").OK(t)
}

// TestDiffEventsStatsShape: for the same bundle, berth-runtime prints the
// same keys as runc, down to memory.stat's entries in memory.raw.
func TestDiffEventsStatsShape(t *testing.T) {
	rc, ru := bothRuntimes(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	shape := func(rt *testutil.Runtime) map[string][]string {
		id := rt.NewID("diffevents")
		rt.Run(id, b.Dir, "-d").OK(t)
		ev := rt.Stats(id)
		data, _ := ev.Raw["data"].(map[string]any)
		mem, _ := data["memory"].(map[string]any)
		cpu, _ := data["cpu"].(map[string]any)
		rt.Delete(id, "--force").OK(t)
		return map[string][]string{
			"event": sortedKeys(ev.Raw), "data": sortedKeys(data), "cpu": sortedKeys(cpu),
			"cpuset": sortedKeys(data["cpuset"]), "memory.raw": sortedKeys(mem["raw"]),
		}
	}
	want, got := shape(rc), shape(ru)
	for _, k := range []string{"event", "data", "cpu", "cpuset", "memory.raw"} {
		if !reflect.DeepEqual(want[k], got[k]) {
			t.Errorf("events --stats: keys of %s differ:\nrunc:       %q\nunder test: %q", k, want[k], got[k])
		}
	}
}

// endStream waits for the events stream of a container that has exited
// to end, successfully.
func endStream(t *testing.T, rt *testutil.Runtime, s *testutil.EventStream, id string) testutil.Result {
	t.Helper()
	if isRunc(t) {
		// runc 1.1.5 on cgroup v1 ends the stream when the memory
		// cgroup goes, at delete; berth-runtime when the init exits.
		rt.Delete(id).OK(t)
	}
	res := s.Wait()
	if res.ExitCode != 0 {
		t.Errorf("events after the container exited: %s", res)
	}
	return res
}

// TestEventsOOM: a container that outgrows its memory limit is reported by
// an oom event, and the stream ends when the container has exited.
func TestEventsOOM(t *testing.T) {
	rt := newRuntime(t)
	const limit = 16 << 20
	// tail keeps the "line" it reads from /dev/zero in memory and grows
	// until the OOM killer ends it; it waits for /tmp/go so that `events`
	// watches before the kill.
	b := testutil.NewBundle(t, testutil.WithWritableRoot(),
		testutil.WithShell(`while [ ! -e /tmp/go ]; do sleep 0.05; done; exec tail /dev/zero`),
		withResources(func(r *specs.LinuxResources) {
			r.Memory = &specs.LinuxMemory{Limit: ptrTo(int64(limit))}
		}))
	id := rt.NewID("evoom")
	rt.Run(id, b.Dir, "-d").OK(t)
	if got := rt.Stats(id).Data.Memory.Usage.Limit; got != limit {
		// Fatal: without the limit, the hog would eat the host's memory.
		t.Fatalf("memory limit in the stats = %d, want %d", got, limit)
	}
	s := rt.StartEvents(id, "--interval", "200ms")
	// A first stats event: the stream is up, watching for OOM kills.
	s.Until(id, "stats")
	if err := os.WriteFile(b.Path("tmp/go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Until(id, "oom")
	if code := rt.Wait(id); code != 137 {
		t.Errorf("exit status of the OOM-killed container = %d, want 137", code)
	}
	endStream(t, rt, s, id)
}

// TestEventsStreamEndsWithContainer: a container killed by a signal ends
// the stream without an oom event.
func TestEventsStreamEndsWithContainer(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("evend")
	rt.Run(id, b.Dir, "-d").OK(t)
	s := rt.StartEvents(id, "--interval", "200ms")
	s.Until(id, "stats")
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
	res := endStream(t, rt, s, id)
	for _, line := range strings.Split(res.Stdout, "\n") {
		if line != "" && testutil.ParseEvent(t, line).Type != "stats" {
			t.Errorf("after a kill by SIGKILL, events printed %s, want stats events only", line)
		}
	}
}

// TestEventsErrors: `events` on a container that does not exist or has
// stopped fails and says why.
func TestEventsErrors(t *testing.T) {
	rt := newRuntime(t)
	missing := rt.NewID("evmissing")
	for _, args := range [][]string{{"--stats"}, {}} {
		res := rt.Do(append(append([]string{"events"}, args...), missing)...).Fails(t)
		if !strings.Contains(res.Stderr, "does not exist") {
			t.Errorf("events %q of a missing container: want \"does not exist\": %s", args, res)
		}
		// runc 1.1.5 says only "container does not exist".
		if !isRunc(t) && !strings.Contains(res.Stderr, missing) {
			t.Errorf("events %q of a missing container: the error does not name %s: %s", args, missing, res)
		}
	}

	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	id := rt.NewID("evstopped")
	rt.Run(id, b.Dir, "-d").OK(t)
	rt.Wait(id)
	for _, args := range [][]string{{"--stats"}, {}} {
		res := rt.Do(append(append([]string{"events"}, args...), id)...).Fails(t)
		if !strings.Contains(res.Stderr, "not running") || !strings.Contains(res.Stderr, id) {
			t.Errorf("events %q of a stopped container: want an error naming %s and \"not running\": %s", args, id, res)
		}
	}
	rt.Delete(id).OK(t)
}
