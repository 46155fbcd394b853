package main

// The caller's terminal during `run -t`, `start -a`, `attach` and `exec
// -t`: raw mode so that keys (^C included) reach the container, and window
// size changes forwarded.

import (
	"context"
	"fmt"
	"os"
	"os/signal"
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
