package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
)

// runtimeAPIVersion is the CRI version served.
const runtimeAPIVersion = "v1"

// Version names the runtime and the CRI version it speaks.
func (s *Server) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       "berth",
		RuntimeVersion:    s.version,
		RuntimeApiVersion: runtimeAPIVersion,
	}, nil
}

// berthPodsPlugins are the CNI plugins Berth's own pod network uses.
var berthPodsPlugins = []string{"bridge", "host-local", "portmap", "firewall", "tuning"}

// podNetworkPlugins are the plugins the pod network needs: those of the
// operator's first conflist, else those of berth-pods.
func (s *Server) podNetworkPlugins() []string {
	for _, dir := range s.cniConfDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents { // ReadDir sorts by name
			if !strings.HasSuffix(e.Name(), ".conflist") {
				continue
			}
			var doc struct {
				Plugins []struct {
					Type string `json:"type"`
					IPAM struct {
						Type string `json:"type"`
					} `json:"ipam"`
				} `json:"plugins"`
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil || json.Unmarshal(b, &doc) != nil || len(doc.Plugins) == 0 {
				continue
			}
			var out []string
			for _, p := range doc.Plugins {
				if p.Type != "" {
					out = append(out, p.Type)
				}
				if p.IPAM.Type != "" {
					out = append(out, p.IPAM.Type)
				}
			}
			return out
		}
	}
	return berthPodsPlugins
}

// Status reports the runtime ready (the server answers, so the store is
// open) and the network ready when the CNI plugins pods need are found,
// and each runtime handler with its features.
func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	network := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if missing := s.missingPlugins(); len(missing) > 0 {
		network.Status = false
		network.Reason = "NetworkPluginNotReady"
		network.Message = fmt.Sprintf("CNI plugins %s not found in %s", strings.Join(missing, ", "), strings.Join(s.cniPluginDirs, ", "))
	}
	resp := &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		network,
	}}}
	// The default handler ("") first, then each named one. Recursive
	// read-only mounts are not offered yet; user namespaces by
	// berth-runtime when they work here (userNSHandler).
	resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: s.userNSHandler("")}})
	for _, r := range s.runtimes {
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{Name: r, Features: &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: s.userNSHandler(r)}})
	}
	resp.Features = &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true}
	if req.Verbose {
		resp.Info = map[string]string{"podSubnet": s.currentPodSubnet(), "runtimes": strings.Join(s.runtimes, ",")}
	}
	return resp, nil
}

func (s *Server) currentPodSubnet() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.podSubnet
}

// missingPlugins are the networkPlugins no plugin directory holds as an
// executable file.
func (s *Server) missingPlugins() []string {
	var missing []string
	for _, p := range s.podNetworkPlugins() {
		if strings.ContainsAny(p, "/\x00") || p == ".." {
			missing = append(missing, p)
			continue
		}
		found := false
		for _, dir := range s.cniPluginDirs {
			if fi, err := os.Stat(filepath.Join(dir, p)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, p)
		}
	}
	return missing
}

// RuntimeConfig tells kubelet the engine's cgroup driver (berthd's
// --cgroup-driver): kubelet checks it matches its own cgroupDriver, and
// names pods' cgroup parents that way (/kubepods/burstable/pod<uid> or
// kubepods-burstable-pod<uid>.slice).
func (s *Server) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	driver := runtimeapi.CgroupDriver_CGROUPFS
	if s.engine != nil && s.engine.CgroupDriver() == engine.CgroupDriverSystemd {
		driver = runtimeapi.CgroupDriver_SYSTEMD
	}
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{
		CgroupDriver: driver,
	}}, nil
}

// UpdateRuntimeConfig takes the node's pod CIDR from kubelet: Berth's own
// pod network (berth-pods) uses it from then on. Made with another subnet
// before, it is remade when no pod uses it; pods running keep their
// addresses until they go.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
	}
	// Kubelet may send "IPv4CIDR,IPv6CIDR": Berth's bridge takes the IPv4 one.
	var v4 string
	for _, c := range strings.Split(cidr, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "UpdateRuntimeConfig: runtime_config.network_config.pod_cidr %q: %v", cidr, err)
		}
		if p.Addr().Is4() && v4 == "" {
			v4 = p.Masked().String()
		}
	}
	if v4 == "" {
		return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
	}
	s.mu.Lock()
	changed := s.podSubnet != v4
	s.podSubnet = v4
	s.mu.Unlock()
	if changed && s.engine != nil {
		s.remakePodNetwork(ctx, v4)
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// remakePodNetwork removes berth-pods when it has another subnet and no
// pod uses it; the next pod makes it again with the new one.
func (s *Server) remakePodNetwork(ctx context.Context, subnet string) {
	n, err := s.engine.NetworkInspect(ctx, berthPodsNetwork)
	if err != nil || len(n.IPAM.Config) == 0 || n.IPAM.Config[0].Subnet == subnet {
		return
	}
	sbs, err := s.engine.ListSandboxes(ctx)
	if err != nil {
		return
	}
	for _, sb := range sbs {
		if sb.Config.Network == berthPodsNetwork && sb.State == engine.SandboxReady {
			s.log.Info("pod CIDR changed; berth-pods keeps its subnet while pods use it", "old", n.IPAM.Config[0].Subnet, "new", subnet)
			return
		}
	}
	if err := s.engine.NetworkRemove(ctx, berthPodsNetwork); err != nil {
		s.log.Warn("remake berth-pods with the new pod CIDR", "err", err)
	}
}
