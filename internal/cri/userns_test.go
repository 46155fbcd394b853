package cri

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The user namespace options kubelet sends are taken; anything else is
// InvalidArgument naming the field.
func TestPodUserNS(t *testing.T) {
	r := func(c, h, n uint32) []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{ContainerId: c, HostId: h, Length: n}}
	}
	pod := runtimeapi.NamespaceMode_POD
	for _, tc := range []struct {
		name string
		in   *runtimeapi.UserNamespace
		want string // "" when valid
		host bool   // the host's namespace (nil result)
	}{
		{"unset", nil, "", true},
		{"node", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}, "", true},
		{"kubelet", &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 65536, 65536), Gids: r(0, 65536, 65536)}, "", false},
		{"critest", &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 1000, 100000), Gids: r(0, 1000, 100000)}, "", false},
		{"node with ids", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE, Uids: r(0, 1000, 65536)}, "takes no uids", false},
		{"container", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, "userns_options.mode: CONTAINER", false},
		{"target", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, "userns_options.mode: TARGET", false},
		{"two", &runtimeapi.UserNamespace{Mode: pod, Uids: append(r(0, 1000, 100000), r(0, 2000, 100000)...), Gids: r(0, 1000, 100000)}, "uids: want one contiguous range, got 2", false},
		{"no gids", &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 1000, 100000)}, "gids: want one contiguous range, got 0", false},
		{"not root", &runtimeapi.UserNamespace{Mode: pod, Uids: r(1, 1000, 100000), Gids: r(0, 1000, 100000)}, "uids[0].container_id: 1", false},
		{"short", &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 1000, 100000), Gids: r(0, 1000, 10)}, "gids[0].length: 10", false},
		{"host root", &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 0, 65536), Gids: r(0, 1000, 65536)}, "uids[0].host_id: 0", false},
		{"wrap", &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 1<<32-100, 65536), Gids: r(0, 1000, 65536)}, "32-bit", false},
	} {
		u, err := podUserNS(tc.in)
		if tc.want == "" {
			if err != nil || (u == nil) != tc.host {
				t.Errorf("%s: %v, %v", tc.name, u, err)
			}
			continue
		}
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want InvalidArgument with %q", tc.name, err, tc.want)
		}
	}
}

// A mount's mappings are taken only when they are the pod's own.
func TestMountIDMap(t *testing.T) {
	ids := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	userns := sandboxExtra{Namespaces: &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: ids, Gids: ids}}}
	other := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 200000, Length: 65536}}
	if ok, err := mountIDMap(0, &runtimeapi.Mount{}, userns); ok || err != nil {
		t.Errorf("plain mount: %v %v", ok, err)
	}
	if ok, err := mountIDMap(0, &runtimeapi.Mount{UidMappings: ids, GidMappings: ids}, userns); !ok || err != nil {
		t.Errorf("the pod's mappings: %v %v", ok, err)
	}
	if _, err := mountIDMap(2, &runtimeapi.Mount{UidMappings: other, GidMappings: ids}, userns); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "mounts[2]") {
		t.Errorf("other mappings: %v", err)
	}
	if _, err := mountIDMap(1, &runtimeapi.Mount{UidMappings: ids, GidMappings: ids}, sandboxExtra{}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "no user namespace") {
		t.Errorf("a pod without a user namespace: %v", err)
	}
}
