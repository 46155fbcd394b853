package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/runtime/events"
)

// Event is one line of `events` output, decoded into runc's event shape
// (which berth-runtime's events package mirrors) and also kept raw, so a
// test can compare JSON keys with another runtime's.
type Event struct {
	events.Event
	Line string
	Raw  map[string]any
}

// ParseEvent decodes one line of `events` output. A key that runc's shape
// lacks is an error: a parser built for runc would not expect it.
func ParseEvent(t testing.TB, line string) Event {
	t.Helper()
	ev := Event{Line: line}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev.Event); err != nil {
		t.Fatalf("event %q is not in runc's event shape: %v", line, err)
	}
	if err := json.Unmarshal([]byte(line), &ev.Raw); err != nil {
		t.Fatalf("event %q: %v", line, err)
	}
	return ev
}

// Stats runs `events --stats id` and returns its one event, failing t
// unless it is a stats event of id with data.
func (r *Runtime) Stats(id string) Event {
	r.t.Helper()
	res := r.Do("events", "--stats", id).OK(r.t)
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if len(lines) != 1 {
		r.t.Fatalf("events --stats printed %d lines, want one event: %s", len(lines), res)
	}
	ev := ParseEvent(r.t, lines[0])
	if ev.Type != events.TypeStats || ev.ID != id || ev.Data == nil {
		r.t.Fatalf("events --stats printed %s, want a stats event of %s with data", lines[0], id)
	}
	return ev
}

// EventStream is a running `events` command (the streaming form) whose
// stdout lines a test reads as they come.
type EventStream struct {
	Cmd *exec.Cmd

	t      testing.TB
	lines  chan string
	done   chan struct{} // closed when the command has exited
	err    error         // of cmd.Wait, set before done closes
	stderr bytes.Buffer
}

// StartEvents starts `events [flags] id` in the background. It is killed
// when t ends if it is still running.
func (r *Runtime) StartEvents(id string, flags ...string) *EventStream {
	r.t.Helper()
	args := append(append([]string{"events"}, flags...), id)
	s := &EventStream{Cmd: r.Cmd(args...), t: r.t, lines: make(chan string, 64), done: make(chan struct{})}
	s.Cmd.Stderr = &s.stderr
	out, err := s.Cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := s.Cmd.Start(); err != nil {
		r.t.Fatalf("start %v: %v", s.Cmd.Args, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
		// Wait after the last read: it closes the pipe.
		s.err = s.Cmd.Wait()
		close(s.done)
	}()
	r.t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.Cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// Next returns the next event, or false once the stream has ended. It
// fails t if neither comes within CallTimeout.
func (s *EventStream) Next() (Event, bool) {
	s.t.Helper()
	select {
	case line, ok := <-s.lines:
		if !ok {
			return Event{}, false
		}
		return ParseEvent(s.t, line), true
	case <-time.After(CallTimeout):
		s.t.Fatalf("%v printed no event and did not end within %v", s.Cmd.Args, CallTimeout)
		return Event{}, false
	}
}

// Until reads events up to the first of type typ and returns them all,
// failing t if the stream ends first or an event is not of container id.
func (s *EventStream) Until(id, typ string) []Event {
	s.t.Helper()
	var seen []Event
	for {
		ev, ok := s.Next()
		if !ok {
			s.t.Fatalf("events ended before a %s event; it printed %d events before; %s", typ, len(seen), s.Wait())
		}
		if ev.ID != id {
			s.t.Fatalf("event %s is not of container %s", ev.Line, id)
		}
		seen = append(seen, ev)
		if ev.Type == typ {
			return seen
		}
	}
}

// Wait reads the rest of the stream and waits for the command to exit,
// failing t if it has not within CallTimeout. The Result holds the events
// left unread in Stdout.
func (s *EventStream) Wait() Result {
	s.t.Helper()
	var rest []string
	deadline := time.After(CallTimeout)
read:
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				break read
			}
			rest = append(rest, line)
		case <-deadline:
			s.t.Fatalf("%v did not end within %v; it printed %q", s.Cmd.Args, CallTimeout, rest)
		}
	}
	<-s.done
	res := Result{Args: s.Cmd.Args, Stdout: strings.Join(rest, "\n"), Stderr: s.stderr.String()}
	var ee *exec.ExitError
	switch {
	case s.err == nil:
		res.ExitCode = 0
	case errors.As(s.err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		res.ExitCode = -1
	}
	return res
}
