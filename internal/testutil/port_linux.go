package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

// ports are the ones FreePort handed out in this test binary, never
// handed out twice.
var ports sync.Map

// FreePort returns a TCP port that is free on the host now, for a server
// the test starts next and must tell the port in advance (a config file,
// `-p HOST:CTR`). The port lies below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), which both `listen :0` and the local end
// of every outgoing connection draw from: a port taken from that range and
// let go could be the local port of some connection by the time the server
// binds it (a CI run failed once so, berthd not answering because its
// metrics port was taken). Below the range only explicit binds compete.
func FreePort(t testing.TB) int {
	t.Helper()
	lo := ephemeralLow()
	const floor = 10000
	if lo <= floor+1000 {
		// A host whose ephemeral range starts low: no range is safe,
		// take the kernel's choice.
		return listenAny(t)
	}
	for range 200 {
		p := floor + rand.IntN(lo-floor)
		if _, taken := ports.LoadOrStore(p, true); taken {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatalf("no free TCP port in %d-%d", floor, lo-1)
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// by default).
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var hi int
		fmt.Sscan(string(b), &lo, &hi)
	}
	return lo
}

func listenAny(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
