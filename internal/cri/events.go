package cri

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/errdefs"
)

// containerEventTypes maps the engine's container events to the CRI's.
var containerEventTypes = map[string]runtimeapi.ContainerEventType{
	"create":  runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
	"start":   runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
	"die":     runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
	"destroy": runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
}

// GetContainerEvents streams the pods' container lifecycle (kubelet's
// evented PLEG) from now on, read from the engine's event log. The
// monitors write their containers' ends there themselves, so an exit is
// recorded even while berthd is down; kubelet relists when its stream
// reconnects, as it does with containerd.
func (s *Server) GetContainerEvents(req *runtimeapi.GetEventsRequest, stream grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	if err := s.needEngine("GetContainerEvents"); err != nil {
		return err
	}
	ctx := stream.Context()
	filters := map[string][]string{"type": {"container"}, "namespace": {"k8s.io"}}
	return s.engine.Events(ctx, time.Time{}, time.Time{}, filters, func(ev engine.Event) error {
		typ, ok := containerEventTypes[ev.Action]
		if !ok {
			return nil
		}
		resp := s.containerEvent(ctx, ev, typ)
		if resp == nil {
			return nil
		}
		return stream.Send(resp)
	})
}

// containerEvent builds the event with the statuses kubelet wants beside
// it; nil for a container the CRI did not make.
func (s *Server) containerEvent(ctx context.Context, ev engine.Event, typ runtimeapi.ContainerEventType) *runtimeapi.ContainerEventResponse {
	resp := &runtimeapi.ContainerEventResponse{ContainerId: ev.Actor.ID, ContainerEventType: typ, CreatedAt: ev.TimeNano}
	c, err := s.engine.Inspect(ctx, ev.Actor.ID)
	switch {
	case errors.Is(err, errdefs.ErrNotFound) && typ == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT:
		// Gone: the pod is named by the event's attributes only.
		return resp
	case err != nil:
		return nil
	}
	x, ok := containerExtraOf(c)
	if !ok {
		return nil
	}
	resp.ContainersStatuses = []*runtimeapi.ContainerStatus{containerStatus(c, x)}
	if st, err := s.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: c.SandboxID}); err == nil {
		resp.PodSandboxStatus = st.Status
	}
	return resp
}
