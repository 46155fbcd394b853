package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// maxCertFile bounds a certificate or key file of a certs.d directory.
const maxCertFile = 1 << 20

// hostDir is certs.d's directory for host, "" if the host has none (or
// its name could climb out of the directory).
func (c Config) hostDir(host string) string {
	if c.CertsDir == "" || host == "" || strings.ContainsAny(host, `/\`) || host == "." || host == ".." {
		return ""
	}
	return filepath.Join(c.CertsDir, host)
}

func (c Config) hasCertsDir(host string) bool {
	d := c.hostDir(host)
	if d == "" {
		return false
	}
	fi, err := os.Stat(d)
	return err == nil && fi.IsDir()
}

// certsTransport sends a request to a host with a certs.d directory
// through a transport trusting that directory's CAs and presenting its
// client certificates; other hosts go through base. The directory is read
// at a host's first request and again whenever its stamp (the names,
// sizes and modification times of the directory and its files) changes,
// so a long-running berthd sees a CA dropped in, rotated or removed at
// the next request; a stamp costs a ReadDir, far less than the request.
type certsTransport struct {
	cfg  Config
	base http.RoundTripper

	mu    sync.Mutex // guards hosts
	hosts map[string]certsEntry
}

type certsEntry struct {
	rt    http.RoundTripper // own, or base when the host has no directory
	err   error
	stamp string
	// own is the transport made for the host's directory (its idle
	// connections are closed when it is replaced).
	own *http.Transport
}

func newCertsTransport(dir string, base http.RoundTripper) *certsTransport {
	return &certsTransport{cfg: Config{CertsDir: dir}, base: base, hosts: map[string]certsEntry{}}
}

func (t *certsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return t.base.RoundTrip(req)
	}
	host := req.URL.Host
	stamp := t.cfg.dirStamp(host)
	t.mu.Lock()
	e, ok := t.hosts[host]
	if !ok || e.stamp != stamp {
		old := e.own
		e.own, e.err = t.load(host)
		e.rt = t.base
		if e.own != nil {
			e.rt = e.own
		}
		e.stamp = stamp
		t.hosts[host] = e
		// Connections made under the old CAs or client certificate must
		// not be reused: a removed CA stops being trusted at once.
		if old != nil {
			old.CloseIdleConnections()
		}
	}
	t.mu.Unlock()
	if e.err != nil {
		return nil, e.err
	}
	return e.rt.RoundTrip(req)
}

// dirStamp identifies the state of host's certs.d directory: "" when it
// has none.
func (c Config) dirStamp(host string) string {
	d := c.hostDir(host)
	if d == "" {
		return ""
	}
	fi, err := os.Stat(d)
	if err != nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d", fi.ModTime().UnixNano())
	entries, err := os.ReadDir(d)
	if err != nil {
		return b.String() + " unreadable"
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			fmt.Fprintf(&b, "|%s %d %d", e.Name(), info.Size(), info.ModTime().UnixNano())
		}
	}
	return b.String()
}

// load builds host's transport from its directory (nil, for base, if it
// has none).
func (t *certsTransport) load(host string) (*http.Transport, error) {
	dir := t.cfg.hostDir(host)
	if dir == "" || !t.cfg.hasCertsDir(host) {
		return nil, nil
	}
	tc, err := TLSConfigFromDir(dir)
	if err != nil {
		return nil, err
	}
	bt, ok := t.base.(*http.Transport)
	if !ok {
		bt = http.DefaultTransport.(*http.Transport)
	}
	tr := bt.Clone()
	tr.TLSClientConfig = tc
	return tr, nil
}

// TLSConfigFromDir reads a certs.d host directory: every *.crt is a CA
// added to the system pool; each *.cert needs the *.key of the same name
// (and a *.key its *.cert).
func TLSConfigFromDir(dir string) (*tls.Config, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("certs.d %s: %w", dir, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	read := func(name string) ([]byte, error) {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("certs.d: %w", err)
		}
		if fi.Size() > maxCertFile {
			return nil, fmt.Errorf("certs.d: %s: more than %d bytes", p, maxCertFile)
		}
		return os.ReadFile(p)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".crt"):
			b, err := read(name)
			if err != nil {
				return nil, err
			}
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("certs.d: %s has no PEM certificate", filepath.Join(dir, name))
			}
		case strings.HasSuffix(name, ".cert"):
			keyName := strings.TrimSuffix(name, ".cert") + ".key"
			certPEM, err := read(name)
			if err != nil {
				return nil, err
			}
			keyPEM, err := read(keyName)
			if err != nil {
				return nil, fmt.Errorf("certs.d: client certificate %s needs its key %s: %w", name, keyName, err)
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return nil, fmt.Errorf("certs.d: %s with %s: %w", filepath.Join(dir, name), keyName, err)
			}
			tc.Certificates = append(tc.Certificates, pair)
		case strings.HasSuffix(name, ".key"):
			if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(name, ".key")+".cert")); err != nil {
				return nil, fmt.Errorf("certs.d: key %s has no certificate %s", filepath.Join(dir, name), strings.TrimSuffix(name, ".key")+".cert")
			}
		}
	}
	return tc, nil
}
