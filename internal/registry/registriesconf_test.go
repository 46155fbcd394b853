package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestRegistriesConf(t *testing.T) {
	host := serve(t, nil)
	var c Config
	err := c.ParseRegistriesConf([]byte(`
unqualified-search-registries = ["docker.io"]
short-name-mode = "enforcing"

[[registry]]
prefix = "example.invalid/team"
location = "`+host+`/mirrored/team"

[[registry]]
location = "blocked.invalid"
blocked = true

[[registry]]
prefix = "*.wild.invalid"
blocked = true

[[registry]]
location = "mirrored.invalid"
[[registry.mirror]]
location = "`+host+`/m"
[[registry.mirror]]
location = "never.invalid"
pull-from-mirror = "digest-only"

[aliases]
"app" = "example.invalid/team/app"
`), "test.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.UnqualifiedSearch) != 1 || c.Prefixes[0].Prefix != "example.invalid/team" {
		t.Errorf("parsed %+v", c)
	}
	cl := New(Options{Config: c, Backoff: time.Millisecond})
	// A rewritten location: the image is pushed where registries.conf
	// sends example.invalid/team, and found there by its public name.
	want := pushManifest(t, New(Options{}), host+"/mirrored/team/app:1", "", nil)
	repo, got, err := cl.Resolve(context.Background(), parse(t, "example.invalid/team/app:1"))
	if err != nil || got.Digest != want.Digest || repo.Endpoint != host {
		t.Fatalf("rewritten location: %v %v", got.Digest, err)
	}
	// A mirror with a path.
	want = pushManifest(t, New(Options{}), host+"/m/lib/x:2", "", nil)
	if _, got, err := cl.Resolve(context.Background(), parse(t, "mirrored.invalid/lib/x:2")); err != nil || got.Digest != want.Digest {
		t.Fatalf("mirror: %v %v", got.Digest, err)
	}
	for _, ref := range []string{"blocked.invalid/a:1", "a.wild.invalid/b:1"} {
		if _, _, err := cl.Resolve(context.Background(), parse(t, ref)); err == nil || !strings.Contains(err.Error(), "blocked by registries.conf") {
			t.Errorf("%s: %v", ref, err)
		}
	}

	for doc, want := range map[string]string{
		`[[registry]]` + "\n" + `insecure = true`:                                                        "needs location or prefix",
		`[[registry]]` + "\n" + `location = "https://x.io"`:                                              "no scheme",
		`[[registry]]` + "\n" + `prefix = "x*.io"`:                                                       "wildcard",
		`[[registry]]` + "\n" + `location = "x.io"` + "\n" + `colour = "blue"`:                           `unknown key "registry.colour"`,
		`[[registry]]` + "\n" + `location = "x.io"` + "\n" + `[[registry]]` + "\n" + `location = "x.io"`: "appears twice",
		`[[registry]]` + "\n" + `location = "x.io"` + "\n" + `[[registry.mirror]]` + "\n" + `location = "m.io"` + "\n" + `pull-from-mirror = "sometimes"`: "pull-from-mirror",
		`unqualified-search-registries = "docker.io"`: "test.conf",
		`[[registry]`: "test.conf",
	} {
		var c Config
		if err := c.ParseRegistriesConf([]byte(doc), "test.conf"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
	var none Config
	if err := none.LoadRegistriesConf(filepath.Join(t.TempDir(), "missing.conf")); err != nil || len(none.Prefixes) != 0 {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzRegistriesConf(f *testing.F) {
	f.Add([]byte("[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"b.io/x\"\n"))
	f.Add([]byte("unqualified-search-registries = [\"docker.io\"]\n[[registry]]\nprefix = \"*.a.io\"\nblocked = true\n"))
	f.Add([]byte("unqualified-search-registries = [\"a.io\", \"b.io:5000\"]\nshort-name-mode = \"enforcing\"\n[aliases]\n\"x/y\" = \"c.io/x/y\"\n\"z\" = \"\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		if err := c.ParseRegistriesConf(b, "fuzz"); err != nil {
			if len(c.Prefixes) != 0 || c.Aliases != nil || c.UnqualifiedSearch != nil {
				t.Fatalf("error %v changed the config", err)
			}
			return
		}
		for _, n := range []string{"busybox:1", "x/y", "z@sha256:" + strings.Repeat("0", 64)} {
			if res, err := c.ResolveName(n); err == nil && len(res.Candidates) == 0 {
				t.Fatalf("%s: no candidates and no error", n)
			}
		}
		for _, p := range c.Prefixes {
			if p.Prefix == "" {
				t.Fatal("empty prefix kept")
			}
		}
		c.endpoints("a.io/x/y", "a.io", "x/y", false)
	})
}

// testCA makes a CA and a certificate it signs for 127.0.0.1 (server) or
// a client.
func testCA(t *testing.T) (caPEM []byte, issue func(server bool) tls.Certificate, issuePEM func(server bool) ([]byte, []byte)) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	issuePEM = func(server bool) ([]byte, []byte) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		if server {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	}
	issue = func(server bool) tls.Certificate {
		c, k := issuePEM(server)
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	return caPEM, issue, issuePEM
}

// tlsRegistry serves a registry over TLS on loopback, with an empty
// certs.d directory for it.
func tlsRegistry(t *testing.T, tc *tls.Config) (srv *httptest.Server, host, certs, hostDir string) {
	t.Helper()
	srv = httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.TLS = tc
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host = strings.TrimPrefix(srv.URL, "https://")
	certs = t.TempDir()
	hostDir = filepath.Join(certs, host)
	if err := os.Mkdir(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return srv, host, certs, hostDir
}

// TestCertsDir: a loopback registry with a private CA (and then asking for
// a client certificate) fails clearly until its CA (and a client
// certificate) is dropped in certs.d/HOST:PORT.
func TestCertsDir(t *testing.T) {
	caPEM, issue, issuePEM := testCA(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	srv, host, certs, hostDir := tlsRegistry(t, &tls.Config{Certificates: []tls.Certificate{issue(true)}, ClientCAs: pool})
	client := func() *Client {
		return New(Options{Config: Config{CertsDir: certs}, Backoff: time.Millisecond, BlobAttempts: 1})
	}
	ref := parse(t, host+"/app:1")
	_, _, err := client().Resolve(context.Background(), ref)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("before the CA is dropped: %v", err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "ca.crt"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = client().Resolve(context.Background(), ref)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("with the CA: %v (want not found: the registry answered)", err)
	}

	// Client certificates.
	srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
	srv.CloseClientConnections()
	if _, _, err = client().Resolve(context.Background(), ref); err == nil || errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("without a client certificate: %v", err)
	}
	cert, key := issuePEM(false)
	os.WriteFile(filepath.Join(hostDir, "client.cert"), cert, 0o644)
	if _, _, err = client().Resolve(context.Background(), ref); err == nil || !strings.Contains(err.Error(), "client.key") {
		t.Fatalf("a client certificate without its key: %v", err)
	}
	os.WriteFile(filepath.Join(hostDir, "client.key"), key, 0o600)
	if _, _, err = client().Resolve(context.Background(), ref); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("with a client certificate: %v", err)
	}
	os.WriteFile(filepath.Join(hostDir, "bad.crt"), []byte("junk"), 0o644)
	if _, _, err = client().Resolve(context.Background(), ref); err == nil || !strings.Contains(err.Error(), "bad.crt has no PEM certificate") {
		t.Fatalf("a bad CA file: %v", err)
	}
}

// TestCertsDirReread: one client (a long-running berthd) sees a CA
// dropped in after its first request, and stops trusting one removed or
// replaced, without a restart.
func TestCertsDirReread(t *testing.T) {
	caPEM, issue, _ := testCA(t)
	otherCA, _, _ := testCA(t)
	_, host, certs, hostDir := tlsRegistry(t, &tls.Config{Certificates: []tls.Certificate{issue(true)}})
	c := New(Options{Config: Config{CertsDir: certs}, Backoff: time.Millisecond, BlobAttempts: 1})
	ref := parse(t, host+"/app:1")
	resolve := func() error { _, _, err := c.Resolve(context.Background(), ref); return err }
	if err := resolve(); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("before the CA: %v", err)
	}
	ca := filepath.Join(hostDir, "ca.crt")
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := resolve(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("after the CA is dropped in: %v (want not found: the registry answered)", err)
	}
	// Replaced by another CA, in place (the directory's own mtime may not move).
	if err := os.WriteFile(ca, otherCA, 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	os.Chtimes(ca, future, future) // a same-size rewrite within one timestamp tick
	if err := resolve(); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("after the CA is replaced: %v", err)
	}
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := resolve(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("CA back: %v", err)
	}
	if err := os.Remove(ca); err != nil {
		t.Fatal(err)
	}
	if err := resolve(); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("after the CA is removed: %v", err)
	}
}

// BenchmarkCertsDirStamp is what every request to a host with a certs.d
// directory pays to notice a change.
func BenchmarkCertsDirStamp(b *testing.B) {
	certs := b.TempDir()
	dir := filepath.Join(certs, "registry.example:5000")
	os.Mkdir(dir, 0o755)
	for _, n := range []string{"ca.crt", "client.cert", "client.key"} {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	c := Config{CertsDir: certs}
	for b.Loop() {
		c.dirStamp("registry.example:5000")
	}
}
