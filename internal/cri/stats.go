package cri

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
)

// Statistics come from the engine: the runtime's `events --stats` (the
// cgroup's CPU, memory and PIDs, the same on cgroup v1 and v2), the
// network namespace's interface counters, and the snapshotter's usage of
// the writable layer.

// containerStats samples one container.
func (s *Server) containerStats(ctx context.Context, c engine.Container, x containerExtra) (*runtimeapi.ContainerStats, engine.Stats, error) {
	st, err := s.engine.Stats(ctx, c.ID)
	if err != nil {
		return nil, st, err
	}
	now := time.Now().UnixNano()
	out := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: c.ID, Metadata: x.Metadata, Labels: x.Labels, Annotations: x.Annotations},
		Cpu: &runtimeapi.CpuUsage{
			Timestamp:            now,
			UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: st.CPUNanos},
		},
		Memory: &runtimeapi.MemoryUsage{
			Timestamp:       now,
			WorkingSetBytes: &runtimeapi.UInt64Value{Value: st.MemUsage},
			UsageBytes:      &runtimeapi.UInt64Value{Value: st.MemUsage},
		},
	}
	if st.MemLimit > st.MemUsage {
		out.Memory.AvailableBytes = &runtimeapi.UInt64Value{Value: st.MemLimit - st.MemUsage}
	}
	if wl, err := s.engine.WritableLayerOf(ctx, c.ID); err == nil {
		out.WritableLayer = &runtimeapi.FilesystemUsage{
			Timestamp:  now,
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: wl.Path},
			UsedBytes:  &runtimeapi.UInt64Value{Value: uint64(max(wl.Bytes, 0))},
			InodesUsed: &runtimeapi.UInt64Value{Value: uint64(max(wl.Inodes, 0))},
		}
	}
	return out, st, nil
}

// ContainerStats samples one container.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	if err := s.needEngine("ContainerStats"); err != nil {
		return nil, err
	}
	c, x, err := s.criContainer(ctx, "ContainerStats", req.ContainerId)
	if err != nil {
		return nil, err
	}
	st, _, err := s.containerStats(ctx, c, x)
	if err != nil {
		return nil, grpcError(fmt.Errorf("ContainerStats %s: %w", req.ContainerId, err))
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats samples the running containers that match the filter.
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	if err := s.needEngine("ListContainerStats"); err != nil {
		return nil, err
	}
	cs, err := s.criContainers(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	f := req.GetFilter()
	out := []*runtimeapi.ContainerStats{}
	for _, c := range cs {
		x, _ := containerExtraOf(c)
		if f != nil && (!strings.HasPrefix(c.ID, f.Id) || !strings.HasPrefix(c.SandboxID, f.PodSandboxId) || !labelsMatch(x.Labels, f.LabelSelector)) {
			continue
		}
		if !c.State.Running {
			continue
		}
		st, _, err := s.containerStats(ctx, c, x)
		if err != nil {
			continue // it stopped meanwhile
		}
		out = append(out, st)
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: out}, nil
}

func (s *Server) StreamContainerStats(req *runtimeapi.StreamContainerStatsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamContainerStatsResponse]) error {
	return notImplemented("StreamContainerStats")
}

// podStats sums a pod's containers and adds its network.
func (s *Server) podStats(ctx context.Context, sb engine.Sandbox, x sandboxExtra, cs []engine.Container) *runtimeapi.PodSandboxStats {
	now := time.Now().UnixNano()
	lin := &runtimeapi.LinuxPodSandboxStats{
		Cpu:    &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
		Memory: &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}, UsageBytes: &runtimeapi.UInt64Value{}},
	}
	var procs uint64
	var rx, tx uint64
	for _, c := range cs {
		if c.SandboxID != sb.ID || !c.State.Running {
			continue
		}
		cx, _ := containerExtraOf(c)
		cst, es, err := s.containerStats(ctx, c, cx)
		if err != nil {
			continue
		}
		lin.Containers = append(lin.Containers, cst)
		lin.Cpu.UsageCoreNanoSeconds.Value += cst.Cpu.UsageCoreNanoSeconds.Value
		lin.Memory.WorkingSetBytes.Value += cst.Memory.WorkingSetBytes.Value
		lin.Memory.UsageBytes.Value += cst.Memory.UsageBytes.Value
		procs += es.Pids
		rx, tx = es.NetRx, es.NetTx // one network namespace: any container's view
	}
	lin.Process = &runtimeapi.ProcessUsage{Timestamp: now, ProcessCount: &runtimeapi.UInt64Value{Value: procs}}
	lin.Network = &runtimeapi.NetworkUsage{Timestamp: now, DefaultInterface: &runtimeapi.NetworkInterfaceUsage{
		Name: "eth0", RxBytes: &runtimeapi.UInt64Value{Value: rx}, TxBytes: &runtimeapi.UInt64Value{Value: tx},
	}}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: sb.ID, Metadata: x.Metadata, Labels: x.Labels, Annotations: x.Annotations},
		Linux:      lin,
	}
}

// PodSandboxStats samples one pod.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	if err := s.needEngine("PodSandboxStats"); err != nil {
		return nil, err
	}
	sb, x, err := s.criSandbox(ctx, "PodSandboxStats", req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	cs, err := s.criContainers(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: s.podStats(ctx, sb, x, cs)}, nil
}

// ListPodSandboxStats samples the ready pods that match the filter.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	if err := s.needEngine("ListPodSandboxStats"); err != nil {
		return nil, err
	}
	sbs, err := s.engine.ListSandboxes(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	cs, err := s.criContainers(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	f := req.GetFilter()
	out := []*runtimeapi.PodSandboxStats{}
	for _, sb := range sbs {
		x, ok := extraOf(sb)
		if !ok || sb.State != engine.SandboxReady {
			continue
		}
		if f != nil && (!strings.HasPrefix(sb.ID, f.Id) || !labelsMatch(x.Labels, f.LabelSelector)) {
			continue
		}
		out = append(out, s.podStats(ctx, sb, x, cs))
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: out}, nil
}

func (s *Server) StreamPodSandboxStats(req *runtimeapi.StreamPodSandboxStatsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxStatsResponse]) error {
	return notImplemented("StreamPodSandboxStats")
}

// ListMetricDescriptors and ListPodSandboxMetrics (cAdvisor-style
// Prometheus metrics through the CRI, kubelet's PodAndContainerStatsFromCRI
// alpha) answer Unimplemented: Berth's figures travel in the stats RPCs
// above, and kubelet falls back to them.
func (s *Server) ListMetricDescriptors(ctx context.Context, req *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	return nil, notImplemented("ListMetricDescriptors")
}

func (s *Server) ListPodSandboxMetrics(ctx context.Context, req *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	return nil, notImplemented("ListPodSandboxMetrics")
}

func (s *Server) StreamPodSandboxMetrics(req *runtimeapi.StreamPodSandboxMetricsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxMetricsResponse]) error {
	return notImplemented("StreamPodSandboxMetrics")
}
