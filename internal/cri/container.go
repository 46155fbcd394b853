package cri

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/secmon"
)

// Containers are the engine's containers joined to a pod's sandbox. What
// only the CRI knows of one is kept with the engine's record as
// containerExtra.

// containerExtra is the CRI's part of a container record.
type containerExtra struct {
	Metadata    *runtimeapi.ContainerMetadata `json:"metadata"`
	Labels      map[string]string             `json:"labels,omitempty"`
	Annotations map[string]string             `json:"annotations,omitempty"`
	Image       string                        `json:"image"`    // as kubelet named it
	ImageRef    string                        `json:"imageRef"` // repo digest, or the ID
	ImageID     string                        `json:"imageID"`
	Mounts      []*runtimeapi.Mount           `json:"mounts,omitempty"`
	User        *runtimeapi.ContainerUser     `json:"user,omitempty"`
}

// containerName is the engine's unique name for a container attempt.
func containerName(m *runtimeapi.ContainerMetadata, pod *runtimeapi.PodSandboxMetadata) string {
	return engineName(fmt.Sprintf("k8s_%s_%s_%s_%s_%d", m.Name, pod.Name, pod.Namespace, pod.Uid, m.Attempt))
}

// engineName fits a CRI name into the engine's (at most 253 characters):
// a longer one keeps its start and ends with a hash of the whole, so it
// stays unique and readable.
func engineName(n string) string {
	const maxName = 253
	if len(n) <= maxName {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return n[:maxName-17] + "_" + hex.EncodeToString(sum[:8])
}

// CreateContainer creates a container in a ready pod.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	if err := s.needEngine("CreateContainer"); err != nil {
		return nil, err
	}
	c := req.GetConfig()
	switch {
	case req.PodSandboxId == "":
		return nil, status.Error(codes.InvalidArgument, "CreateContainer: pod_sandbox_id is empty")
	case c == nil:
		return nil, status.Error(codes.InvalidArgument, "CreateContainer: config is missing")
	case c.GetMetadata().GetName() == "":
		return nil, status.Error(codes.InvalidArgument, "CreateContainer: config.metadata.name is empty")
	case c.GetImage().GetImage() == "":
		return nil, status.Error(codes.InvalidArgument, "CreateContainer: config.image.image is empty")
	}
	sb, sx, err := s.criSandbox(ctx, "CreateContainer", req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	if sb.State != engine.SandboxReady {
		return nil, status.Errorf(codes.FailedPrecondition, "CreateContainer: pod sandbox %s is not ready", sb.ID)
	}
	img, err := s.imageByName(ctx, c.Image.Image)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "CreateContainer: config.image.image %q: the image is not on this node (pull it first)", c.Image.Image)
		}
		return nil, grpcError(fmt.Errorf("CreateContainer: config.image.image %q: %w", c.Image.Image, err))
	}
	opts, x, err := s.createOptions(ctx, c, sb, sx)
	if err != nil {
		return nil, err
	}
	opts.Config.Image = img.Id
	if sx.SandboxMode == SandboxModeInfra {
		infraID, err := s.infraOf(ctx, sb)
		if err != nil {
			return nil, err
		}
		joinInfra(&opts, infraID, sx, c.Metadata.Name, c.Image.Image)
	}
	x.Image, x.ImageID, x.ImageRef = c.Image.Image, img.Id, img.Id
	if len(img.RepoDigests) > 0 {
		x.ImageRef = img.RepoDigests[0]
	}
	if opts.Extra, err = json.Marshal(x); err != nil {
		return nil, grpcError(err)
	}
	ctr, err := s.engine.Create(ctx, opts)
	if err != nil {
		return nil, grpcError(fmt.Errorf("CreateContainer %s in pod %s/%s: %w", c.Metadata.Name, sx.Metadata.Namespace, sx.Metadata.Name, err))
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: ctr.ID}, nil
}

// createOptions translates a CRI container config into the engine's.
func (s *Server) createOptions(ctx context.Context, c *runtimeapi.ContainerConfig, sb engine.Sandbox, sx sandboxExtra) (engine.CreateOptions, containerExtra, error) {
	bad := func(format string, a ...any) error {
		return status.Errorf(codes.InvalidArgument, "CreateContainer: "+format, a...)
	}
	x := containerExtra{Metadata: c.Metadata, Labels: c.Labels, Annotations: c.Annotations}
	o := engine.CreateOptions{
		Name:      containerName(c.Metadata, sx.Metadata),
		SandboxID: sb.ID,
		Pull:      "never",
	}
	cfg := &o.Config
	hc := &o.HostConfig
	cfg.Entrypoint = nil
	if len(c.Command) > 0 {
		cfg.Entrypoint = c.Command
	}
	if len(c.Args) > 0 {
		cfg.Cmd = c.Args
	}
	cfg.WorkingDir = c.WorkingDir
	for i, kv := range c.Envs {
		if kv.Key == "" || strings.ContainsAny(kv.Key, "=\x00") {
			return o, x, bad("config.envs[%d]: invalid key %q", i, kv.Key)
		}
		cfg.Env = append(cfg.Env, kv.Key+"="+string(kv.Value))
	}
	cfg.Tty, cfg.OpenStdin, cfg.StdinOnce = c.Tty, c.Stdin, c.StdinOnce
	cfg.AttachStdin, cfg.AttachStdout, cfg.AttachStderr = c.Stdin, true, true
	hc.Runtime = sb.Config.Runtime
	// Runtime monitoring rules a pod asks for by annotation apply to each
	// of its containers (internal/secmon reads the label).
	if rules := sx.Annotations[secmon.AnnotationRules]; rules != "" {
		cfg.Labels = map[string]string{secmon.AnnotationRules: rules}
	}
	if c.LogPath != "" {
		if sx.LogDirectory == "" {
			return o, x, bad("config.log_path %q is given but the pod has no log_directory", c.LogPath)
		}
		p := filepath.Join(sx.LogDirectory, c.LogPath)
		if !strings.HasPrefix(p, filepath.Clean(sx.LogDirectory)+"/") {
			return o, x, bad("config.log_path %q leaves the pod's log directory", c.LogPath)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return o, x, status.Errorf(codes.Internal, "CreateContainer: create the log directory: %v", err)
		}
		o.LogPath = p
	}
	for i, m := range c.Mounts {
		if m.Image != nil && m.Image.Image != "" {
			// An image volume (KEP-4639): kubelet pulled the image;
			// the engine mounts a read-only view of it.
			if !filepath.IsAbs(m.ContainerPath) {
				return o, x, bad("config.mounts[%d]: container_path %q must be absolute", i, m.ContainerPath)
			}
			hc.Mounts = append(hc.Mounts, engine.Mount{Type: "image", Source: m.Image.Image, Target: m.ContainerPath, ReadOnly: true, ImageSubPath: m.ImageSubPath})
			x.Mounts = append(x.Mounts, m)
			continue
		}
		if !filepath.IsAbs(m.ContainerPath) || !filepath.IsAbs(m.HostPath) {
			return o, x, bad("config.mounts[%d]: container_path %q and host_path %q must be absolute", i, m.ContainerPath, m.HostPath)
		}
		if slicesContains(strings.Split(m.HostPath, "/"), "..") {
			return o, x, bad("config.mounts[%d]: host_path %q climbs with ..", i, m.HostPath)
		}
		if _, err := os.Lstat(m.HostPath); errors.Is(err, os.ErrNotExist) {
			// containerd makes a missing host path a directory, as
			// kubelet's hostPath DirectoryOrCreate expects of runtimes.
			if err := os.MkdirAll(m.HostPath, 0o755); err != nil {
				return o, x, status.Errorf(codes.Internal, "CreateContainer: config.mounts[%d]: create host_path %s: %v", i, m.HostPath, err)
			}
		}
		prop := "rprivate"
		switch m.Propagation {
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			prop = "rslave"
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			if !sx.Privileged {
				return o, x, bad("config.mounts[%d]: bidirectional propagation needs a privileged pod", i)
			}
			prop = "rshared"
		}
		idmap, err := mountIDMap(i, m, sx)
		if err != nil {
			return o, x, err
		}
		hc.Mounts = append(hc.Mounts, engine.Mount{Type: "bind", Source: m.HostPath, Target: m.ContainerPath, ReadOnly: m.Readonly, BindPropagation: prop, IDMap: idmap})
		x.Mounts = append(x.Mounts, m)
	}
	for i, d := range c.Devices {
		m := engine.DeviceMapping{PathOnHost: d.HostPath, PathInContainer: d.ContainerPath, CgroupPermissions: d.Permissions}
		if m.CgroupPermissions == "" {
			m.CgroupPermissions = "rwm"
		}
		if err := m.Validate(); err != nil {
			return o, x, bad("config.devices[%d]: %v", i, err)
		}
		hc.Devices = append(hc.Devices, m)
	}
	lin := c.GetLinux()
	if r := lin.GetResources(); r != nil {
		res, adj, err := s.resources(r)
		if err != nil {
			return o, x, err
		}
		hc.Resources, hc.OomScoreAdj = res, adj
	}
	// Kubernetes' identity: the primary group among the supplementary
	// ones (Merge unless the pod says Strict).
	hc.SupplementalGroupsPolicy = "Merge"
	sc := lin.GetSecurityContext()
	if sc != nil {
		if sc.Privileged && !sx.Privileged {
			return o, x, bad("config.linux.security_context.privileged: the pod is not privileged")
		}
		hc.Privileged = sc.Privileged
		hc.ReadonlyRootfs = sc.ReadonlyRootfs
		if caps := sc.Capabilities; caps != nil {
			hc.CapAdd, hc.CapDrop = caps.AddCapabilities, caps.DropCapabilities
		}
		user := sc.RunAsUsername
		if sc.RunAsUser != nil {
			user = strconv.FormatInt(sc.RunAsUser.Value, 10)
		}
		if sc.RunAsGroup != nil {
			if user == "" {
				return o, x, bad("config.linux.security_context.run_as_group is set without run_as_user or run_as_username")
			}
			user += ":" + strconv.FormatInt(sc.RunAsGroup.Value, 10)
		}
		cfg.User = user
		if sc.SupplementalGroupsPolicy == runtimeapi.SupplementalGroupsPolicy_Strict {
			hc.SupplementalGroupsPolicy = "Strict"
		}
		for _, g := range sc.SupplementalGroups {
			hc.GroupAdd = append(hc.GroupAdd, strconv.FormatInt(g, 10))
		}
		if sc.NoNewPrivs {
			hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges")
		}
		if len(sc.MaskedPaths) > 0 {
			hc.MaskedPaths = sc.MaskedPaths
		}
		if len(sc.ReadonlyPaths) > 0 {
			hc.ReadonlyPaths = sc.ReadonlyPaths
		}
		if ns := sc.NamespaceOptions; ns != nil {
			switch ns.Pid {
			case runtimeapi.NamespaceMode_TARGET:
				if ns.TargetId == "" {
					return o, x, bad("config.linux.security_context.namespace_options: pid TARGET without target_id")
				}
				hc.PidMode = "container:" + ns.TargetId
			}
		}
	}
	// With no security context the profile is unset too (the getters
	// take a nil one).
	opt, err := seccompOption(sc.GetSeccomp(), sc.GetSeccompProfilePath(), s.seccompEmptyUnconfined)
	if err != nil {
		return o, x, err
	}
	if opt != "" {
		hc.SecurityOpt = append(hc.SecurityOpt, opt)
	}
	o.Extra = nil
	return o, x, nil
}

// resources translates the CRI's resources; oom_score_adj is clamped to
// this process's own (as containerd's restrict_oom_score_adj), because
// lowering it needs CAP_SYS_RESOURCE, which many hosts withhold.
func (s *Server) resources(r *runtimeapi.LinuxContainerResources) (engine.Resources, int, error) {
	res := engine.Resources{
		CPUPeriod:  r.CpuPeriod,
		CPUQuota:   r.CpuQuota,
		CPUShares:  r.CpuShares,
		Memory:     r.MemoryLimitInBytes,
		CPUSetCPUs: r.CpusetCpus,
		CPUSetMems: r.CpusetMems,
	}
	if r.MemorySwapLimitInBytes > 0 {
		res.MemorySwap = r.MemorySwapLimitInBytes
	}
	if r.CpuQuota == -1 {
		res.CPUQuota = 0
	}
	adj := int(r.OomScoreAdj)
	if own, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(own))); err == nil && adj < n {
			adj = n
		}
	}
	return res, adj, nil
}

// seccompOption turns the CRI's seccomp profile into the engine's
// --security-opt. An unset profile is the runtime's default, as CRI-O's
// seccomp_use_default_when_empty: a pod gets Docker's filter unless it
// asks for none. emptyUnconfined (berthd
// --seccomp-use-default-when-empty=false) takes an unset profile as the
// CRI's text does, unconfined, as containerd does.
func seccompOption(p *runtimeapi.SecurityProfile, legacy string, emptyUnconfined bool) (string, error) {
	if p == nil {
		switch {
		case legacy == "" && emptyUnconfined:
			return "seccomp=unconfined", nil
		case legacy == "" || legacy == "runtime/default" || legacy == "docker/default":
			return "", nil
		case legacy == "unconfined":
			return "seccomp=unconfined", nil
		case strings.HasPrefix(legacy, "localhost/"):
			p = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(legacy, "localhost/")}
		default:
			return "", status.Errorf(codes.InvalidArgument, "CreateContainer: seccomp_profile_path %q: want runtime/default, unconfined or localhost/PATH", legacy)
		}
	}
	switch p.ProfileType {
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return "", nil
	case runtimeapi.SecurityProfile_Unconfined:
		return "seccomp=unconfined", nil
	case runtimeapi.SecurityProfile_Localhost:
		if !filepath.IsAbs(p.LocalhostRef) {
			return "", status.Errorf(codes.InvalidArgument, "CreateContainer: seccomp localhost profile %q is not an absolute path", p.LocalhostRef)
		}
		if _, err := os.Stat(p.LocalhostRef); err != nil {
			return "", status.Errorf(codes.InvalidArgument, "CreateContainer: seccomp localhost profile: %v", err)
		}
		return "seccomp=" + p.LocalhostRef, nil
	}
	return "", status.Errorf(codes.InvalidArgument, "CreateContainer: seccomp profile type %v is unknown", p.ProfileType)
}

func slicesContains(s []string, v string) bool {
	for _, e := range s {
		if e == v {
			return true
		}
	}
	return false
}

// StartContainer starts a created container.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	if err := s.needEngine("StartContainer"); err != nil {
		return nil, err
	}
	if req.ContainerId == "" {
		return nil, status.Error(codes.InvalidArgument, "StartContainer: container_id is empty")
	}
	c, err := s.engine.Inspect(ctx, req.ContainerId)
	if err != nil {
		return nil, grpcError(fmt.Errorf("StartContainer %s: %w", req.ContainerId, err))
	}
	if c.State.Status != "created" {
		return nil, status.Errorf(codes.FailedPrecondition, "StartContainer %s: the container is %s, not created", c.ID, c.State.Status)
	}
	if _, err := s.engine.Start(ctx, c.ID); err != nil {
		return nil, grpcError(fmt.Errorf("StartContainer %s: %w", c.ID, err))
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer stops a container, killing it after timeout seconds; a
// container already stopped is not an error.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	if err := s.needEngine("StopContainer"); err != nil {
		return nil, err
	}
	if req.ContainerId == "" {
		return nil, status.Error(codes.InvalidArgument, "StopContainer: container_id is empty")
	}
	timeout := time.Duration(max(req.Timeout, 0)) * time.Second
	// A container already gone is stopped: the CRI asks Stop to be
	// idempotent (critest: "should not return an error if not found").
	if err := s.engine.Stop(ctx, req.ContainerId, &timeout); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, grpcError(fmt.Errorf("StopContainer %s: %w", req.ContainerId, err))
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer removes a container, killing it if it runs; one already
// gone is not an error.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	if err := s.needEngine("RemoveContainer"); err != nil {
		return nil, err
	}
	if req.ContainerId == "" {
		return nil, status.Error(codes.InvalidArgument, "RemoveContainer: container_id is empty")
	}
	err := s.engine.Remove(ctx, req.ContainerId, engine.RemoveOptions{Force: true, Volumes: true})
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, grpcError(fmt.Errorf("RemoveContainer %s: %w", req.ContainerId, err))
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

// containerExtraOf decodes the CRI's part of a container record.
func containerExtraOf(c engine.Container) (containerExtra, bool) {
	var x containerExtra
	if len(c.Extra) == 0 || json.Unmarshal(c.Extra, &x) != nil || x.Metadata == nil {
		return x, false
	}
	return x, true
}

func containerState(st engine.State) runtimeapi.ContainerState {
	switch st.Status {
	case "created":
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case "running", "restarting", "paused":
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case "exited", "dead":
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ListContainers lists the pods' containers, filtered by ID (or unique
// prefix), state, pod and labels.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	if err := s.needEngine("ListContainers"); err != nil {
		return nil, err
	}
	cs, err := s.criContainers(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	f := req.GetFilter()
	out := []*runtimeapi.Container{}
	for _, c := range cs {
		x, _ := containerExtraOf(c)
		item := &runtimeapi.Container{
			Id: c.ID, PodSandboxId: c.SandboxID, Metadata: x.Metadata,
			Image: &runtimeapi.ImageSpec{Image: x.Image}, ImageRef: x.ImageRef, ImageId: x.ImageID,
			State: containerState(c.State), CreatedAt: c.Created.UnixNano(),
			Labels: x.Labels, Annotations: x.Annotations,
		}
		if f != nil {
			if f.Id != "" && !strings.HasPrefix(c.ID, f.Id) {
				continue
			}
			if f.PodSandboxId != "" && !strings.HasPrefix(c.SandboxID, f.PodSandboxId) {
				continue
			}
			if f.State != nil && f.State.State != item.State {
				continue
			}
			if !labelsMatch(x.Labels, f.LabelSelector) {
				continue
			}
		}
		out = append(out, item)
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

// criContainers are the engine's containers the CRI made, with their
// state, from one read of the engine's store.
func (s *Server) criContainers(ctx context.Context) ([]engine.Container, error) {
	all, err := s.engine.InspectAll(ctx)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		if _, ok := containerExtraOf(c); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// criContainer finds a pod's container for rpc: InvalidArgument for an
// empty ID, NotFound for an unknown one or one the CRI did not make.
func (s *Server) criContainer(ctx context.Context, rpc, id string) (engine.Container, containerExtra, error) {
	if id == "" {
		return engine.Container{}, containerExtra{}, status.Errorf(codes.InvalidArgument, "%s: container_id is empty", rpc)
	}
	c, err := s.engine.Inspect(ctx, id)
	if err != nil {
		return engine.Container{}, containerExtra{}, grpcError(fmt.Errorf("%s %s: %w", rpc, id, err))
	}
	x, ok := containerExtraOf(c)
	if !ok {
		return engine.Container{}, containerExtra{}, status.Errorf(codes.NotFound, "%s: %s is not a pod's container", rpc, id)
	}
	return c, x, nil
}

// StreamContainers is the streaming form of ListContainers (KEP 5825),
// which kubelet does not use yet.
func (s *Server) StreamContainers(req *runtimeapi.StreamContainersRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamContainersResponse]) error {
	return notImplemented("StreamContainers")
}

// ContainerStatus reports a container as kubelet reads it.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if err := s.needEngine("ContainerStatus"); err != nil {
		return nil, err
	}
	c, x, err := s.criContainer(ctx, "ContainerStatus", req.ContainerId)
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: containerStatus(c, x)}
	if c.State.Running {
		resp.Status.User = processUser(c.State.Pid)
	}
	if req.Verbose {
		b, _ := json.Marshal(c)
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// containerStatus is c as the CRI reports it.
func containerStatus(c engine.Container, x containerExtra) *runtimeapi.ContainerStatus {
	st := &runtimeapi.ContainerStatus{
		Id: c.ID, Metadata: x.Metadata, State: containerState(c.State),
		CreatedAt: c.Created.UnixNano(), StartedAt: unixNano(c.State.StartedAt),
		Image: &runtimeapi.ImageSpec{Image: x.Image}, ImageRef: x.ImageRef, ImageId: x.ImageID,
		Labels: x.Labels, Annotations: x.Annotations, Mounts: x.Mounts, LogPath: c.LogPath,
	}
	if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
		st.FinishedAt = unixNano(c.State.FinishedAt)
		st.ExitCode = int32(c.State.ExitCode)
		switch {
		case c.State.OOMKilled:
			st.Reason = "OOMKilled"
		case c.State.ExitCode == 0:
			st.Reason = "Completed"
		default:
			st.Reason = "Error"
		}
		st.Message = c.State.Error
	}
	return st
}

// UpdateContainerResources changes a container's limits, live.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	if err := s.needEngine("UpdateContainerResources"); err != nil {
		return nil, err
	}
	if req.ContainerId == "" || req.Linux == nil {
		return nil, status.Error(codes.InvalidArgument, "UpdateContainerResources: container_id and linux are required")
	}
	res, _, err := s.resources(req.Linux)
	if err != nil {
		return nil, err
	}
	if err := s.engine.Update(ctx, req.ContainerId, res); err != nil {
		return nil, grpcError(fmt.Errorf("UpdateContainerResources %s: %w", req.ContainerId, err))
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog makes the container's monitor reopen its log (kubelet
// rotated it away).
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	if err := s.needEngine("ReopenContainerLog"); err != nil {
		return nil, err
	}
	if err := s.engine.ReopenLog(ctx, req.ContainerId); err != nil {
		return nil, grpcError(fmt.Errorf("ReopenContainerLog %s: %w", req.ContainerId, err))
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// CheckpointContainer needs CRIU, which fails `criu check` on the kernels
// Berth is tested on.
func (s *Server) CheckpointContainer(ctx context.Context, req *runtimeapi.CheckpointContainerRequest) (*runtimeapi.CheckpointContainerResponse, error) {
	return nil, notImplemented("CheckpointContainer")
}

// mountIDMap says whether mount i is to be idmapped: kubelet gives the
// volumes of a pod with a user namespace the pod's own mappings, so that
// the files are owned inside by the IDs they have on the host.
func mountIDMap(i int, m *runtimeapi.Mount, sx sandboxExtra) (bool, error) {
	if len(m.UidMappings) == 0 && len(m.GidMappings) == 0 {
		return false, nil
	}
	u, err := podUserNS(sx.Namespaces.GetUsernsOptions())
	if err != nil || u == nil {
		return false, status.Errorf(codes.InvalidArgument, "CreateContainer: config.mounts[%d].uid_mappings: the pod has no user namespace to map with", i)
	}
	if !sameIDMap(m.UidMappings, u.UIDMappings) || !sameIDMap(m.GidMappings, u.GIDMappings) {
		return false, status.Errorf(codes.InvalidArgument, "CreateContainer: config.mounts[%d].uid_mappings/gid_mappings: only the pod's own mappings are supported", i)
	}
	return true, nil
}
