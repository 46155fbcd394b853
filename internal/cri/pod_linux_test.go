package cri

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The pod RPCs through gRPC, as kubelet calls them: the CRI's idempotence
// (Stop and Remove of what is gone succeed), the states, filters and
// namespaces a pod's containers share, and the pinned namespaces gone with
// the pod. The pods here have no network (Berth's engine-level tests and
// test/e2e's crictl tests cover CNI).
func TestPodSandboxLifecycle(t *testing.T) {
	e := newStreamEnv(t)
	ctx := e.ctx
	// No conflist and no berth-pods wanted: a pod on the host's network
	// has none to set up, so the test needs no CNI.
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "uid-1"},
		Hostname: "ignored-on-host-network",
		Labels:   map[string]string{"app": "x"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_POD},
		}},
	}
	run, err := e.runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	pod := run.PodSandboxId
	_, err = e.runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	wantCode(t, err, codes.AlreadyExists, "the same pod attempt twice")

	ctr := func(name string, cmd ...string) string {
		t.Helper()
		c, err := e.runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg, Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name}, Image: &runtimeapi.ImageSpec{Image: streamTestImage}, Command: cmd,
			Labels: map[string]string{"c": name},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			t.Fatal(err)
		}
		return c.ContainerId
	}
	a := ctr("a", "sleep", "1000")
	b := ctr("b", "sleep", "1001")
	_, err = e.runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: a})
	wantCode(t, err, codes.FailedPrecondition, "starting a running container")

	// One PID namespace: b sees a's sleep.
	out, err := e.runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: b, Cmd: []string{"ps", "-o", "args"}, Timeout: 10})
	if err != nil || !strings.Contains(string(out.Stdout), "sleep 1000") {
		t.Errorf("ps in b: %v %q; want a's process in the shared PID namespace", err, out.GetStdout())
	}
	// One IPC namespace: the same /proc/self/ns/ipc.
	nsOf := func(id string) string {
		out, err := e.runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"busybox", "readlink", "/proc/self/ns/ipc"}, Timeout: 10})
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out.Stdout))
	}
	// The containers' own processes, seen from the host.
	initNS := func(id string) string {
		c, err := e.engine.Inspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		ns, _ := os.Readlink("/proc/" + strconv.Itoa(c.State.Pid) + "/ns/ipc")
		return ns
	}
	self, _ := os.Readlink("/proc/self/ns/ipc")
	if na, nb := initNS(a), initNS(b); na != nb || na == "" || na == self {
		t.Errorf("IPC namespaces of the containers %q and %q, host %q: the pod's containers do not share one of their own", na, nb, self)
	}
	// And what a process exec'd into them sees.
	if na, nb := nsOf(a), nsOf(b); na != nb || na == "" || na == self {
		t.Errorf("IPC namespaces seen by ExecSync %q and %q, host %q", na, nb, self)
	}

	list, err := e.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		PodSandboxId: pod, LabelSelector: map[string]string{"c": "b"}}})
	if err != nil || len(list.Containers) != 1 || list.Containers[0].Id != b {
		t.Errorf("ListContainers by pod and label: %v %v", list.GetContainers(), err)
	}
	pods, err := e.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}, LabelSelector: map[string]string{"app": "x"}}})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Id != pod {
		t.Errorf("ListPodSandbox ready app=x: %v %v", pods.GetItems(), err)
	}

	sb, err := e.engine.InspectSandbox(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	st, err := e.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: a})
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("a after StopPodSandbox: %v %v", st.GetStatus().GetState(), err)
	}
	ps, err := e.runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil || ps.Status.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("pod after StopPodSandbox: %v %v", ps.GetStatus().GetState(), err)
	}
	if sb.PausePid == 0 || pauseRunning(sb.PausePid) {
		t.Errorf("the pause process (pid %d) of the shared PID namespace is not gone", sb.PausePid)
	}
	// On the host's network the pod has the host's UTS namespace too:
	// only its IPC namespace is pinned.
	if sb.IPCPath == "" || sb.UTSPath != "" {
		t.Errorf("pinned namespaces: ipc %q, uts %q; want an IPC one only", sb.IPCPath, sb.UTSPath)
	} else if _, err := os.Stat(sb.IPCPath); !os.IsNotExist(err) {
		t.Errorf("pinned namespace %s is still there after StopPodSandbox", sb.IPCPath)
	}
	_, err = e.runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg, Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "late"}, Image: &runtimeapi.ImageSpec{Image: streamTestImage}}})
	wantCode(t, err, codes.FailedPrecondition, "a container in a stopped pod")

	for i := 0; i < 2; i++ {
		if _, err := e.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
			t.Errorf("StopPodSandbox #%d: %v", i+2, err)
		}
		if _, err := e.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
			t.Errorf("RemovePodSandbox #%d: %v", i+1, err)
		}
		if _, err := e.runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: a}); err != nil {
			t.Errorf("RemoveContainer of a removed container: %v", err)
		}
		if _, err := e.runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: a}); err != nil {
			t.Errorf("StopContainer of a removed container: %v", err)
		}
	}
	_, err = e.runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
	wantCode(t, err, codes.NotFound, "the status of a removed pod")
	if _, err := os.Stat(filepath.Dir(sb.HostsPath)); !os.IsNotExist(err) {
		t.Errorf("the pod's directory %s is still there", filepath.Dir(sb.HostsPath))
	}
}

func pauseRunning(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.Contains(string(b), "--pause")
}
