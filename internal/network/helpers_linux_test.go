package network

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/internal/testutil"
)

// dnsServerArg makes the test binary a DNS server process (see TestMain),
// so the tests exercise the real detached server.
const dnsServerArg = "__berth_network_test_dns_server__"

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == dnsServerArg {
		if err := ServeDNS(context.Background(), os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testEnv is one manager on private directories, and a snapshot of the
// host to compare with when the test ends.
type testEnv struct {
	t      *testing.T
	m      *Manager
	state  string
	before hostState
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	testutil.RequiresRoot(t)
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Skip("requires the CNI plugins in /usr/lib/cni (Debian package containernetworking-plugins)")
	}
	dir := t.TempDir()
	e := &testEnv{t: t, state: filepath.Join(dir, "state"), before: snapshotHost(t)}
	m, err := New(Config{
		ConfDir:      filepath.Join(dir, "conf"),
		UserConfDirs: []string{filepath.Join(dir, "user")},
		StateDir:     e.state,
		DNSBin:       []string{os.Args[0], dnsServerArg},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	// Registered first, so it runs last: after every other cleanup.
	t.Cleanup(e.checkHost)
	return e
}

// freeSubnet returns a random 10.250-253.x.0/24 no host route uses, so
// parallel runs do not collide.
func freeSubnet(t *testing.T) string {
	t.Helper()
	taken := hostPrefixes()
	for range 100 {
		b := make([]byte, 2)
		rand.Read(b)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250 + b[0]%4, b[1], 0}), 24)
		clash := false
		for _, q := range taken {
			clash = clash || q.Overlaps(p)
		}
		if !clash {
			return p.String()
		}
	}
	t.Fatal("no free test subnet")
	return ""
}

func (e *testEnv) network(opts CreateOptions) Network {
	e.t.Helper()
	if opts.Name == "" {
		opts.Name = "t" + randHex(4)
	}
	if opts.Subnet == "" {
		opts.Subnet = freeSubnet(e.t)
	}
	n, err := e.m.Create(context.Background(), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := e.m.Remove(context.Background(), n.Name); err != nil {
			e.t.Errorf("remove network: %v", err)
		}
	})
	return n
}

// sandbox makes a netns and returns its ID and path; it is removed at the
// end of the test.
func (e *testEnv) sandbox() (string, string) {
	e.t.Helper()
	id := randHex(32)
	p, err := e.m.NewNetNS(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := e.m.RemoveNetNS(context.Background(), id); err != nil {
			e.t.Errorf("remove netns: %v", err)
		}
	})
	return id, p
}

func (e *testEnv) attach(r AttachRequest) Attachment {
	e.t.Helper()
	if r.IfName == "" {
		r.IfName = "eth0"
	}
	att, err := e.m.Attach(context.Background(), r)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := e.m.Detach(context.Background(), r); err != nil {
			e.t.Errorf("detach: %v", err)
		}
	})
	return att
}

// hostState is what a test could leave behind on the host.
type hostState struct {
	links    map[string]bool
	iptables map[string]bool
	nft      map[string]bool
}

func lines(t *testing.T, name string, args ...string) map[string]bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		t.Logf("%s: %v", name, err)
	}
	set := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		// Counters and comments change without anyone adding a rule.
		if l == "" || l == "COMMIT" || strings.HasPrefix(l, "*") || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ":") {
			continue
		}
		set[l] = true
	}
	return set
}

func snapshotHost(t *testing.T) hostState {
	s := hostState{links: map[string]bool{}}
	links, _ := netlink.LinkList()
	for _, l := range links {
		s.links[l.Attrs().Name] = true
	}
	s.iptables = lines(t, "iptables-save")
	s.nft = lines(t, "nft", "list", "ruleset")
	return s
}

// sharedChain says whether an iptables line is one of the chains (or the
// jumps to them) that the CNI plugins create once per host and share
// between all networks and containers; they hold no per-container state.
func sharedChain(l string) bool {
	for _, c := range []string{"CNI-FORWARD", "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ", "CNI-ADMIN"} {
		if strings.Contains(l, c) {
			return true
		}
	}
	return false
}

func (e *testEnv) checkHost() {
	t := e.t
	after := snapshotHost(t)
	// The kernel destroys a namespace, and the veths in it, in a work
	// queue after its last reference goes: give that a moment.
	for i := 0; i < 100 && !maps.EqualFunc(after.links, e.before.links, func(a, b bool) bool { return true }); i++ {
		time.Sleep(50 * time.Millisecond)
		after = snapshotHost(t)
	}
	for l := range after.links {
		if !e.before.links[l] {
			t.Errorf("leftover interface %s", l)
		}
	}
	for l := range after.iptables {
		if !e.before.iptables[l] && !sharedChain(l) {
			t.Errorf("leftover iptables line: %s", l)
		}
	}
	for l := range after.nft {
		if !e.before.nft[l] && !sharedChain(l) && strings.Contains(l, "CNI-") {
			t.Errorf("leftover nft line: %s", l)
		}
	}
	filepath.Walk(filepath.Join(e.state, "ipam"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(fi.Name(), "last_reserved_ip") && fi.Name() != "lock" {
			t.Errorf("leftover IPAM lease %s", p)
		}
		return nil
	})
	if ms := testutil.MountsUnder(e.state); len(ms) > 0 {
		t.Errorf("leftover mounts %v", ms)
	}
	entries, _ := os.ReadDir(filepath.Join(e.state, "netns"))
	for _, en := range entries {
		t.Errorf("leftover netns file %s", en.Name())
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), e.state) {
			t.Errorf("leftover process %s: %q", p, b)
		}
	}
}

// listenIn starts a TCP server inside a netns that answers every
// connection with reply.
func listenIn(t *testing.T, nsPath, addr, reply string) {
	t.Helper()
	var ln net.Listener
	if err := inNetNS(nsPath, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(reply))
			c.Close()
		}
	}()
}

func dialRead(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// queryFrom asks server a question from inside a netns.
func queryFrom(t *testing.T, nsPath, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	var conn net.Conn
	if err := inNetNS(nsPath, func() (err error) {
		conn, err = net.Dial("udp", net.JoinHostPort(server, "53"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Timeout: 8 * time.Second}
	r, _, err := c.ExchangeWithConn(m, &dns.Conn{Conn: conn})
	if err != nil {
		t.Fatalf("query %s from %s: %v", name, nsPath, err)
	}
	return r
}

func answerA(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// hostAddress is one of the host's own global IPv4 addresses outside the
// test networks, or "" if it has none.
func hostAddress() string {
	links, _ := netlink.LinkList()
	for _, l := range links {
		if l.Attrs().Flags&net.FlagUp == 0 || l.Type() == "bridge" || l.Type() == "veth" {
			continue
		}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				return a.IP.String()
			}
		}
	}
	return ""
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}
