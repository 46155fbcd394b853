package engine

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
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

// The operations below are stubs until each lands; their signatures are
// the contract the CLI is written against. Every method that names a
// container takes an ID, a unique ID prefix, or a name.

// Create makes a container: pulls its image if needed, prepares its root
// file system and records it. Nothing runs yet.
func (e *Engine) Create(ctx context.Context, o CreateOptions) (Container, error) {
	return Container{}, errNotYet("create")
}

// Start starts a created or exited container. With attach set, the
// container's stdio is connected to it before the process runs, and Start
// returns once the process has started; Attach then carries the streams.
func (e *Engine) Start(ctx context.Context, ref string) (Container, error) {
	return Container{}, errNotYet("start")
}

// StartAttached starts ref with its stdio connected to streams from the
// first byte and returns when the container's output ends, with its exit
// code (foreground `run`, `start -a`). Cancelling ctx detaches.
func (e *Engine) StartAttached(ctx context.Context, ref string, streams AttachStreams) (int, error) {
	return 0, errNotYet("start -a")
}

// Attach connects streams to a running container until its output ends
// (returns its exit code) or ctx ends (detaches).
func (e *Engine) Attach(ctx context.Context, ref string, streams AttachStreams) (int, error) {
	return 0, errNotYet("attach")
}

// Stop sends the stop signal, then SIGKILL after timeout (nil: the
// container's StopTimeout, else 10 s), and waits for the exit.
func (e *Engine) Stop(ctx context.Context, ref string, timeout *time.Duration) error {
	return errNotYet("stop")
}

// Kill sends signal (a name "KILL"/"SIGKILL" or a number; "" = KILL).
func (e *Engine) Kill(ctx context.Context, ref, signal string) error {
	return errNotYet("kill")
}

// Restart is Stop then Start.
func (e *Engine) Restart(ctx context.Context, ref string, timeout *time.Duration) error {
	return errNotYet("restart")
}

// Remove deletes a container and everything it holds.
func (e *Engine) Remove(ctx context.Context, ref string, o RemoveOptions) error {
	return errNotYet("rm")
}

// List is `ps`.
func (e *Engine) List(ctx context.Context, o ListOptions) ([]Summary, error) {
	return nil, errNotYet("ps")
}

// Inspect returns the container's record with its current state.
func (e *Engine) Inspect(ctx context.Context, ref string) (Container, error) {
	return Container{}, errNotYet("inspect")
}

// Wait blocks until the container is not running and returns its exit code.
func (e *Engine) Wait(ctx context.Context, ref string) (int, error) {
	return 0, errNotYet("wait")
}

// Logs writes the container's log.
func (e *Engine) Logs(ctx context.Context, ref string, o LogsOptions, stdout, stderr io.Writer) error {
	return errNotYet("logs")
}

// Exec runs a process in a running container; with o.Detach it returns at
// once with code 0.
func (e *Engine) Exec(ctx context.Context, ref string, o ExecOptions, streams AttachStreams) (int, error) {
	return 0, errNotYet("exec")
}

// Top lists the container's processes as ps(1) does with psArgs (default -ef).
func (e *Engine) Top(ctx context.Context, ref string, psArgs []string) (titles []string, rows [][]string, err error) {
	return nil, nil, errNotYet("top")
}

// Stats samples the container's resource use.
func (e *Engine) Stats(ctx context.Context, ref string) (Stats, error) {
	return Stats{}, errNotYet("stats")
}

// Port lists the container's published ports.
func (e *Engine) Port(ctx context.Context, ref string) (map[string][]PortBinding, error) {
	return nil, errNotYet("port")
}

// Events calls fn for each event from since (zero: now) until until (zero:
// forever, until ctx ends), filtered as `docker events --filter`.
func (e *Engine) Events(ctx context.Context, since, until time.Time, filters map[string][]string, fn func(Event) error) error {
	return errNotYet("events")
}

// CopyFromContainer copies src in the container to dst on the host ("-":
// a tar stream to w).
func (e *Engine) CopyFromContainer(ctx context.Context, ref, src, dst string, w io.Writer) error {
	return errNotYet("cp")
}

// CopyToContainer copies the host's src ("-": a tar stream from r) to dst
// in the container.
func (e *Engine) CopyToContainer(ctx context.Context, ref, dst, src string, r io.Reader) error {
	return errNotYet("cp")
}

// Boot starts, after a reboot, the containers whose restart policy is
// always or unless-stopped (not stopped by the user).
func (e *Engine) Boot(ctx context.Context) error {
	return errNotYet("system boot")
}

func errNotYet(what string) error {
	return fmt.Errorf("%s: %w", what, errdefs.ErrNotImplemented)
}
