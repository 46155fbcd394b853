package main

// The caller's terminal during `run -t`, `start -a`, `attach` and `exec
// -t`: raw mode so that keys (^C included) reach the container, and window
// size changes forwarded.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/term"

	"github.com/berth-project/berth/internal/engine"
)

// rawTerminal puts stdin in raw mode if it is a terminal and returns the
// function that restores it (always non-nil, safe to call twice).
func rawTerminal(stdin *os.File) (restore func(), err error) {
	fd := int(stdin.Fd())
	if !term.IsTerminal(fd) {
		return func() {}, nil
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return func() {}, err
	}
	done := false
	return func() {
		if !done {
			done = true
			_ = term.Restore(fd, old)
		}
	}, nil
}

// watchResize sends out's size now and on every SIGWINCH until ctx ends.
// The channel is buffered by one and a newer size replaces one not yet
// taken, so a slow reader never blocks the terminal.
func watchResize(ctx context.Context, out *os.File) <-chan engine.TermSize {
	ch := make(chan engine.TermSize, 1)
	size := func() (engine.TermSize, bool) {
		w, h, err := term.GetSize(int(out.Fd()))
		if err != nil || w <= 0 || h <= 0 || w > 0xffff || h > 0xffff {
			return engine.TermSize{}, false
		}
		return engine.TermSize{Rows: uint16(h), Cols: uint16(w)}, true
	}
	send := func() {
		s, ok := size()
		if !ok {
			return
		}
		select {
		case <-ch:
		default:
		}
		ch <- s
	}
	send()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(winch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-winch:
				send()
			}
		}
	}()
	return ch
}

// ttySetup prepares the caller's side of a container terminal: stdin raw
// if it is a terminal (keys, ^C included, go to the container), and the
// size of stdout's terminal followed if it is one (`-t` with stdin from a
// pipe still gets the right width).
func ttySetup(ctx context.Context, streams *engine.AttachStreams) (restore func(), err error) {
	restore, err = rawTerminal(os.Stdin)
	if err != nil {
		return restore, fmt.Errorf("put the terminal in raw mode: %w", err)
	}
	if isTTY(os.Stdout) {
		streams.Resize = watchResize(ctx, os.Stdout)
	}
	return restore, nil
}

// isTTY reports whether f is a terminal.
func isTTY(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// session is the caller's side of an attach: the streams, a context a
// detach cancels, and the terminal state to restore.
type session struct {
	ctx      context.Context
	cancel   context.CancelFunc
	detached atomic.Bool
	streams  engine.AttachStreams
	restore  func()
}

// newSession prepares stdio for an attach. Its context does not end with
// parent: whether berth's own SIGINT/SIGTERM detach is the caller's choice
// (detachOnCancel), since with --sig-proxy they go to the container.
func newSession(parent context.Context, stdin, tty bool, keys []byte) (*session, error) {
	s := &session{restore: func() {}}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(parent))
	s.streams = engine.AttachStreams{Stdout: os.Stdout, Stderr: os.Stderr}
	if stdin {
		s.streams.Stdin = os.Stdin
	}
	if tty {
		restore, err := ttySetup(s.ctx, &s.streams)
		if err != nil {
			s.cancel()
			return nil, err
		}
		s.restore = restore
		// Keys are only seen one by one in raw mode, that is on a
		// terminal; piped input is passed on untouched.
		if stdin && isTTY(os.Stdin) && len(keys) > 0 {
			s.streams.Stdin = &detachReader{r: os.Stdin, keys: keys, detach: s.detach}
		}
	}
	return s, nil
}

func (s *session) detach() {
	s.detached.Store(true)
	s.cancel()
}

// detachOnCancel detaches when parent ends (berth signalled).
func (s *session) detachOnCancel(parent context.Context) {
	go func() {
		select {
		case <-parent.Done():
			s.detach()
		case <-s.ctx.Done():
		}
	}()
}

func (s *session) close() {
	s.restore()
	s.cancel()
}

// result is the engine's answer, except that after a detach it is
// errDetached whatever the engine said.
func (s *session) result(code int, err error) (int, error) {
	if s.detached.Load() {
		return 0, errDetached
	}
	return code, err
}

// errDetached says the user detached (the detach keys, or berth signalled
// while a terminal was attached): the container goes on running.
var errDetached = errors.New("detached from the container")

// parseDetachKeys parses Docker's --detach-keys: comma-separated keys,
// each a single character or ctrl-X (X one of a-z @ [ \ ] ^ _). "" is the
// default, ctrl-p,ctrl-q.
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		s = "ctrl-p,ctrl-q"
	}
	var keys []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			keys = append(keys, k[0])
		case len(k) == 6 && strings.HasPrefix(strings.ToLower(k), "ctrl-"):
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				keys = append(keys, c-'a'+1)
			case c >= 'A' && c <= 'Z':
				keys = append(keys, c-'A'+1)
			case strings.IndexByte("@[\\]^_", c) >= 0:
				keys = append(keys, c-'@')
			default:
				return nil, fmt.Errorf("unknown key %q (want a character or ctrl-a..ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_)", k)
			}
		default:
			return nil, fmt.Errorf("unknown key %q (want a character or ctrl-a..ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_)", k)
		}
	}
	return keys, nil
}

// detachReader passes stdin through until the detach keys are typed in a
// row; then it calls detach and ends with errDetached. Bytes that start
// the sequence but do not finish it are passed on late, unchanged.
type detachReader struct {
	r       io.Reader
	keys    []byte
	detach  func()
	matched int    // keys[:matched] typed so far and held back
	pending []byte // bytes to hand out before reading again
	done    bool
}

func (d *detachReader) Read(p []byte) (int, error) {
	for {
		if len(d.pending) > 0 {
			n := copy(p, d.pending)
			d.pending = d.pending[n:]
			return n, nil
		}
		if d.done {
			return 0, errDetached
		}
		buf := make([]byte, len(p))
		n, err := d.r.Read(buf)
		for _, b := range buf[:n] {
			if d.done {
				break
			}
			d.feed(b)
		}
		if d.done {
			d.detach()
			continue // hand out what came before the keys first
		}
		if err != nil {
			// The input ended: held-back keys were typed, not a detach.
			d.pending = append(d.pending, d.keys[:d.matched]...)
			d.matched = 0
			if len(d.pending) == 0 {
				return 0, err
			}
			n := copy(p, d.pending)
			d.pending = d.pending[n:]
			return n, nil
		}
	}
}

func (d *detachReader) feed(b byte) {
	if b == d.keys[d.matched] {
		d.matched++
		if d.matched == len(d.keys) {
			d.matched = 0
			d.done = true
		}
		return
	}
	if d.matched > 0 {
		// A broken sequence: what was held back was typed.
		d.pending = append(d.pending, d.keys[:d.matched]...)
		d.matched = 0
		if b == d.keys[0] {
			d.matched = 1
			return
		}
	}
	d.pending = append(d.pending, b)
}
