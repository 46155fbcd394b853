package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestDetachAfterEverythingDied(t *testing.T) {
	e := newTestEnv(t)
	n := e.network(CreateOptions{})
	id, ns := e.sandbox()
	r := AttachRequest{ContainerID: id, NetNS: ns, Network: n.Name, IfName: "eth0", Name: "victim",
		Ports: []PortMapping{{HostPort: freePort(t), ContainerPort: 80, Protocol: "tcp"}}}
	att, err := e.m.Attach(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	lease := filepath.Join(e.state, "ipam", n.Name, att.IP)
	if _, err := os.Stat(lease); err != nil {
		t.Fatalf("no lease where expected: %v", err)
	}
	if out, _ := exec.Command("iptables-save").Output(); !strings.Contains(string(out), att.IP) {
		t.Fatalf("no iptables rule names %s:\n%s", att.IP, out)
	}
	// kill -9 the DNS server and lose the namespace.
	pid := e.m.dnsServerPid(n.Name)
	if pid == 0 {
		t.Fatal("no DNS server runs")
	}
	unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
	if err := e.m.RemoveNetNS(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Detach(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Detach(context.Background(), r); err != nil {
		t.Fatalf("second detach: %v", err)
	}
	if _, err := os.Stat(lease); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lease %s survives detach: %v", lease, err)
	}
	if out, _ := exec.Command("iptables-save").Output(); strings.Contains(string(out), att.IP) {
		t.Fatalf("iptables still names %s:\n%s", att.IP, out)
	}
	if err := e.m.CheckPorts(r.Ports); err != nil {
		t.Fatalf("port still reserved after detach: %v", err)
	}

	// The next attach starts a new DNS server.
	id2, ns2 := e.sandbox()
	a2 := e.attach(AttachRequest{ContainerID: id2, NetNS: ns2, Network: n.Name, Name: "phoenix"})
	if got := answerA(queryFrom(t, ns2, a2.DNSServer, "phoenix", dns.TypeA)); len(got) != 1 || got[0] != a2.IP {
		t.Fatalf("phoenix: %v", got)
	}
}

// writePlugin puts a shell-script CNI plugin in a fresh directory.
func writePlugin(t *testing.T, name, script string) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// userNetwork writes a users' conflist: a bridge, then a plugin of the
// given type.
func userNetwork(t *testing.T, e *testEnv, plugin string) (string, string) {
	name := "u" + randHex(4)
	br := "tb" + randHex(4)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
	  {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]]}},
	  {"type":%q}]}`, name, br, freeSubnet(t), plugin)
	dir := e.m.cfg.UserConfDirs[0]
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// A users' network's bridge outlives its containers, as with any CNI
	// runtime; only Remove of a Berth network deletes one.
	t.Cleanup(func() { deleteLink(br) })
	return name, br
}

func TestFailingPluginLeavesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.m.cfg.PluginDirs = []string{writePlugin(t, "failer", `[ "$CNI_COMMAND" = ADD ] || exit 0
echo '{"cniVersion":"1.0.0","code":100,"msg":"failer says no"}'; exit 1`), "/usr/lib/cni"}
	e.m.cni.Path = e.m.cfg.PluginDirs
	name, _ := userNetwork(t, e, "failer")
	id, ns := e.sandbox()
	_, err := e.m.Attach(context.Background(), AttachRequest{ContainerID: id, NetNS: ns, Network: name, IfName: "eth0",
		Ports: nil})
	if err == nil || !strings.Contains(err.Error(), "failer says no") {
		t.Fatalf("attach through a failing plugin: %v", err)
	}
	// checkHost finds any veth, lease or rule left.
}

func TestHangingPluginIsKilled(t *testing.T) {
	e := newTestEnv(t)
	e.m.cniTimeout = 2 * time.Second
	dir := writePlugin(t, "hanger", `exec sleep 3600`)
	e.m.cfg.PluginDirs = []string{dir, "/usr/lib/cni"}
	e.m.cni.Path = e.m.cfg.PluginDirs
	name, _ := userNetwork(t, e, "hanger")
	id, ns := e.sandbox()
	_, err := e.m.Attach(context.Background(), AttachRequest{ContainerID: id, NetNS: ns, Network: name, IfName: "eth0"})
	if err == nil {
		t.Fatal("attach through a hanging plugin succeeded")
	}
	t.Log(err)
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if strings.Contains(string(env), "CNI_PATH="+dir) {
			t.Errorf("plugin process %d still runs", pid)
		}
	}
}

func TestBadInput(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	n := e.network(CreateOptions{Labels: map[string]string{"a": "b"}})
	for _, c := range []struct {
		o    CreateOptions
		want error
		msg  string
	}{
		{CreateOptions{Name: "bad/name"}, errdefs.ErrInvalidArgument, `"bad/name"`},
		{CreateOptions{Name: "-x"}, errdefs.ErrInvalidArgument, `"-x"`},
		{CreateOptions{Name: n.Name}, errdefs.ErrAlreadyExists, n.Name},
		{CreateOptions{Name: "bridge"}, errdefs.ErrAlreadyExists, "bridge"},
		{CreateOptions{Name: "x" + randHex(4), Subnet: "10.1.2.3/24"}, errdefs.ErrInvalidArgument, "10.1.2.0/24"},
		{CreateOptions{Name: "x" + randHex(4), Subnet: "banana"}, errdefs.ErrInvalidArgument, "banana"},
		{CreateOptions{Name: "x" + randHex(4), Subnet: "fd00::/64"}, errdefs.ErrInvalidArgument, "IPv4"},
		{CreateOptions{Name: "x" + randHex(4), Subnet: n.Subnet}, errdefs.ErrInvalidArgument, "overlaps"},
		{CreateOptions{Name: "x" + randHex(4), Subnet: "10.87.5.0/24"}, errdefs.ErrInvalidArgument, "network bridge"},
		{CreateOptions{Name: "x" + randHex(4), Subnet: freeSubnet(t), Gateway: "1.1.1.1"}, errdefs.ErrInvalidArgument, "1.1.1.1"},
	} {
		_, err := e.m.Create(ctx, c.o)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Create(%+v) = %v, want %v naming %s", c.o, err, c.want, c.msg)
		}
	}
	got, err := e.m.Inspect(ctx, n.Name)
	if err != nil || got.Labels["a"] != "b" || !got.DNS || !got.BerthManaged || got.Bridge == "" {
		t.Fatalf("Inspect = %+v, %v", got, err)
	}
	list, err := e.m.List(ctx)
	if err != nil || len(list) != 4 { // bridge, host, none, n
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := e.m.Remove(ctx, "bridge"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Remove(bridge) = %v", err)
	}
	if err := e.m.Remove(ctx, "nosuch"); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("Remove(nosuch) = %v", err)
	}

	id, ns := e.sandbox()
	_, err = e.m.Attach(ctx, AttachRequest{ContainerID: id, NetNS: ns, Network: "nosuch", IfName: "eth0"})
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("Attach to an unknown network: %v", err)
	}
	for _, r := range []AttachRequest{
		{ContainerID: "../../etc", NetNS: ns, Network: n.Name, IfName: "eth0"},
		{ContainerID: id, NetNS: ns, Network: n.Name, IfName: "../eth0"},
		{ContainerID: id, NetNS: ns, Network: n.Name, IfName: "eth0", Name: "a b\n1.2.3.4"},
		{ContainerID: id, NetNS: ns, Network: n.Name, IfName: "eth0", Ports: []PortMapping{{HostPort: 1, ContainerPort: 1, Protocol: "sctp"}}},
		{ContainerID: id, NetNS: ns, Network: n.Name, IfName: "eth0", Ports: []PortMapping{{HostPort: 1, ContainerPort: 1, Protocol: "tcp", HostIP: "nope"}}},
	} {
		if _, err := e.m.Attach(ctx, r); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Attach(%+v) = %v", r, err)
		}
	}

	// A port something else holds.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	err = e.m.CheckPorts([]PortMapping{{HostPort: port, ContainerPort: 80, Protocol: "tcp"}})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), fmt.Sprintf("0.0.0.0:%d/tcp is already in use", port)) {
		t.Errorf("CheckPorts on a bound port: %v", err)
	}
	// A port published twice: the second Attach fails and leaves nothing.
	p := freePort(t)
	e.attach(AttachRequest{ContainerID: id, NetNS: ns, Network: n.Name, Ports: []PortMapping{{HostPort: p, ContainerPort: 80, Protocol: "udp"}}})
	id2, ns2 := e.sandbox()
	_, err = e.m.Attach(ctx, AttachRequest{ContainerID: id2, NetNS: ns2, Network: n.Name, IfName: "eth0", Name: "second",
		Ports: []PortMapping{{HostPort: p, ContainerPort: 80, Protocol: "udp"}}})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("second Attach publishing one port: %v", err)
	}
}
