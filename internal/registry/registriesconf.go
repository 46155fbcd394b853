package registry

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// maxRegistriesConf bounds a registries.conf file.
const maxRegistriesConf = 1 << 20

// Prefix is a [[registry]] table of containers-registries.conf v2: images
// whose name starts with Prefix are pulled from Location (the prefix
// rewritten) after its mirrors, or refused if Blocked.
type Prefix struct {
	Prefix   string
	Location string
	Insecure bool
	Blocked  bool
	Mirrors  []Mirror
}

// Mirror is a [[registry.mirror]] table.
type Mirror struct {
	Location string
	Insecure bool
	// PullFromMirror is "all" (default), "digest-only" or "tag-only".
	PullFromMirror string
}

type registriesConf struct {
	UnqualifiedSearchRegistries []string          `toml:"unqualified-search-registries"`
	Registries                  []registryTable   `toml:"registry"`
	ShortNameMode               string            `toml:"short-name-mode"`
	Aliases                     map[string]string `toml:"aliases"`
	CredentialHelpers           []string          `toml:"credential-helpers"`
}

type registryTable struct {
	Prefix   string `toml:"prefix"`
	Location string `toml:"location"`
	Insecure bool   `toml:"insecure"`
	Blocked  bool   `toml:"blocked"`
	Mirrors  []struct {
		Location       string `toml:"location"`
		Insecure       bool   `toml:"insecure"`
		PullFromMirror string `toml:"pull-from-mirror"`
	} `toml:"mirror"`
	MirrorByDigestOnly bool `toml:"mirror-by-digest-only"`
}

// LoadRegistriesConf reads the first of paths that exists (a
// containers-registries.conf v2 file) into c; none existing leaves c as it
// is. Its settings come after registries.json's for the same host.
func (c *Config) LoadRegistriesConf(paths ...string) error {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("read registries.conf: %w", err)
		}
		return c.ParseRegistriesConf(b, p)
	}
	return nil
}

// ParseRegistriesConf adds a registries.conf v2 document to c. Keys Berth
// does not act on (short-name-mode, aliases, credential-helpers) are
// accepted; unknown keys are errors.
func (c *Config) ParseRegistriesConf(b []byte, source string) error {
	if len(b) > maxRegistriesConf {
		return fmt.Errorf("registries.conf %s: more than %d bytes", source, maxRegistriesConf)
	}
	var rc registriesConf
	md, err := toml.Decode(string(b), &rc)
	if err != nil {
		return fmt.Errorf("registries.conf %s: %w", source, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return fmt.Errorf("registries.conf %s: unknown key %q", source, und[0].String())
	}
	seen := map[string]bool{}
	for i, r := range rc.Registries {
		where := fmt.Sprintf("registries.conf %s: [[registry]] %d", source, i+1)
		p := Prefix{Prefix: r.Prefix, Location: r.Location, Insecure: r.Insecure, Blocked: r.Blocked}
		if p.Prefix == "" {
			p.Prefix = p.Location
		}
		if p.Prefix == "" {
			return fmt.Errorf("%s: needs location or prefix", where)
		}
		if strings.Contains(p.Prefix, "*") {
			if !strings.HasPrefix(p.Prefix, "*.") || strings.ContainsAny(p.Prefix[2:], "*/:") {
				return fmt.Errorf("%s: prefix %q: a wildcard is *.domain", where, p.Prefix)
			}
			if r.Location != "" {
				return fmt.Errorf("%s: a wildcard prefix takes no location", where)
			}
		} else if err := checkLocation(p.Prefix); err != nil {
			return fmt.Errorf("%s: prefix: %w", where, err)
		}
		if p.Location != "" {
			if err := checkLocation(p.Location); err != nil {
				return fmt.Errorf("%s: location: %w", where, err)
			}
		}
		if seen[p.Prefix] {
			return fmt.Errorf("%s: prefix %q appears twice", where, p.Prefix)
		}
		seen[p.Prefix] = true
		for j, m := range r.Mirrors {
			if err := checkLocation(m.Location); err != nil {
				return fmt.Errorf("%s: mirror %d: location: %w", where, j+1, err)
			}
			mode := m.PullFromMirror
			if r.MirrorByDigestOnly && mode == "" {
				mode = "digest-only"
			}
			switch mode {
			case "", "all", "digest-only", "tag-only":
			default:
				return fmt.Errorf("%s: mirror %d: pull-from-mirror %q is all, digest-only or tag-only", where, j+1, mode)
			}
			p.Mirrors = append(p.Mirrors, Mirror{Location: m.Location, Insecure: m.Insecure, PullFromMirror: mode})
		}
		c.Prefixes = append(c.Prefixes, p)
		// Berth's insecure is per host: plain HTTP to it.
		if p.Insecure && p.Location != "" {
			c.markInsecure(p.Location)
		}
		for _, m := range p.Mirrors {
			if m.Insecure {
				c.markInsecure(m.Location)
			}
		}
	}
	// Longest prefix first: the most specific table wins.
	sort.SliceStable(c.Prefixes, func(i, j int) bool { return len(c.Prefixes[i].Prefix) > len(c.Prefixes[j].Prefix) })
	c.UnqualifiedSearch = append(c.UnqualifiedSearch, rc.UnqualifiedSearchRegistries...)
	return nil
}

func checkLocation(l string) error {
	switch {
	case l == "":
		return errors.New("empty")
	case strings.Contains(l, "://"):
		return fmt.Errorf("%q: no scheme, only host[:port][/path]", l)
	case strings.ContainsAny(l, " \t@") || strings.HasSuffix(l, "/"):
		return fmt.Errorf("%q is not host[:port][/path]", l)
	}
	return nil
}

// endpoint is a place to pull a repository from.
type endpoint struct {
	host, path string
}

// prefixFor is the most specific [[registry]] table matching name
// (host/path), if any.
func (c Config) prefixFor(name string) (Prefix, bool) {
	host, _, _ := strings.Cut(name, "/")
	hostname := host
	if i := strings.LastIndexByte(hostname, ':'); i >= 0 && !strings.HasSuffix(hostname, "]") {
		hostname = hostname[:i]
	}
	for _, p := range c.Prefixes {
		if strings.HasPrefix(p.Prefix, "*.") {
			if strings.HasSuffix(hostname, p.Prefix[1:]) {
				return p, true
			}
			continue
		}
		if name == p.Prefix || strings.HasPrefix(name, p.Prefix+"/") {
			return p, true
		}
	}
	return Prefix{}, false
}

// splitLocation turns a location plus the rest of a name into host and path.
func splitLocation(location, rest string) (string, string) {
	full := location + rest
	host, path, _ := strings.Cut(full, "/")
	return host, path
}

func (c *Config) markInsecure(location string) {
	host, _, _ := strings.Cut(location, "/")
	if c.Registries == nil {
		c.Registries = map[string]HostConfig{}
	}
	hc := c.Registries[host]
	hc.Insecure = true
	c.Registries[host] = hc
}

// endpoints lists where ref is pulled from, in order: registries.json's
// mirrors of its host, then those of the most specific registries.conf
// [[registry]] (their pull-from-mirror permitting), then its location.
// A blocked prefix is an error.
func (c Config) endpoints(name, domain, path string, byDigest bool) ([]endpoint, error) {
	var out []endpoint
	for _, m := range c.Registries[domain].Mirrors {
		out = append(out, endpoint{host: m, path: path})
	}
	p, ok := c.prefixFor(name)
	if !ok {
		return append(out, endpoint{host: domain, path: path}), nil
	}
	if p.Blocked {
		return nil, fmt.Errorf("%s is blocked by registries.conf (prefix %s)", name, p.Prefix)
	}
	rest := ""
	if !strings.HasPrefix(p.Prefix, "*.") {
		rest = strings.TrimPrefix(name, p.Prefix)
	}
	for _, m := range p.Mirrors {
		if (m.PullFromMirror == "digest-only" && !byDigest) || (m.PullFromMirror == "tag-only" && byDigest) {
			continue
		}
		loc := m.Location
		if rest == "" && strings.HasPrefix(p.Prefix, "*.") {
			loc += "/" + path
		}
		h, pa := splitLocation(loc, rest)
		out = append(out, endpoint{host: h, path: pa})
	}
	if p.Location == "" {
		return append(out, endpoint{host: domain, path: path}), nil
	}
	h, pa := splitLocation(p.Location, rest)
	return append(out, endpoint{host: h, path: pa}), nil
}
