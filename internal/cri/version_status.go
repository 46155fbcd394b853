package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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

// networkPlugins are the CNI plugins pod networks are built from.
var networkPlugins = []string{"bridge", "host-local"}

// Status reports the runtime ready (the server answers, so the store is
// open) and the network ready when the CNI plugins pods need are found.
func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	network := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if missing := s.missingPlugins(); len(missing) > 0 {
		network.Status = false
		network.Reason = "NetworkPluginNotReady"
		network.Message = fmt.Sprintf("CNI plugins %s not found in %s", strings.Join(missing, ", "), strings.Join(s.cniPluginDirs, ", "))
	}
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		network,
	}}}, nil
}

// missingPlugins are the networkPlugins no plugin directory holds as an
// executable file.
func (s *Server) missingPlugins() []string {
	var missing []string
	for _, p := range networkPlugins {
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

// RuntimeConfig tells kubelet the cgroup driver: Berth names cgroups as
// paths (/berth/<id>), the cgroupfs driver's way.
func (s *Server) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{
		CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS,
	}}, nil
}

// UpdateRuntimeConfig will carry the pod CIDR to the pod networks.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	return nil, notImplemented("UpdateRuntimeConfig")
}
