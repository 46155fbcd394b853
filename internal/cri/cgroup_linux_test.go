package cri

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
)

// TestCgroupParentCgroupfs: with the cgroupfs driver (the default, and
// what RuntimeConfig says), a pod's containers go under kubelet's cgroup
// parent path; a systemd slice as the parent (a kubelet with cgroupDriver
// systemd) and a parent with .. are refused with InvalidArgument naming
// the cgroup parent, leaving no pod. The systemd driver itself is tested
// in test/vm's systemd VM (TestSystemdBerthd).
func TestCgroupParentCgroupfs(t *testing.T) {
	e := newStreamEnv(t)
	ctx := e.ctx
	rc, err := e.runtime.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if err != nil || rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_CGROUPFS || e.engine.CgroupDriver() != engine.CgroupDriverCgroupfs {
		t.Fatalf("RuntimeConfig: %v %v; want cgroupfs", rc, err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	top := "berth-test-" + hex.EncodeToString(b)
	parent := "/" + top + "/pod1"
	// The runtime removes the container's cgroup; the parents are ours
	// (kubelet's, in real life).
	t.Cleanup(func() {
		for _, pat := range []string{"/sys/fs/cgroup/*" + parent, "/sys/fs/cgroup" + parent, "/sys/fs/cgroup/*/" + top, "/sys/fs/cgroup/" + top} {
			dirs, _ := filepath.Glob(pat)
			for _, d := range dirs {
				if err := os.Remove(d); err != nil {
					t.Errorf("remove the test's cgroup %s: %v", d, err)
				}
			}
		}
	})
	podCfg := func(name, parent string) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "ns", Uid: "uid-" + name},
			Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: parent, SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			}},
		}
	}
	for _, bad := range []string{"kubepods-burstable-pod1.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice", "/kubepods/../../x"} {
		_, err := e.runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg("bad", bad)})
		wantCode(t, err, codes.InvalidArgument, "cgroup parent "+bad)
		if err != nil && !strings.Contains(err.Error(), "cgroup parent") {
			t.Errorf("cgroup parent %s: the error does not name it: %v", bad, err)
		}
	}
	if l, err := e.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(l.Items) != 0 {
		t.Errorf("refused pods left %v (%v)", l.GetItems(), err)
	}

	cfg := podCfg("good", parent)
	run, err := e.runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: run.PodSandboxId, SandboxConfig: cfg, Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: streamTestImage}, Command: []string{"sleep", "1000"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	in, err := e.engine.Inspect(ctx, c.ContainerId)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", in.State.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if want := parent + "/" + c.ContainerId; !strings.Contains(string(self), want) {
		t.Errorf("the container's init is in\n%s\nwant %s", self, want)
	}
	if _, err := e.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
}
