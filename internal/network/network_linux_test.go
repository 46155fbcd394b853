package network

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
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
	// Only the gateway address is bound.
	if c, err := net.Dial("udp", "127.0.0.1:53"); err == nil {
		c.Close()
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
