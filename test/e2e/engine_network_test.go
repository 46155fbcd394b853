package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// A web server published with -p answers on loopback and on the host's own
// address, and `berth port` shows the mapping (issue 8, test 1).
func TestEngineRunPublishedWebServer(t *testing.T) {
	e := newEngine(t)
	port := freePort(t)
	id := e.runD("-p", fmt.Sprintf("%d:80", port), "--name", uniq("web"), e.image, "httpd", "-f", "-p", "80")
	hosts := []string{"127.0.0.1"}
	if a := hostAddress(); a != "" {
		hosts = append(hosts, a)
	} else {
		t.Log("the host has no non-loopback IPv4 address: only 127.0.0.1 is tried")
	}
	for _, h := range hosts {
		url := fmt.Sprintf("http://%s:%d/", h, port)
		var body string
		waitForLong(t, "the container's httpd to answer on "+url, 30e9, func() bool {
			var ok bool
			body, ok = httpGet(url)
			return ok
		})
		if !strings.Contains(body, "hello from berth httpd") {
			t.Errorf("GET %s: %q, want the image's /index.html", url, body)
		}
	}
	out := e.ok("port", id)
	if !strings.Contains(out, "80/tcp") || !strings.Contains(out, fmt.Sprintf(":%d", port)) {
		t.Errorf("berth port: %q, want 80/tcp -> 0.0.0.0:%d", out, port)
	}
	if out := e.ok("port", id, "80"); !strings.HasSuffix(out, fmt.Sprintf(":%d", port)) {
		t.Errorf("berth port %s 80: %q, want 0.0.0.0:%d", id[:12], out, port)
	}
}

// Containers on one user network find each other by name and by alias,
// also one started after the asking one; a removed container's name stops
// resolving (issue 8, test 2).
func TestEngineNetworkNamesResolve(t *testing.T) {
	e := newEngine(t)
	netName := e.networkCreate()
	web, client, late := uniq("web"), uniq("client"), uniq("late")
	e.runD("--network", netName, "--name", web, "--network-alias", "www", e.image, "httpd", "-f", "-p", "80")
	e.runD("--network", netName, "--name", client, e.image, "sleep", "3600")
	// An HTTP GET by name. Not busybox wget: Debian's busybox-static wget
	// dies of SIGSEGV at start on this host (also outside any container,
	// by IP too); nc resolves names through the same getaddrinfo.
	fetch := func(from, host string) (string, bool) {
		r := e.berth("exec", from, "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 `+host+` 80`)
		if r.code != 0 || !strings.Contains(r.stdout, "200 OK") {
			dns := e.berth("exec", from, "sh", "-c", "cat /etc/resolv.conf; nslookup "+host)
			return r.String() + "\n" + dns.stdout + dns.stderr, false
		}
		return r.stdout, true
	}
	for _, host := range []string{web, "www"} {
		var out string
		waitForOut(t, client+" to fetch http://"+host+"/", 30e9, func() (bool, string) {
			var ok bool
			out, ok = fetch(client, host)
			return ok, out
		})
		if !strings.Contains(out, "hello from berth httpd") {
			t.Errorf("wget http://%s/ from %s: %q", host, client, out)
		}
	}
	if r := e.berth("exec", client, "nslookup", web); r.code != 0 {
		t.Errorf("nslookup %s: %s", web, r)
	}
	// A container started after the asking one.
	e.runD("--network", netName, "--name", late, e.image, "httpd", "-f", "-p", "80")
	waitForOut(t, client+" to fetch from "+late, 30e9, func() (bool, string) {
		out, ok := fetch(client, late)
		return ok, out
	})
	if r := e.berth("exec", late, "nslookup", client); r.code != 0 {
		t.Errorf("nslookup %s from the later container: %s", client, r)
	}
	// After rm -f the name is gone.
	e.ok("rm", "-f", web)
	waitForLong(t, "nslookup "+web+" to fail after rm -f", 30e9, func() bool {
		return e.berth("exec", client, "nslookup", web).code != 0
	})
}
