package oci

import (
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/berth-project/berth/internal/secmon/landlock"
)

// Features is the OCI features document `berth-runtime features` prints:
// what this runtime understands, so callers such as containerd and Podman
// can choose options it supports.
func Features() *features.Features {
	t := true
	var mountOpts []string
	for o := range mountFlags {
		mountOpts = append(mountOpts, o)
	}
	for o := range propagationFlags {
		mountOpts = append(mountOpts, o)
	}
	for o := range recursiveAttrs {
		mountOpts = append(mountOpts, o)
	}
	mountOpts = append(mountOpts, "bind", "rbind")
	sort.Strings(mountOpts)
	rl := RlimitNames()
	sort.Strings(rl)
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  mountOpts,
		Linux: &features.Linux{
			Namespaces:   []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			Capabilities: KnownCapabilities(),
			Cgroup: &features.Cgroup{
				V1: &t, V2: &t, Systemd: &t, SystemdUser: &t, Rdma: &t,
			},
			Apparmor:        &features.Apparmor{Enabled: &[]bool{false}[0]},
			Selinux:         &features.Selinux{Enabled: &[]bool{false}[0]},
			IntelRdt:        &features.IntelRdt{Enabled: &[]bool{false}[0]},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &t}},
		},
		Annotations: map[string]string{
			"org.opencontainers.runtime-spec.features.rlimits": joinComma(rl),
			// The monitor's Landlock plan (internal/runtime/landlock_linux.go).
			landlock.Annotation: landlock.FeatureValue,
		},
	}
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}
