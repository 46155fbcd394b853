package cri

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/errdefs"
)

// execSyncOutputLimit bounds what ExecSync keeps of a command's stdout and
// stderr together: kubelet's CRI client accepts responses of at most
// 16 MiB, and a command in a hostile container could print without end.
// Output beyond the limit is read and dropped (the command never blocks
// on a full pipe), and the response's stderr says so at its end.
const execSyncOutputLimit = 16<<20 - 64<<10 // room for the message's other fields

// execSyncKillGrace bounds how long ExecSync waits, after a timeout, for
// the killed command's output to end.
const execSyncKillGrace = 5 * time.Second

// ExecSync runs a command in a running container and answers with its
// output and exit code once it ends. With a timeout (seconds; 0: none) the
// command is killed when it runs out, and the answer is DeadlineExceeded,
// which kubelet's CRI client reports as a timed-out probe.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, grpcError(fmt.Errorf("exec: cmd is empty: %w", errdefs.ErrInvalidArgument))
	}
	if req.GetTimeout() < 0 {
		return nil, grpcError(fmt.Errorf("exec: timeout %d: want 0 (none) or more seconds: %w", req.GetTimeout(), errdefs.ErrInvalidArgument))
	}
	id, err := s.runningContainer(ctx, "exec", req.GetContainerId())
	if err != nil {
		return nil, err
	}
	execCtx := ctx
	if req.GetTimeout() > 0 {
		var cancel context.CancelFunc
		execCtx, cancel = context.WithTimeout(ctx, time.Duration(req.GetTimeout())*time.Second)
		defer cancel()
	}
	out := &cappedOutput{left: execSyncOutputLimit}
	stdout, stderr := out.writer(&out.stdout), out.writer(&out.stderr)
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := s.engine.Exec(execCtx, id, engine.ExecOptions{Cmd: req.GetCmd(), KillOnCancel: true}, engine.AttachStreams{Stdout: stdout, Stderr: stderr})
		done <- result{code, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-execCtx.Done():
		// The engine kills the process; Exec returns once its output
		// ends, which a background child of the command could delay.
		// The answer does not wait for that past a grace period.
		select {
		case res = <-done:
		case <-time.After(execSyncKillGrace):
			s.log.Warn("exec still running after it was killed: its output is held open (a child left running?)", "container", id, "cmd", req.GetCmd())
			res.err = execCtx.Err()
		}
	}
	code, err := res.code, res.err
	if ctx.Err() == nil && errors.Is(execCtx.Err(), context.DeadlineExceeded) {
		return nil, status.Errorf(codes.DeadlineExceeded, "exec %q in %s: timed out after %ds, killed",
			strings.Join(req.GetCmd(), " "), id, req.GetTimeout())
	}
	var xe *engine.ExitError
	if errors.As(err, &xe) {
		// Not run at all (126: not executable, 127: not found): the
		// runtime's message, as a shell would print it.
		fmt.Fprintf(stderr, "%v\n", xe)
		code, err = xe.Code, nil
	}
	if err != nil {
		return nil, grpcError(fmt.Errorf("exec %q in %s: %w", strings.Join(req.GetCmd(), " "), id, err))
	}
	stdoutBytes, stderrBytes := out.result()
	return &runtimeapi.ExecSyncResponse{Stdout: stdoutBytes, Stderr: stderrBytes, ExitCode: int32(code)}, nil
}

// cappedOutput keeps a command's stdout and stderr up to a shared limit.
// The engine writes them from two goroutines: mu guards the fields below.
type cappedOutput struct {
	mu             sync.Mutex
	stdout, stderr bytes.Buffer
	left           int
	dropped        int64
}

type cappedWriter struct {
	o   *cappedOutput
	buf *bytes.Buffer
}

func (o *cappedOutput) writer(buf *bytes.Buffer) *cappedWriter { return &cappedWriter{o: o, buf: buf} }

func (w *cappedWriter) Write(p []byte) (int, error) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	keep := min(len(p), w.o.left)
	w.buf.Write(p[:keep])
	w.o.left -= keep
	w.o.dropped += int64(len(p) - keep)
	return len(p), nil
}

// result is what was kept of stdout and stderr; stderr ends with a note
// when output was dropped.
func (o *cappedOutput) result() (stdout, stderr []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dropped > 0 {
		fmt.Fprintf(&o.stderr, "\n[berthd: output truncated: %d bytes beyond %d dropped]\n", o.dropped, execSyncOutputLimit)
	}
	return bytes.Clone(o.stdout.Bytes()), bytes.Clone(o.stderr.Bytes())
}
