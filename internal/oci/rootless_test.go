package oci

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestToRootless(t *testing.T) {
	s := DefaultSpec()
	ToRootless(s, 1000, 1001)
	var types []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		types = append(types, ns.Type)
	}
	if slices.Contains(types, specs.NetworkNamespace) || !slices.Contains(types, specs.UserNamespace) {
		t.Errorf("namespaces %v: want a user namespace and no network namespace", types)
	}
	if m := s.Linux.UIDMappings; len(m) != 1 || m[0].HostID != 1000 || m[0].ContainerID != 0 || m[0].Size != 1 {
		t.Errorf("uid mappings %+v, want host 1000 as root", m)
	}
	if m := s.Linux.GIDMappings; len(m) != 1 || m[0].HostID != 1001 {
		t.Errorf("gid mappings %+v, want host 1001 as root", m)
	}
	for _, m := range s.Mounts {
		if m.Type == "cgroup" || m.Type == "sysfs" {
			t.Errorf("mount %s of type %s: an unprivileged user cannot mount it", m.Destination, m.Type)
		}
		for _, o := range m.Options {
			if len(o) > 4 && o[:4] == "gid=" {
				t.Errorf("mount %s keeps %s", m.Destination, o)
			}
		}
	}
	if s.Linux.Resources != nil {
		t.Errorf("resources %+v: want none", s.Linux.Resources)
	}
}
