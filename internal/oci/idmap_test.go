package oci

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestValidateIDMapOption(t *testing.T) {
	base := func(userns bool, m specs.Mount) *specs.Spec {
		s := &specs.Spec{
			Version: specs.Version, Root: &specs.Root{Path: t.TempDir()},
			Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"},
			Linux:   &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}}},
			Mounts:  []specs.Mount{m},
		}
		if userns {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
			s.Linux.GIDMappings = s.Linux.UIDMappings
		}
		return s
	}
	bind := specs.Mount{Destination: "/data", Source: "/tmp", Options: []string{"rbind", "idmap"}}
	if err := Validate(base(true, bind)); err != nil {
		t.Errorf("idmap without mappings in a user namespace: %v", err)
	}
	if err := Validate(base(false, bind)); err == nil || !strings.Contains(err.Error(), "mounts[0].options") {
		t.Errorf("idmap without mappings and without a user namespace: %v, want an error naming mounts[0].options", err)
	}
	tmpfs := specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"ridmap"}}
	if err := Validate(base(true, tmpfs)); err == nil || !strings.Contains(err.Error(), "bind mounts only") {
		t.Errorf("ridmap on a tmpfs: %v, want a refusal", err)
	}
	if !ImpliedIDMap(bind) || ImpliedIDMap(specs.Mount{Options: []string{"idmap"}, UIDMappings: s1(), GIDMappings: s1()}) || ImpliedIDMap(specs.Mount{Options: []string{"rbind"}}) {
		t.Error("ImpliedIDMap: want true only for idmap/ridmap without mappings")
	}
}

func s1() []specs.LinuxIDMapping { return []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1, Size: 1}} }
