package e2e

import (
	"strings"
	"testing"
)

// network connect and disconnect work on a running container: a new
// interface with an address on the network, its name and alias in that
// network's DNS, and both gone again after disconnect.
func TestEngineNetworkConnectRunning(t *testing.T) {
	e := newEngine(t)
	n1, n2 := e.networkCreate(), e.networkCreate()
	a, b := uniq("a"), uniq("b")
	e.runD("--network", n1, "--name", a, e.image, "sleep", "3600")
	e.runD("--network", n2, "--name", b, e.image, "sleep", "3600")
	alias := uniq("alias")
	e.ok("network", "connect", "--alias", alias, n2, a)
	if out := e.ok("exec", a, "ip", "-o", "-4", "addr"); !strings.Contains(out, "eth1") {
		t.Errorf("after network connect, %s has no eth1:\n%s", a, out)
	}
	for _, name := range []string{a, alias} {
		if r := e.berth("exec", b, "nslookup", name); r.code != 0 {
			t.Errorf("nslookup %s on %s after connect: %s", name, n2, r)
		}
	}
	if ip := e.inspectF(a, "{{(index .NetworkSettings.Networks \""+n2+"\").IPAddress}}"); ip == "" {
		t.Errorf("inspect shows no address of %s on %s", a, n2)
	}
	e.ok("network", "disconnect", n2, a)
	if out := e.ok("exec", a, "ip", "-o", "-4", "addr"); strings.Contains(out, "eth1") {
		t.Errorf("after network disconnect, %s still has eth1:\n%s", a, out)
	}
	if r := e.berth("exec", b, "nslookup", a); r.code == 0 {
		t.Errorf("%s still resolves on %s after disconnect", a, n2)
	}
}
