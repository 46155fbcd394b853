package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/runtime/events"
)

// oomPoll is how often Events reads the container's OOM kill counter and
// checks that its init lives. Polling a counter cannot miss a kill that
// happened between two reads, which an edge-triggered notification
// (eventfd on v1, inotify on v2) would need care not to; ten small reads
// a second cost nothing next to the container.
const oomPoll = 100 * time.Millisecond

// EventsOptions are the flags of `events`.
type EventsOptions struct {
	// Interval between two stats events of the stream.
	Interval time.Duration
	// StatsOnly emits one stats event and returns instead of streaming.
	StatsOnly bool
	// Warn, if set, is told of a stats read that failed while streaming;
	// the stream goes on, as runc's does.
	Warn func(error)
}

// Events emits the events of a running (or created, or paused) container as
// runc's `events` does: with StatsOnly one stats event; otherwise a stats
// event every Interval, the first one Interval after the start, and one oom
// event for each process the kernel's OOM killer kills in the container's
// memory cgroup, until the container's init is gone or ctx is done. emit
// failing (stdout gone) ends it with that error.
func (r *Runtime) Events(ctx context.Context, id string, opt EventsOptions, emit func(*events.Event) error) error {
	if opt.Interval <= 0 {
		return errors.New("--interval: duration interval must be greater than 0")
	}
	p, err := r.load(id)
	if err != nil {
		return err
	}
	if r.status(p) == specs.StateStopped {
		return fmt.Errorf("container with id %s is not running", id)
	}
	cg, err := r.cgroupOf(p)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if opt.StatsOnly {
		ev, err := statsEvent(id, cg)
		if err != nil {
			return err
		}
		return emit(ev)
	}
	// The baseline: only kills after it are news. A container that was
	// OOM-killed before `events` started reported it to whoever watched.
	seen, err := cg.OOMKillCount()
	if err != nil {
		return fmt.Errorf("container %s: read OOM kill count: %w", id, err)
	}
	// checkOOM emits an oom event for each kill since the last read.
	checkOOM := func() error {
		n, err := cg.OOMKillCount()
		if err != nil {
			// The cgroup went away with a delete: the init is gone
			// too, which the caller finds next.
			return nil
		}
		for ; seen < n; seen++ {
			if err := emit(&events.Event{Type: events.TypeOOM, ID: id}); err != nil {
				return err
			}
		}
		return nil
	}
	poll := time.NewTicker(oomPoll)
	defer poll.Stop()
	stats := time.NewTicker(opt.Interval)
	defer stats.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			if err := checkOOM(); err != nil {
				return err
			}
			// Checked after the counter: the kernel counts a kill
			// before its victim can exit, so a kill of the init is
			// emitted before the stream ends.
			if !processAlive(p.Pid, p.StartTime) {
				return checkOOM()
			}
		case <-stats.C:
			ev, err := statsEvent(id, cg)
			if err != nil {
				if !processAlive(p.Pid, p.StartTime) {
					// The container stopped while we read: the next
					// poll ends the stream without a spurious warning.
					continue
				}
				if opt.Warn != nil {
					opt.Warn(err)
				}
				continue
			}
			if err := emit(ev); err != nil {
				return err
			}
		}
	}
}

func statsEvent(id string, cg *cgroups.Manager) (*events.Event, error) {
	st, err := cg.Stats()
	if err != nil {
		return nil, fmt.Errorf("container %s: read cgroup stats: %w", id, err)
	}
	return &events.Event{Type: events.TypeStats, ID: id, Data: events.Convert(st)}, nil
}
