package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/oci"
)

func TestLoadLifecycleKeepsWhatStartAndDeleteUse(t *testing.T) {
	r := &Runtime{Root: t.TempDir()}
	spec := oci.DefaultSpec()
	limit := int64(64 << 20)
	spec.Linux.CgroupsPath = "/test/lifecycle"
	spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}
	spec.Annotations = map[string]string{"a": "b"}
	spec.Hooks = &specs.Hooks{
		Poststart: []specs.Hook{{Path: "/bin/true"}},
		Poststop:  []specs.Hook{{Path: "/bin/false", Args: []string{"false", "x"}}},
	}
	p := &persisted{ID: "c1", Bundle: "/b", Pid: 42, StartTime: 7, Spec: spec,
		CgroupPaths: map[string]string{"memory": "/sys/fs/cgroup/memory/test/lifecycle"}}
	if err := os.Mkdir(filepath.Join(r.Root, p.ID), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.save(p); err != nil {
		t.Fatal(err)
	}
	got, err := r.loadLifecycle(p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != p.ID || got.Pid != p.Pid || got.StartTime != p.StartTime || got.Bundle != p.Bundle ||
		!reflect.DeepEqual(got.CgroupPaths, p.CgroupPaths) {
		t.Errorf("state fields: got %+v, want %+v", got, p)
	}
	if !reflect.DeepEqual(got.Spec.Hooks, spec.Hooks) || !reflect.DeepEqual(got.Spec.Annotations, spec.Annotations) {
		t.Errorf("hooks or annotations lost: %+v", got.Spec)
	}
	if got.Spec.Linux.CgroupsPath != spec.Linux.CgroupsPath || !reflect.DeepEqual(got.Spec.Linux.Resources, spec.Linux.Resources) {
		t.Errorf("cgroup config lost: %+v", got.Spec.Linux)
	}
	if _, err := r.loadLifecycle("missing"); err == nil {
		t.Error("a missing container loaded")
	}
}

func TestCheckID(t *testing.T) {
	long := strings.Repeat("a", 1024)
	for _, id := range []string{"a", "A-b.c_d+e", "0", "...", long} {
		if err := checkID(id); err != nil {
			t.Errorf("checkID(%q) = %v, want valid", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "a/b", "a b", "é", "a\n", "a:b", long + "a"} {
		if err := checkID(id); err == nil {
			t.Errorf("checkID(%q) accepted an invalid id", id)
		}
	}
}
