package monitor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeEvents writes a memory.events file with the given counters.
func writeEvents(t *testing.T, path string, max, oom, kills int) {
	t.Helper()
	body := fmt.Sprintf("low 0\nhigh 0\nmax %d\noom %d\noom_kill %d\noom_group_kill 0\n", max, oom, kills)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOOMWatch: a kill the watch read while the cgroup's memory.events was
// there counts after the file is gone (systemd removed the scope); with
// the kill not seen in time, the parent's counters decide for an init
// killed by SIGKILL in a container that was at its limit, and only then.
func TestOOMWatch(t *testing.T) {
	dir := t.TempDir()
	events, parent := filepath.Join(dir, "memory.events"), filepath.Join(dir, "parent.events")
	newWatch := func() (*server, *oomWatch) {
		writeEvents(t, events, 0, 0, 0)
		writeEvents(t, parent, 5, 2, 2)
		s := &server{cfg: Config{OOMFiles: []string{events}, OOMParentFiles: []string{parent}}}
		w := s.watchOOM()
		if w.f == nil {
			t.Fatal("no inotify watch on an existing file")
		}
		return s, w
	}
	// waitSeen waits until the watch has read a change (bounded by go
	// test's timeout, not by a guess).
	waitSeen := func(w *oomWatch, cond func(c oomCounts) bool) {
		for {
			w.mu.Lock()
			c := w.seen
			w.mu.Unlock()
			if cond(c) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	_, w := newWatch()
	writeEvents(t, events, 3, 1, 1)
	waitSeen(w, func(c oomCounts) bool { return c.kills == 1 })
	os.Remove(events)
	if !w.stop(137) {
		t.Errorf("a kill seen before the file went: not OOM-killed")
	}

	for _, tc := range []struct {
		name        string
		code        int
		parentKills int
		pressure    bool
		want        bool
	}{
		{"killed, parent counted a kill", 137, 3, true, true},
		{"exited 0", 0, 3, true, false},
		{"no kill in the parent", 137, 2, true, false},
		{"never at its limit", 137, 3, false, false},
	} {
		_, w := newWatch()
		if tc.pressure {
			writeEvents(t, events, 4, 0, 0)
			waitSeen(w, func(c oomCounts) bool { return c.pressure == 4 })
		}
		os.Remove(events)
		writeEvents(t, parent, 9, 3, tc.parentKills)
		if got := w.stop(tc.code); got != tc.want {
			t.Errorf("%s: OOM-killed %v, want %v", tc.name, got, tc.want)
		}
	}

	// The cgroup still there: its own counter decides, not the parent's.
	_, w = newWatch()
	writeEvents(t, parent, 9, 3, 3)
	if w.stop(137) {
		t.Errorf("a sibling's kill (the parent's counter) taken for the container's own while its file is there")
	}
	// No files to watch: never OOM-killed.
	if (&server{}).watchOOM().stop(137) {
		t.Errorf("without files: OOM-killed")
	}
}
