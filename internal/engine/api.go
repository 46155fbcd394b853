package engine

import (
	"fmt"
	"io"
	"time"
)

// AttachStreams are the caller's ends of a container's stdio.
type AttachStreams struct {
	Stdin          io.Reader // nil: no stdin
	Stdout, Stderr io.Writer // with a terminal, everything goes to Stdout
	// Resize carries the caller's terminal size changes (terminal only).
	Resize <-chan TermSize
}

// TermSize is a terminal's size.
type TermSize struct{ Rows, Cols uint16 }

// LogsOptions is `berth logs`.
type LogsOptions struct {
	Follow     bool
	Tail       int // -1: all
	Since      time.Time
	Until      time.Time
	Timestamps bool
}

// RemoveOptions is `berth rm`.
type RemoveOptions struct {
	Force   bool // kill a running container first
	Volumes bool // remove its anonymous volumes
}

// ExitError is a container's non-zero exit, or an exit code berth itself
// chose (125, 126, 127); the CLI exits with Code.
type ExitError struct {
	Code int
	Err  error // nil when the container simply exited with Code
}

func (e *ExitError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func (e *ExitError) Unwrap() error { return e.Err }
