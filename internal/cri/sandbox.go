package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/errdefs"
)

// Pod sandboxes are the engine's sandboxes (internal/engine/sandbox.go):
// pinned network, IPC and UTS namespaces, no infra container. What only
// the CRI knows of a pod (its metadata, labels, annotations, log
// directory) is kept with the engine's record as sandboxExtra.

// sandboxExtra is the CRI's part of a sandbox record.
type sandboxExtra struct {
	Metadata       *runtimeapi.PodSandboxMetadata `json:"metadata"`
	Labels         map[string]string              `json:"labels,omitempty"`
	Annotations    map[string]string              `json:"annotations,omitempty"`
	LogDirectory   string                         `json:"logDirectory,omitempty"`
	RuntimeHandler string                         `json:"runtimeHandler,omitempty"`
	Namespaces     *runtimeapi.NamespaceOption    `json:"namespaces,omitempty"`
	Privileged     bool                           `json:"privileged,omitempty"`
	// SandboxMode is SandboxModeInfra when the pod has an infra container
	// (infra.go); "" for pinned namespaces alone.
	SandboxMode string `json:"sandboxMode,omitempty"`
}

// defaultPodSubnet is berth-pods' subnet until kubelet gives one (CRI-O's
// default, away from Berth's own 10.87/16 and 10.90/16).
const defaultPodSubnet = "10.85.0.0/16"

// berthPodsNetwork is the network Berth makes for pods when the operator
// configured none.
const berthPodsNetwork = "berth-pods"

// needEngine refuses RuntimeService calls on a server made without one.
func (s *Server) needEngine(rpc string) error {
	if s.engine == nil {
		return status.Errorf(codes.Unavailable, "%s: this server has no container engine", rpc)
	}
	return nil
}

// sandboxName is the engine's unique name for a pod attempt, as kubelet's
// dockershim named infra containers.
func sandboxName(m *runtimeapi.PodSandboxMetadata) string {
	return engineName(fmt.Sprintf("k8s_POD_%s_%s_%s_%d", m.Name, m.Namespace, m.Uid, m.Attempt))
}

// podNetworkName chooses the network pods join: the configured one, else
// the first conflist in the CNI configuration directories, else
// berth-pods, made on first use with the pod subnet.
func (s *Server) podNetworkName(ctx context.Context) (string, error) {
	if s.podNetwork != "" {
		return s.podNetwork, nil
	}
	for _, dir := range s.cniConfDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		var names []string
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".conflist") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			var doc struct {
				Name string `json:"name"`
			}
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil || json.Unmarshal(b, &doc) != nil || doc.Name == "" {
				continue
			}
			return doc.Name, nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.engine.NetworkInspect(ctx, berthPodsNetwork); err == nil {
		return berthPodsNetwork, nil
	}
	_, err := s.engine.NetworkCreate(ctx, engine.NetworkCreateOptions{
		Name: berthPodsNetwork, Subnet: s.podSubnet, NoDNS: true,
		Labels: map[string]string{"io.berth.cri": "pods"},
	})
	if err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return "", fmt.Errorf("create the pod network %s (%s): %w", berthPodsNetwork, s.podSubnet, err)
	}
	return berthPodsNetwork, nil
}

// RunPodSandbox makes a pod's namespaces and network.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	if err := s.needEngine("RunPodSandbox"); err != nil {
		return nil, err
	}
	c := req.GetConfig()
	m := c.GetMetadata()
	switch {
	case c == nil:
		return nil, status.Error(codes.InvalidArgument, "RunPodSandbox: config is missing")
	case m == nil || m.Name == "" || m.Namespace == "" || m.Uid == "":
		return nil, status.Error(codes.InvalidArgument, "RunPodSandbox: config.metadata needs name, namespace and uid")
	}
	runtimeName, err := s.runtimeForHandler(req.RuntimeHandler)
	if err != nil {
		return nil, err
	}
	lin := c.GetLinux()
	sc := lin.GetSecurityContext()
	nsOpts := sc.GetNamespaceOptions()
	userNS, err := podUserNS(nsOpts.GetUsernsOptions())
	if err != nil {
		return nil, err
	}
	if userNS != nil {
		if !s.engine.UserNSRuntime(runtimeName) {
			return nil, status.Errorf(codes.FailedPrecondition, "RunPodSandbox: runtime_handler %q does not offer pod user namespaces (berth-runtime does)", req.RuntimeHandler)
		}
		if !s.userNSWorks() {
			err := s.probeUserNS()
			return nil, status.Errorf(codes.FailedPrecondition, "RunPodSandbox: config.linux.security_context.namespace_options.userns_options: pod user namespaces do not work on this node: %v", err)
		}
	}
	cfg := engine.SandboxConfig{
		Name:         sandboxName(m),
		Hostname:     c.Hostname,
		Labels:       c.Labels,
		Annotations:  c.Annotations,
		HostNetwork:  nsOpts.GetNetwork() == runtimeapi.NamespaceMode_NODE,
		HostIPC:      nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE,
		HostPID:      nsOpts.GetPid() == runtimeapi.NamespaceMode_NODE,
		SharePID:     nsOpts.GetPid() == runtimeapi.NamespaceMode_POD,
		Sysctls:      lin.GetSysctls(),
		CgroupParent: lin.GetCgroupParent(),
		Runtime:      runtimeName,
		UserNS:       userNS,
	}
	if nsOpts.GetPid() == runtimeapi.NamespaceMode_TARGET {
		return nil, status.Error(codes.InvalidArgument, "RunPodSandbox: config.linux.security_context.namespace_options.pid: TARGET is for containers, not pods")
	}
	if d := c.GetDnsConfig(); d != nil {
		cfg.DNS, cfg.DNSSearch, cfg.DNSOptions = d.Servers, d.Searches, d.Options
	}
	for i, p := range c.PortMappings {
		if p.ContainerPort <= 0 || p.ContainerPort > 65535 || p.HostPort < 0 || p.HostPort > 65535 {
			return nil, status.Errorf(codes.InvalidArgument, "RunPodSandbox: config.port_mappings[%d]: ports must be 1-65535 (container %d, host %d)", i, p.ContainerPort, p.HostPort)
		}
		if p.HostPort == 0 {
			continue // kubelet's way of saying "not published"
		}
		cfg.Ports = append(cfg.Ports, engine.SandboxPort{
			HostIP: p.HostIp, HostPort: uint16(p.HostPort), ContainerPort: uint16(p.ContainerPort),
			Protocol: strings.ToLower(p.Protocol.String()),
		})
	}
	if !cfg.HostNetwork {
		if cfg.Network, err = s.podNetworkName(ctx); err != nil {
			return nil, grpcError(err)
		}
	}
	if dir := c.LogDirectory; dir != "" {
		if !filepath.IsAbs(dir) {
			return nil, status.Errorf(codes.InvalidArgument, "RunPodSandbox: config.log_directory %q is not absolute", dir)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, status.Errorf(codes.Internal, "RunPodSandbox: create config.log_directory: %v", err)
		}
	}
	x := sandboxExtra{
		Metadata: m, Labels: c.Labels, Annotations: c.Annotations, LogDirectory: c.LogDirectory,
		RuntimeHandler: req.RuntimeHandler, Namespaces: nsOpts, Privileged: sc.GetPrivileged(),
	}
	if s.infraMode(req.RuntimeHandler) {
		x.SandboxMode = SandboxModeInfra
	}
	extra, err := json.Marshal(x)
	if err != nil {
		return nil, grpcError(err)
	}
	cfg.Extra = extra
	sb, err := s.engine.RunSandbox(ctx, cfg)
	if err != nil {
		return nil, grpcError(fmt.Errorf("RunPodSandbox %s/%s: %w", m.Namespace, m.Name, err))
	}
	if x.SandboxMode == SandboxModeInfra {
		if err := s.startInfra(ctx, sb, x); err != nil {
			if rerr := s.engine.RemoveSandbox(context.WithoutCancel(ctx), sb.ID); rerr != nil {
				s.log.Warn("remove a pod whose infra container failed", "id", sb.ID, "error", rerr)
			}
			return nil, grpcError(fmt.Errorf("RunPodSandbox %s/%s: %w", m.Namespace, m.Name, err))
		}
	}
	s.log.Debug("pod sandbox started", "id", sb.ID, "pod", m.Namespace+"/"+m.Name, "ip", sb.IP)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: sb.ID}, nil
}

// minPodIDs is the least a pod's user namespace maps: kubelet gives each
// pod 65536 IDs (or a multiple), so that any ID an image uses is mapped.
const minPodIDs = 65536

// podUserNS reads a pod's user namespace option: nil for the host's
// (NODE, or unset), the mappings for POD. Kubelet sends one contiguous
// range for uids and one for gids, from container ID 0; anything else is
// refused with InvalidArgument naming the field.
func podUserNS(u *runtimeapi.UserNamespace) (*engine.SandboxUserNS, error) {
	const field = "RunPodSandbox: config.linux.security_context.namespace_options.userns_options"
	if u == nil {
		return nil, nil // unset is the host's, though mode 0 is POD
	}
	switch u.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(u.GetUids())+len(u.GetGids()) > 0 {
			return nil, status.Errorf(codes.InvalidArgument, "%s: mode NODE (the host's user namespace) takes no uids or gids", field)
		}
		return nil, nil
	case runtimeapi.NamespaceMode_POD:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "%s.mode: %s is not supported: a pod uses its own user namespace (POD) or the host's (NODE)", field, u.GetMode())
	}
	out := &engine.SandboxUserNS{}
	for _, ids := range []struct {
		name string
		in   []*runtimeapi.IDMapping
		out  *[]specs.LinuxIDMapping
	}{{"uids", u.GetUids(), &out.UIDMappings}, {"gids", u.GetGids(), &out.GIDMappings}} {
		if len(ids.in) != 1 {
			return nil, status.Errorf(codes.InvalidArgument, "%s.%s: want one contiguous range, got %d", field, ids.name, len(ids.in))
		}
		m := ids.in[0]
		switch {
		case m.ContainerId != 0:
			return nil, status.Errorf(codes.InvalidArgument, "%s.%s[0].container_id: %d: the range must start at container ID 0 (root)", field, ids.name, m.ContainerId)
		case m.Length < minPodIDs:
			return nil, status.Errorf(codes.InvalidArgument, "%s.%s[0].length: %d: a pod needs at least %d IDs", field, ids.name, m.Length, minPodIDs)
		case m.HostId == 0:
			return nil, status.Errorf(codes.InvalidArgument, "%s.%s[0].host_id: 0 would make the pod's root the host's", field, ids.name)
		case uint64(m.HostId)+uint64(m.Length) > 1<<32:
			return nil, status.Errorf(codes.InvalidArgument, "%s.%s[0]: host IDs %d+%d run past the 32-bit ID space", field, ids.name, m.HostId, m.Length)
		}
		*ids.out = []specs.LinuxIDMapping{{ContainerID: m.ContainerId, HostID: m.HostId, Size: m.Length}}
	}
	return out, nil
}

// probeUserNS runs the engine's check that pod user namespaces work; a
// failure is logged once (Status reports the feature off).
func (s *Server) probeUserNS() error {
	if s.engine == nil {
		return errors.New("no container engine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.engine.ProbeUserNS(ctx)
	if err != nil && s.log != nil {
		s.log.Warn("pod user namespaces (hostUsers: false) are not available", "err", err)
	}
	return err
}

// userNSHandler says whether Status offers pod user namespaces on handler
// h ("" the default).
func (s *Server) userNSHandler(h string) bool {
	return s.engine != nil && s.engine.UserNSRuntime(h) && s.userNSWorks()
}

// userNSWorks says whether Status offers pod user namespaces.
func (s *Server) userNSWorks() bool { return s.userNS != nil && s.userNS() == nil }

// sameIDMap says whether a mount's CRI mappings are the pod's own (the
// only ones kubelet sends, and the only ones Berth idmaps with).
func sameIDMap(in []*runtimeapi.IDMapping, pod []specs.LinuxIDMapping) bool {
	if len(in) != len(pod) {
		return false
	}
	for i, m := range in {
		if m.ContainerId != pod[i].ContainerID || m.HostId != pod[i].HostID || m.Length != pod[i].Size {
			return false
		}
	}
	return true
}

// runtimeForHandler maps a RuntimeClass handler to the engine's runtime.
func (s *Server) runtimeForHandler(h string) (string, error) {
	if h == "" {
		return "", nil
	}
	for _, r := range s.runtimes {
		if r == h {
			return h, nil
		}
	}
	return "", status.Errorf(codes.InvalidArgument, "runtime handler %q is not configured (have: %s)", h, strings.Join(s.runtimes, ", "))
}

// StopPodSandbox stops the pod's containers and releases its network; a
// pod already stopped or gone is not an error (the CRI asks this).
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if err := s.needEngine("StopPodSandbox"); err != nil {
		return nil, err
	}
	if req.PodSandboxId == "" {
		return nil, status.Error(codes.InvalidArgument, "StopPodSandbox: pod_sandbox_id is empty")
	}
	if err := s.stopInfra(ctx, req.PodSandboxId, false); err != nil {
		return nil, grpcError(fmt.Errorf("StopPodSandbox %s: %w", req.PodSandboxId, err))
	}
	if err := s.engine.StopSandbox(ctx, req.PodSandboxId, 0); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, grpcError(fmt.Errorf("StopPodSandbox %s: %w", req.PodSandboxId, err))
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes the pod and all its containers; a pod already
// gone is not an error.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	if err := s.needEngine("RemovePodSandbox"); err != nil {
		return nil, err
	}
	if req.PodSandboxId == "" {
		return nil, status.Error(codes.InvalidArgument, "RemovePodSandbox: pod_sandbox_id is empty")
	}
	if err := s.stopInfra(ctx, req.PodSandboxId, true); err != nil {
		return nil, grpcError(fmt.Errorf("RemovePodSandbox %s: %w", req.PodSandboxId, err))
	}
	if err := s.engine.RemoveSandbox(ctx, req.PodSandboxId); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, grpcError(fmt.Errorf("RemovePodSandbox %s: %w", req.PodSandboxId, err))
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// extraOf decodes the CRI's part of a sandbox record; sandboxes made by
// another front end have none.
func extraOf(sb engine.Sandbox) (sandboxExtra, bool) {
	var x sandboxExtra
	if len(sb.Config.Extra) == 0 || json.Unmarshal(sb.Config.Extra, &x) != nil || x.Metadata == nil {
		return x, false
	}
	return x, true
}

// criSandbox finds a pod for rpc: InvalidArgument for an empty ID,
// NotFound for an unknown one or a sandbox the CRI did not make.
func (s *Server) criSandbox(ctx context.Context, rpc, id string) (engine.Sandbox, sandboxExtra, error) {
	if id == "" {
		return engine.Sandbox{}, sandboxExtra{}, status.Errorf(codes.InvalidArgument, "%s: pod_sandbox_id is empty", rpc)
	}
	sb, err := s.engine.InspectSandbox(ctx, id)
	if err != nil {
		return engine.Sandbox{}, sandboxExtra{}, grpcError(fmt.Errorf("%s %s: %w", rpc, id, err))
	}
	x, ok := extraOf(sb)
	if !ok {
		return engine.Sandbox{}, sandboxExtra{}, status.Errorf(codes.NotFound, "%s: %s is not a pod sandbox", rpc, id)
	}
	return sb, x, nil
}

func sandboxState(sb engine.Sandbox) runtimeapi.PodSandboxState {
	if sb.State == engine.SandboxReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// PodSandboxStatus reports a pod: its state, IP and namespaces.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if err := s.needEngine("PodSandboxStatus"); err != nil {
		return nil, err
	}
	sb, x, err := s.criSandbox(ctx, "PodSandboxStatus", req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	st := &runtimeapi.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       x.Metadata,
		State:          s.podState(ctx, sb, x, nil),
		CreatedAt:      sb.Created.UnixNano(),
		Network:        &runtimeapi.PodSandboxNetworkStatus{Ip: sb.IP},
		Linux:          &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: x.Namespaces}},
		Labels:         x.Labels,
		Annotations:    x.Annotations,
		RuntimeHandler: x.RuntimeHandler,
	}
	if st.Linux.Namespaces.Options == nil {
		st.Linux.Namespaces.Options = &runtimeapi.NamespaceOption{}
	}
	for _, ip := range sb.AdditionalIPs {
		st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st, Timestamp: time.Now().UnixNano()}
	if req.Verbose {
		b, _ := json.Marshal(sb)
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// ListPodSandbox lists pods, filtered by ID (or unique prefix), state and
// labels.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	if err := s.needEngine("ListPodSandbox"); err != nil {
		return nil, err
	}
	sbs, err := s.engine.ListSandboxes(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	f := req.GetFilter()
	out := []*runtimeapi.PodSandbox{}
	infras := &infraStates{}
	for _, sb := range sbs {
		x, ok := extraOf(sb)
		if !ok {
			continue
		}
		p := &runtimeapi.PodSandbox{
			Id: sb.ID, Metadata: x.Metadata, State: s.podState(ctx, sb, x, infras), CreatedAt: sb.Created.UnixNano(),
			Labels: x.Labels, Annotations: x.Annotations, RuntimeHandler: x.RuntimeHandler,
		}
		if f != nil {
			if f.Id != "" && !strings.HasPrefix(sb.ID, f.Id) {
				continue
			}
			if f.State != nil && f.State.State != p.State {
				continue
			}
			if !labelsMatch(x.Labels, f.LabelSelector) {
				continue
			}
		}
		out = append(out, p)
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

// labelsMatch says whether labels hold every key=value of sel.
func labelsMatch(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// StreamPodSandboxes is the streaming form of ListPodSandbox (KEP 5825),
// which kubelet does not use yet.
func (s *Server) StreamPodSandboxes(req *runtimeapi.StreamPodSandboxesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxesResponse]) error {
	return notImplemented("StreamPodSandboxes")
}

// UpdatePodSandboxResources is kubelet's notice of an in-place pod resize;
// kubelet goes on without it (it updates each container's resources).
func (s *Server) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	return nil, notImplemented("UpdatePodSandboxResources")
}

// CheckpointPod and RestorePod need CRIU, which fails `criu check` on the
// kernels Berth is tested on.
func (s *Server) CheckpointPod(ctx context.Context, req *runtimeapi.CheckpointPodRequest) (*runtimeapi.CheckpointPodResponse, error) {
	return nil, notImplemented("CheckpointPod")
}

func (s *Server) RestorePod(ctx context.Context, req *runtimeapi.RestorePodRequest) (*runtimeapi.RestorePodResponse, error) {
	return nil, notImplemented("RestorePod")
}
