package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestAttachPublishesPorts(t *testing.T) {
	e := newTestEnv(t)
	n := e.network(CreateOptions{})
	id, ns := e.sandbox()
	port := freePort(t)
	if err := e.m.CheckPorts([]PortMapping{{HostPort: port, ContainerPort: 8080, Protocol: "tcp"}}); err != nil {
		t.Fatal(err)
	}
	att := e.attach(AttachRequest{ContainerID: id, NetNS: ns, Network: n.Name, Name: "web",
		Ports: []PortMapping{{HostPort: port, ContainerPort: 8080, Protocol: "tcp"}}})
	if att.Gateway != n.Gateway || att.PrefixLen != 24 || att.MAC == "" || att.DNSServer != n.Gateway {
		t.Fatalf("attachment %+v on network %+v", att, n)
	}
	// The address is configured inside.
	var inside []string
	inNetNS(ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, a := range addrs {
			inside = append(inside, a.IP.String())
		}
		return nil
	})
	if !slices.Contains(inside, att.IP) {
		t.Fatalf("eth0 in the netns has %v, want %s", inside, att.IP)
	}
	listenIn(t, ns, ":8080", "hello")
	targets := []string{net.JoinHostPort(att.IP, "8080"), "127.0.0.1:" + strconv.Itoa(int(port))}
	if h := hostAddress(); h != "" {
		targets = append(targets, net.JoinHostPort(h, strconv.Itoa(int(port))))
	} else {
		t.Log("the host has no global IPv4 address: published port not tried on it")
	}
	for _, a := range targets {
		got, err := dialRead(a)
		if err != nil || got != "hello" {
			t.Errorf("%s: got %q, %v", a, got, err)
		}
	}
	// The port is now taken, by the reservation if nothing else.
	err := e.m.CheckPorts([]PortMapping{{HostPort: port, ContainerPort: 1, Protocol: "tcp"}})
	if err == nil || !strings.Contains(err.Error(), "0.0.0.0:"+strconv.Itoa(int(port))+"/tcp") {
		t.Fatalf("CheckPorts on a published port: %v", err)
	}
}

func TestDNSByName(t *testing.T) {
	e := newTestEnv(t)
	n := e.network(CreateOptions{})
	other := e.network(CreateOptions{})
	id1, ns1 := e.sandbox()
	id2, ns2 := e.sandbox()
	a1 := e.attach(AttachRequest{ContainerID: id1, NetNS: ns1, Network: n.Name, Name: "alpha", Aliases: []string{"Web"}})
	a2 := e.attach(AttachRequest{ContainerID: id2, NetNS: ns2, Network: n.Name, Name: "beta"})

	if got := answerA(queryFrom(t, ns2, a2.DNSServer, "alpha", dns.TypeA)); !slices.Equal(got, []string{a1.IP}) {
		t.Fatalf("alpha from beta: %v, want %s", got, a1.IP)
	}
	if got := answerA(queryFrom(t, ns1, a1.DNSServer, "BETA.", dns.TypeA)); !slices.Equal(got, []string{a2.IP}) {
		t.Fatalf("BETA from alpha: %v, want %s", got, a2.IP)
	}
	if got := answerA(queryFrom(t, ns2, a2.DNSServer, "web", dns.TypeA)); !slices.Equal(got, []string{a1.IP}) {
		t.Fatalf("alias web: %v, want %s", got, a1.IP)
	}
	if r := queryFrom(t, ns2, a2.DNSServer, "alpha", dns.TypeAAAA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("AAAA alpha: %v", r)
	}

	// One that joins after the first queries resolves; once gone, it
	// does not.
	id3, ns3 := e.sandbox()
	r3 := AttachRequest{ContainerID: id3, NetNS: ns3, Network: n.Name, IfName: "eth0", Name: "gamma"}
	a3, err := e.m.Attach(context.Background(), r3)
	if err != nil {
		t.Fatal(err)
	}
	if got := answerA(queryFrom(t, ns1, a1.DNSServer, "gamma", dns.TypeA)); !slices.Equal(got, []string{a3.IP}) {
		t.Fatalf("gamma: %v, want %s", got, a3.IP)
	}
	if err := e.m.Detach(context.Background(), r3); err != nil {
		t.Fatal(err)
	}
	if got := answerA(queryFrom(t, ns1, a1.DNSServer, "gamma", dns.TypeA)); len(got) != 0 {
		t.Fatalf("gamma after detach: %v", got)
	}

	// A container of another network routes to this server through the
	// host, and is refused.
	id4, ns4 := e.sandbox()
	e.attach(AttachRequest{ContainerID: id4, NetNS: ns4, Network: other.Name, Name: "delta"})
	if r := queryFrom(t, ns4, a1.DNSServer, "alpha", dns.TypeA); r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
		t.Fatalf("alpha asked from another network: %v", r)
	}
	// The server binds the gateway address and nothing else.
	pid := e.m.dnsServerPid(n.Name)
	bound := socketAddrs(t, pid)
	if len(bound) != 2 || bound[0] != a1.DNSServer+":53" || bound[1] != a1.DNSServer+":53" {
		t.Fatalf("DNS server binds %v, want the gateway %s for UDP and TCP", bound, a1.DNSServer)
	}
}

func TestDNSForwardsOtherNames(t *testing.T) {
	e := newTestEnv(t)
	n := e.network(CreateOptions{})
	idU, nsU := e.sandbox()
	up := e.attach(AttachRequest{ContainerID: idU, NetNS: nsU, Network: n.Name, Name: "upstream"})
	// An upstream resolver inside a container: the host's resolvers may
	// be unreachable from a test machine.
	var pc net.PacketConn
	if err := inNetNS(nsU, func() (err error) {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(up.IP, "53"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 99)})
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	// The server reads upstreams when it starts and when the file changes.
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver "+up.IP+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.m.upstreamResolvConf = rc
	// Restart the server with the new upstream file.
	if err := e.m.stopDNS(context.Background(), n.Name); err != nil {
		t.Fatal(err)
	}
	id, ns := e.sandbox()
	a := e.attach(AttachRequest{ContainerID: id, NetNS: ns, Network: n.Name, Name: "client"})
	if got := answerA(queryFrom(t, ns, a.DNSServer, "example.org", dns.TypeA)); !slices.Equal(got, []string{"192.0.2.99"}) {
		t.Fatalf("forwarded example.org: %v", got)
	}
}

func TestInternalNetwork(t *testing.T) {
	e := newTestEnv(t)
	n := e.network(CreateOptions{Internal: true})
	if !n.Internal || slices.Contains(n.Plugins, "portmap") {
		t.Fatalf("internal network %+v", n)
	}
	id, ns := e.sandbox()
	_, err := e.m.Attach(context.Background(), AttachRequest{ContainerID: id, NetNS: ns, Network: n.Name, IfName: "eth0",
		Ports: []PortMapping{{HostPort: freePort(t), ContainerPort: 80, Protocol: "tcp"}}})
	if err == nil || !strings.Contains(err.Error(), "cannot publish ports") {
		t.Fatalf("ports on an internal network: %v", err)
	}
	att := e.attach(AttachRequest{ContainerID: id, NetNS: ns, Network: n.Name, Name: "inside"})
	var defaults int
	inNetNS(ns, func() error {
		routes, _ := netlink.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				defaults++
			}
		}
		return nil
	})
	if defaults != 0 {
		t.Fatalf("internal container has %d default routes", defaults)
	}
	// Names still resolve on it.
	if got := answerA(queryFrom(t, ns, att.DNSServer, "inside", dns.TypeA)); !slices.Equal(got, []string{att.IP}) {
		t.Fatalf("inside: %v", got)
	}
}

func TestDefaultNetworkAndUserConflists(t *testing.T) {
	dir := t.TempDir()
	user := filepath.Join(dir, "user")
	os.MkdirAll(user, 0o755)
	os.WriteFile(filepath.Join(user, "evil.conflist"), []byte(`{"cniVersion":"1.0.0","name":"../../evil","plugins":[{"type":"bridge"}]}`), 0o644)
	os.WriteFile(filepath.Join(user, "broken.conflist"), []byte(`{`), 0o644)
	os.WriteFile(filepath.Join(user, "mine.conflist"), []byte(`{"cniVersion":"1.0.0","name":"mine","plugins":[{"type":"bridge","bridge":"mybr","ipam":{"type":"host-local","ranges":[[{"subnet":"10.66.0.0/24"}]]}}]}`), 0o644)
	m, err := New(Config{ConfDir: filepath.Join(dir, "conf"), StateDir: filepath.Join(dir, "state"), UserConfDirs: []string{user, filepath.Join(dir, "missing")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := m.Inspect(ctx, DefaultNetwork)
	if err != nil || b.Subnet != DefaultSubnet || b.Gateway != "10.87.0.1" || b.DNS || !b.BerthManaged || b.Bridge != DefaultBridge || !slices.Contains(b.Plugins, "portmap") {
		t.Fatalf("default network %+v, %v", b, err)
	}
	list, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range list {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{"bridge", "host", "mine", "none"}) {
		t.Fatalf("List = %v", names)
	}
	mine, _ := m.Inspect(ctx, "mine")
	if mine.BerthManaged || mine.Subnet != "10.66.0.0/24" || mine.Gateway != "10.66.0.1" {
		t.Fatalf("users' network %+v", mine)
	}
	if err := m.Remove(ctx, "mine"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Remove of a users' network: %v", err)
	}
	// A users' subnet is taken too.
	if _, err := m.Create(ctx, CreateOptions{Name: "x", Subnet: "10.66.0.0/16"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("overlap with a users' network: %v", err)
	}
}

// socketAddrs lists the local IPv4 addresses of the sockets pid holds, from
// /proc/net/{udp,tcp} matched by inode.
func socketAddrs(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, f := range []string{"udp", "tcp", "udp6", "tcp6"} {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fl := strings.Fields(line)
			if len(fl) < 10 || !inodes[fl[9]] {
				continue
			}
			hostPort := strings.Split(fl[1], ":")
			if len(hostPort[0]) != 8 {
				out = append(out, "ipv6:"+fl[1])
				continue
			}
			var b [4]byte
			for i := range 4 {
				v, _ := strconv.ParseUint(hostPort[0][2*(3-i):2*(3-i)+2], 16, 8)
				b[i] = byte(v)
			}
			port, _ := strconv.ParseUint(hostPort[1], 16, 16)
			out = append(out, fmt.Sprintf("%d.%d.%d.%d:%d", b[0], b[1], b[2], b[3], port))
		}
	}
	return out
}
