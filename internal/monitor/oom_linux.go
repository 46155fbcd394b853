package monitor

import (
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// OOM detection. The monitor compares the cgroup's oom_kill counter at the
// exit with the one at the create. With the systemd cgroup driver that is
// not enough: when the scope's last process dies (an OOM-killed init),
// systemd stops the scope and removes its cgroup, files and all, often
// before the monitor has reaped the init. So, while the container runs,
// the monitor also follows the files (inotify: the kernel notifies each
// change of memory.events, rate-limited to one per 10 ms), keeping the
// highest counts read, as conmon does. That alone still races with
// systemd (the kill's own notification comes up to 10 ms late), so when
// the files are gone at the exit, the kill is also taken from the
// parent's counters (OOMParentFiles: memory.events counts the descendants'
// events too), for an init that died of SIGKILL in a container seen at
// its memory limit: a sibling's OOM kill at that moment is the one case
// this takes for the container's own.

// oomCounts are the counters of the OOM files that matter here.
type oomCounts struct {
	kills    int64 // oom_kill: processes killed
	pressure int64 // max + oom: the limit was hit, the OOM killer ran
	ok       bool  // every file was read
}

// readOOM sums the counters of files; ok is false when one could not be
// read (a removed cgroup).
func readOOM(files []string) oomCounts {
	c := oomCounts{ok: true}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			c.ok = false
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			name, v, _ := strings.Cut(line, " ")
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				continue
			}
			switch name {
			case "oom_kill":
				c.kills += n
			case "max", "oom":
				c.pressure += n
			}
		}
	}
	return c
}

// oomWatch follows one run's OOM files from its create to its exit.
type oomWatch struct {
	files, parents []string
	base, parent   oomCounts // at the create

	mu   sync.Mutex
	seen oomCounts // the highest counts read while it ran
	f    *os.File  // the inotify instance; nil when there is nothing to watch
	done sync.WaitGroup
}

// watchOOM reads the counters at the create and starts following them.
func (s *server) watchOOM() *oomWatch {
	w := &oomWatch{files: s.cfg.OOMFiles, parents: s.cfg.OOMParentFiles}
	w.base, w.parent = readOOM(w.files), readOOM(w.parents)
	w.seen = w.base
	if len(w.files) == 0 {
		return w
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return w
	}
	watching := false
	for _, p := range w.files {
		if _, err := unix.InotifyAddWatch(fd, p, unix.IN_MODIFY); err == nil {
			watching = true
		}
	}
	if !watching {
		unix.Close(fd)
		return w
	}
	// Non-blocking, so the runtime poller parks the reader and Close
	// wakes it.
	w.f = os.NewFile(uintptr(fd), "inotify")
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		buf := make([]byte, 4096)
		for {
			if _, err := w.f.Read(buf); err != nil {
				return
			}
			w.observe(readOOM(w.files))
		}
	}()
	return w
}

// observe keeps the highest counts.
func (w *oomWatch) observe(c oomCounts) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen.kills = max(w.seen.kills, c.kills)
	w.seen.pressure = max(w.seen.pressure, c.pressure)
}

// stop ends the watch and says whether the run had a process OOM-killed;
// code is its init's exit code (137: SIGKILL).
func (w *oomWatch) stop(code int) bool {
	now := readOOM(w.files)
	if w.f != nil {
		w.f.Close()
		w.done.Wait()
	}
	w.observe(now)
	w.mu.Lock()
	seen := w.seen
	w.mu.Unlock()
	if seen.kills > w.base.kills {
		return true
	}
	if now.ok || len(w.parents) == 0 || code != 128+int(unix.SIGKILL) || seen.pressure <= w.base.pressure {
		return false
	}
	parent := readOOM(w.parents)
	return parent.ok && parent.kills > w.parent.kills
}
