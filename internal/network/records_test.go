package network

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unicode"
)

func TestRecordsRoundTrip(t *testing.T) {
	rs := []record{
		{ID: "abc", IP: netip.MustParseAddr("10.90.0.2"), Names: []string{"web", "alias.one"}},
		{ID: "def", IP: netip.MustParseAddr("10.90.0.3"), Names: []string{"db"}},
	}
	got, err := parseRecords(formatRecords(rs))
	if err != nil || len(got) != 2 || !slices.Equal(got[0].Names, rs[0].Names) || got[1].IP != rs[1].IP {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	idx := index(got)
	if !slices.Equal(idx["web"], []netip.Addr{rs[0].IP}) {
		t.Fatalf("index: %v", idx)
	}
}

func TestRecordsRejectsHostileLines(t *testing.T) {
	for _, in := range []string{
		"abc 10.0.0.1\n",
		"abc not-an-ip web\n",
		"abc ::1 web\n",
		"../x 10.0.0.1 web\n",
		"abc 10.0.0.1 we/b\n",
		"abc 10.0.0.1 a..b\n",
		"abc 10.0.0.1 " + strings.Repeat("a ", 70) + "\n",
	} {
		if _, err := parseRecords([]byte(in)); err == nil {
			t.Errorf("parseRecords(%q) accepted", in)
		}
	}
	if rs, err := parseRecords([]byte("# comment\n\nabc 10.0.0.1 WeB\n")); err != nil || rs[0].Names[0] != "web" {
		t.Fatalf("names are not lower-cased: %+v %v", rs, err)
	}
}

func FuzzParseRecords(f *testing.F) {
	f.Add([]byte("abc 10.0.0.1 web alias\n"))
	f.Add([]byte("# x\nabc 10.0.0.1\n"))
	f.Add([]byte("abc 10.0.0.1 a\x00b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := parseRecords(data)
		if err != nil {
			return
		}
		// Whatever parses formats back to the same records, and no name
		// can carry a separator into the file.
		again, err := parseRecords(formatRecords(rs))
		if err != nil || len(again) != len(rs) {
			t.Fatalf("reparse: %v", err)
		}
		for _, r := range rs {
			for _, n := range r.Names {
				if strings.IndexFunc(n, unicode.IsSpace) >= 0 || !validDNSName(n) {
					t.Fatalf("bad name %q accepted", n)
				}
			}
		}
	})
}

func FuzzParseAddHost(f *testing.F) {
	f.Add("db:10.0.0.5")
	f.Add("v6:fd00::1")
	f.Add("gw:host-gateway")
	f.Add("x y:1.2.3.4")
	f.Fuzz(func(t *testing.T, s string) {
		h, ip, err := ParseAddHost(s)
		if err != nil {
			return
		}
		line := HostsFile("", "", nil, []string{s})
		if strings.Count(string(line), "\n") > 7 || strings.ContainsAny(h, " \t\n") || strings.ContainsAny(ip, " \t\n") {
			t.Fatalf("%q gives %q %q", s, h, ip)
		}
	})
}

func FuzzParseConflist(f *testing.F) {
	c, _ := buildConflist("n", "br-x", netip.MustParsePrefix("10.90.0.0/24"), netip.MustParseAddr("10.90.0.1"), berthMeta{DNS: true})
	f.Add(c)
	f.Add([]byte(`{"cniVersion":"0.4.0","name":"x","plugins":[{"type":"bridge","ipam":{"subnet":"10.1.0.0/16"}}]}`))
	f.Add([]byte(`{"name":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, list, err := parseConflist(data, "f")
		if err != nil {
			return
		}
		if n.Name != list.Name || len(n.Plugins) != len(list.Plugins) {
			t.Fatalf("network %+v from list %q with %d plugins", n, list.Name, len(list.Plugins))
		}
		// What Berth reports by name must pass the name check before it is
		// used as a file name; parsing alone must not imply it.
		_ = ValidateName(n.Name)
	})
}

func TestSubnets(t *testing.T) {
	for _, s := range []string{"10.1.2.3/24", "x", "10.0.0.0/30", "10.0.0.0/7", "fd00::/64"} {
		if _, err := parseSubnet(s); err == nil {
			t.Errorf("parseSubnet(%q) accepted", s)
		}
	}
	taken := []netip.Prefix{netip.MustParsePrefix("10.90.0.0/24"), netip.MustParsePrefix("10.90.1.128/25")}
	p, err := pickSubnet(createPool, 24, taken)
	if err != nil || p.String() != "10.90.2.0/24" {
		t.Fatalf("pickSubnet = %v, %v", p, err)
	}
	if _, err := pickSubnet(netip.MustParsePrefix("10.90.0.0/23"), 24, taken); err == nil {
		t.Fatal("a full pool gave a subnet")
	}
	s := netip.MustParsePrefix("10.90.0.0/24")
	for _, g := range []string{"10.90.0.0", "10.90.0.255", "10.91.0.1", "x"} {
		if _, err := parseGateway(g, s); err == nil {
			t.Errorf("gateway %s accepted", g)
		}
	}
}

func TestResolvConfAndHosts(t *testing.T) {
	m := &Manager{}
	atts := []Attachment{{IP: "10.90.0.2", Gateway: "10.90.0.1", DNSServer: "10.90.0.1"}, {IP: "10.91.0.2", Gateway: "10.91.0.1", DNSServer: "10.91.0.1"}}
	got := string(m.ResolvConf(atts, nil, []string{"example.org"}, []string{"ndots:2"}))
	if !strings.Contains(got, "nameserver 10.90.0.1\nnameserver 10.91.0.1\n") || !strings.Contains(got, "search example.org\n") || !strings.Contains(got, "options ndots:2\n") {
		t.Fatalf("resolv.conf:\n%s", got)
	}
	got = string(m.ResolvConf(atts, []string{"9.9.9.9"}, nil, nil))
	if !strings.Contains(got, "nameserver 9.9.9.9\n") || strings.Contains(got, "10.90.0.1") {
		t.Fatalf("--dns does not replace:\n%s", got)
	}
	if ns := withoutLoopback([]string{"127.0.0.53", "::1", "192.0.2.1"}); !slices.Equal(ns, []string{"192.0.2.1"}) {
		t.Fatalf("withoutLoopback = %v", ns)
	}
	rc := parseResolvConf([]byte("nameserver 1.1.1.1\nnameserver bogus\nsearch a b\noptions rotate\n"))
	if !slices.Equal(rc.Nameservers, []string{"1.1.1.1"}) || !slices.Equal(rc.Search, []string{"a", "b"}) {
		t.Fatalf("parseResolvConf = %+v", rc)
	}
	h := string(HostsFile("abc123", "web", atts[:1], []string{"db:10.0.0.5", "gw:host-gateway", "bad entry"}))
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "10.0.0.5\tdb\n", "10.90.0.1\tgw\n", "10.90.0.2\tabc123 web\n"} {
		if !strings.Contains(h, want) {
			t.Errorf("hosts lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "bad") {
		t.Errorf("hosts has a bad entry:\n%s", h)
	}
}
