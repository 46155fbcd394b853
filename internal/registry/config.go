// Package registry talks to OCI distribution (1.1) and Docker Registry v2
// servers through oras-go: resolving references, fetching manifests and
// blobs (retrying 5xx and dropped connections with backoff, resuming a blob
// with an HTTP Range request), pushing, reading referrers, and logging in.
//
// Per-registry settings come from a JSON file (see Config): plain-HTTP
// ("insecure") registries and mirrors. localhost, 127.0.0.1 and ::1 are
// always spoken to over plain HTTP.
package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Config is the registries file, e.g. ROOT/registries.json:
//
//	{
//	  "registries": {
//	    "registry.internal:5000": {"insecure": true},
//	    "docker.io": {"mirrors": ["mirror.internal:5000"]}
//	  }
//	}
//
// Keys are registry hosts as written in references (with the port, if any).
type Config struct {
	Registries map[string]HostConfig `json:"registries"`
	// Prefixes are containers-registries.conf's [[registry]] tables, the
	// longest prefix first (see LoadRegistriesConf).
	Prefixes []Prefix `json:"-"`
	// UnqualifiedSearch is registries.conf's unqualified-search-registries
	// (see ResolveShortName); UnqualifiedSearchSource the file that set it.
	UnqualifiedSearch       []string `json:"-"`
	UnqualifiedSearchSource string   `json:"-"`
	// ShortNameMode is registries.conf's short-name-mode ("" means
	// permissive, as containers/image defaults).
	ShortNameMode string `json:"-"`
	// Aliases are registries.conf's [aliases]: short name to repository.
	Aliases map[string]Alias `json:"-"`
	// CertsDir holds per-registry TLS material as containers-certs.d
	// describes: CertsDir/HOST[:PORT]/*.crt are CA certificates added to
	// the system's, *.cert with the *.key of the same name client
	// certificates. A host with such a directory is spoken to over TLS
	// even on loopback. Empty means none.
	CertsDir string `json:"-"`
}

// HostConfig holds the settings of one registry.
type HostConfig struct {
	// Insecure makes Berth speak plain HTTP to the registry.
	Insecure bool `json:"insecure,omitempty"`
	// Mirrors are tried in order before the registry itself for pulls;
	// each mirror is a host (with port) that serves the same repositories.
	Mirrors []string `json:"mirrors,omitempty"`
}

// LoadConfig reads the first of paths that exists; none existing is an empty Config.
func LoadConfig(paths ...string) (Config, error) {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return Config{}, fmt.Errorf("read registries config: %w", err)
		}
		var c Config
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return Config{}, fmt.Errorf("registries config %s: %w", p, err)
		}
		return c, nil
	}
	return Config{}, nil
}

// plainHTTP reports whether host is spoken to without TLS.
func (c Config) plainHTTP(host string) bool {
	if c.Registries[host].Insecure || c.insecureHost(host) {
		return true
	}
	if c.hasCertsDir(host) {
		return false
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
