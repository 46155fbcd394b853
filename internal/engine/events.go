package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Events are kept in ROOT/events.jsonl, one JSON Event a line, appended
// with O_APPEND under an flock so lines from concurrent berth processes
// never interleave; `events` reads it and follows it. The file is cut to
// its newer half when it passes maxEventsFile.
const maxEventsFile = 8 << 20

func (e *Engine) eventsPath() string { return filepath.Join(e.opts.Root, "events.jsonl") }

// emit records an event about container r.
func (e *Engine) emit(ctx context.Context, typ, action string, r *record) {
	e.emitWith(ctx, typ, action, r, nil)
}

func (e *Engine) emitWith(ctx context.Context, typ, action string, r *record, attrs map[string]string) {
	a := map[string]string{}
	id := ""
	if r != nil {
		id = r.ID
		// Labels first: an image's label must not pass for the name.
		for k, v := range r.Config.Labels {
			a[k] = v
		}
		a["name"] = strings.TrimPrefix(r.Name, "/")
		a["image"] = r.Config.Image
	}
	for k, v := range attrs {
		a[k] = v
	}
	e.emitEvent(Event{Type: typ, Action: action, Actor: EventActor{ID: id, Attributes: a}})
}

// emitEvent appends ev; a failure to record an event never fails the
// operation that caused it.
func (e *Engine) emitEvent(ev Event) {
	now := time.Now()
	ev.Scope, ev.Time, ev.TimeNano = "local", now.Unix(), now.UnixNano()
	if ev.Type == "container" {
		ev.Status, ev.ID, ev.From = ev.Action, ev.Actor.ID, ev.Actor.Attributes["image"]
	}
	ev.Actor.Attributes["namespace"] = e.opts.Namespace
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	f, err := os.OpenFile(e.eventsPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		e.warn("record event: %v", err)
		return
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return
	}
	f.Write(append(b, '\n'))
	if fi, err := f.Stat(); err == nil && fi.Size() > maxEventsFile {
		trimEvents(e.eventsPath())
	}
}

// trimEvents keeps the newer half of the events file (called under its lock).
func trimEvents(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	half := b[len(b)/2:]
	if i := strings.IndexByte(string(half), '\n'); i >= 0 {
		half = half[i+1:]
	}
	writeFileAtomic(path, half, 0o600)
}

// Events calls fn for each event from since (zero: now) until until (zero:
// forever, until ctx ends), filtered as `docker events --filter`: type,
// event/action, container (ID or name), image, label, namespace.
func (e *Engine) Events(ctx context.Context, since, until time.Time, filters map[string][]string, fn func(Event) error) error {
	path := e.eventsPath()
	var f *os.File
	for {
		var err error
		f, err = os.Open(path)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if !until.IsZero() && time.Now().After(until) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer f.Close()
	if since.IsZero() {
		// From now on: skip what is there.
		if _, err := f.Seek(0, io.SeekEnd); err != nil {
			return err
		}
	}
	rd := bufio.NewReader(f)
	var partial []byte
	for {
		line, err := rd.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = append(partial, line...)
			partial = nil
			var ev Event
			if json.Unmarshal(line, &ev) == nil {
				t := time.Unix(0, ev.TimeNano)
				if !until.IsZero() && t.After(until) {
					return nil
				}
				if (since.IsZero() || !t.Before(since)) && eventMatches(ev, filters) {
					if err := fn(ev); err != nil {
						return err
					}
				}
			}
			continue
		}
		partial = append(partial, line...)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read events: %w", err)
		}
		if !until.IsZero() && time.Now().After(until) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func eventMatches(ev Event, f map[string][]string) bool {
	one := func(key string, got ...string) bool {
		vals := f[key]
		if len(vals) == 0 {
			return true
		}
		for _, v := range vals {
			for _, g := range got {
				if v == g || (key == "container" && len(v) >= 4 && strings.HasPrefix(g, v)) {
					return true
				}
			}
		}
		return false
	}
	a := ev.Actor.Attributes
	if !one("type", ev.Type) || !one("event", ev.Action) || !one("action", ev.Action) ||
		!one("image", a["image"]) || !one("namespace", a["namespace"]) {
		return false
	}
	if ev.Type == "container" && !one("container", ev.Actor.ID, a["name"]) {
		return false
	}
	if ev.Type == "network" && !one("network", ev.Actor.ID, a["name"]) {
		return false
	}
	if ev.Type == "volume" && !one("volume", ev.Actor.ID, a["name"]) {
		return false
	}
	for _, l := range f["label"] {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := a[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}
