package cri

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// Exec, Attach and PortForward check the request against the engine and
// answer with a URL of the streaming server (streaming.go), where the
// session itself runs. The checks come first so that kubelet gets
// NotFound or FailedPrecondition from the RPC rather than a failed
// upgrade from the URL.

func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	lib, err := s.streamingServer("Exec")
	if err != nil {
		return nil, err
	}
	if len(req.GetCmd()) == 0 {
		return nil, grpcError(fmt.Errorf("exec: cmd is empty: %w", errdefs.ErrInvalidArgument))
	}
	id, err := s.runningContainer(ctx, "exec", req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return lib.GetExec(&runtimeapi.ExecRequest{ContainerId: id, Cmd: req.GetCmd(), Tty: req.GetTty(),
		Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr()})
}

func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	lib, err := s.streamingServer("Attach")
	if err != nil {
		return nil, err
	}
	id, err := s.runningContainer(ctx, "attach", req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return lib.GetAttach(&runtimeapi.AttachRequest{ContainerId: id, Tty: req.GetTty(),
		Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr()})
}

func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	lib, err := s.streamingServer("PortForward")
	if err != nil {
		return nil, err
	}
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, grpcError(fmt.Errorf("port forward: port %d: want 1 to 65535: %w", p, errdefs.ErrInvalidArgument))
		}
	}
	if req.GetPodSandboxId() == "" {
		return nil, grpcError(fmt.Errorf("port forward: pod_sandbox_id is empty: %w", errdefs.ErrInvalidArgument))
	}
	if s.engine == nil {
		return nil, status.Error(codes.Unavailable, "PortForward: the CRI server has no engine")
	}
	rt := &streamRuntime{engine: s.engine}
	if _, err := rt.sandboxNetNS(ctx, req.GetPodSandboxId()); err != nil {
		return nil, grpcError(fmt.Errorf("port forward: %w", err))
	}
	return lib.GetPortForward(req)
}

// runningContainer resolves the CRI container ID to the engine's full ID
// and checks that the container runs: NotFound for an unknown ID,
// FailedPrecondition for a stopped container.
func (s *Server) runningContainer(ctx context.Context, op, id string) (string, error) {
	if s.engine == nil {
		return "", status.Errorf(codes.Unavailable, "%s: the CRI server has no engine", op)
	}
	if id == "" {
		return "", grpcError(fmt.Errorf("%s: container_id is empty: %w", op, errdefs.ErrInvalidArgument))
	}
	c, err := s.engine.Inspect(ctx, id)
	if err != nil {
		return "", grpcError(fmt.Errorf("%s: container %q: %w", op, id, err))
	}
	if !c.State.Running {
		return "", grpcError(fmt.Errorf("%s: container %q is %s, not running: %w", op, id, c.State.Status, errdefs.ErrFailedPrecondition))
	}
	return c.ID, nil
}
