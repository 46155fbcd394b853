package registry

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	// Source is the file the table came from.
	Source string
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

// RegistriesConfPaths is where berth and berthd look for registries.conf:
// file if given (--registries-conf; then only the drop-ins beside it),
// else ROOT/registries.conf, then /etc/containers/registries.conf, with
// the drop-ins of /etc/containers/registries.conf.d before those beside
// the file read (see LoadRegistriesConfDirs).
func RegistriesConfPaths(root, file string) (paths, dropInDirs []string) {
	if file != "" {
		return []string{file}, nil
	}
	return []string{filepath.Join(root, "registries.conf"), "/etc/containers/registries.conf"}, []string{"/etc/containers/registries.conf.d"}
}

// LoadRegistriesConf reads the first of paths that exists (a
// containers-registries.conf v2 file) and then its drop-ins (see
// LoadRegistriesConfDirs, with no other directories).
func (c *Config) LoadRegistriesConf(paths ...string) error {
	return c.LoadRegistriesConfDirs(paths, nil)
}

// LoadRegistriesConfDirs reads the first of paths that exists, then the
// drop-in files of containers-registries.conf.d(5): the `*.conf` files of
// each of dropInDirs and then of the registries.conf.d directory beside
// the file read (beside paths[0] when none exists), each directory's in
// lexical order, a directory named twice read once. A later file
// overrides the keys it sets (unqualified-search-registries,
// short-name-mode, credential-helpers replaced whole, aliases one by one,
// an empty alias erasing one) and its [[registry]] tables replace earlier
// ones of the same prefix. Its settings come after registries.json's for
// the same host. A bad file is an error naming it; c is then unchanged by
// that file.
func (c *Config) LoadRegistriesConfDirs(paths []string, dropInDirs []string) error {
	used := ""
	for _, p := range paths {
		b, err := readConf(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		if err := c.ParseRegistriesConf(b, p); err != nil {
			return err
		}
		used = p
		break
	}
	if used == "" && len(paths) > 0 {
		used = paths[0]
	}
	dirs := append([]string(nil), dropInDirs...)
	if used != "" {
		dirs = append(dirs, filepath.Join(filepath.Dir(used), "registries.conf.d"))
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[filepath.Clean(d)] {
			continue
		}
		seen[filepath.Clean(d)] = true
		entries, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("registries.conf.d %s: %w", d, err)
		}
		if len(entries) > maxDropIns {
			return fmt.Errorf("registries.conf.d %s: more than %d entries", d, maxDropIns)
		}
		// ReadDir sorts by name: the lexical order the man page asks for.
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".conf") || !e.Type().IsRegular() {
				continue // other files and subdirectories are ignored
			}
			p := filepath.Join(d, e.Name())
			b, err := readConf(p)
			if err != nil {
				return err
			}
			if err := c.ParseRegistriesConf(b, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxDropIns bounds the entries of a registries.conf.d directory.
const maxDropIns = 1000

func readConf(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read registries.conf: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRegistriesConf+1))
	if err != nil {
		return nil, fmt.Errorf("read registries.conf %s: %w", p, err)
	}
	return b, nil
}

// ParseRegistriesConf adds a registries.conf v2 document to c as a
// drop-in does: the keys it sets replace c's, its [[registry]] tables
// replace those of the same prefix. Keys Berth does not act on
// (credential-helpers) are accepted; unknown keys are errors.
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
	// Check everything before changing c: a bad file changes nothing.
	var prefixes []Prefix
	seen := map[string]bool{}
	for i, r := range rc.Registries {
		where := fmt.Sprintf("registries.conf %s: [[registry]] %d", source, i+1)
		p, err := prefixOf(r, where)
		if err != nil {
			return err
		}
		if seen[p.Prefix] {
			return fmt.Errorf("%s: prefix %q appears twice", where, p.Prefix)
		}
		seen[p.Prefix] = true
		p.Source = source
		prefixes = append(prefixes, p)
	}
	switch rc.ShortNameMode {
	case "", ShortNameEnforcing, ShortNamePermissive, ShortNameDisabled:
	default:
		return fmt.Errorf("registries.conf %s: short-name-mode %q is enforcing, permissive or disabled", source, rc.ShortNameMode)
	}
	for i, r := range rc.UnqualifiedSearchRegistries {
		if err := checkSearchRegistry(r); err != nil {
			return fmt.Errorf("registries.conf %s: unqualified-search-registries[%d]: %w", source, i, err)
		}
	}
	for name, target := range rc.Aliases {
		if err := checkAlias(name, target); err != nil {
			return fmt.Errorf("registries.conf %s: [aliases] %q: %w", source, name, err)
		}
	}

	for _, p := range prefixes {
		replaced := false
		for i := range c.Prefixes {
			if c.Prefixes[i].Prefix == p.Prefix {
				c.Prefixes[i], replaced = p, true
			}
		}
		if !replaced {
			c.Prefixes = append(c.Prefixes, p)
		}
	}
	// Longest prefix first: the most specific table wins.
	sort.SliceStable(c.Prefixes, func(i, j int) bool { return len(c.Prefixes[i].Prefix) > len(c.Prefixes[j].Prefix) })
	if md.IsDefined("unqualified-search-registries") {
		c.UnqualifiedSearch = append([]string(nil), rc.UnqualifiedSearchRegistries...)
		c.UnqualifiedSearchSource = source
	}
	if rc.ShortNameMode != "" {
		c.ShortNameMode = rc.ShortNameMode
	}
	for name, target := range rc.Aliases {
		if target == "" {
			delete(c.Aliases, name)
			continue
		}
		if c.Aliases == nil {
			c.Aliases = map[string]Alias{}
		}
		c.Aliases[name] = Alias{Target: target, Source: source}
	}
	return nil
}

// prefixOf checks a [[registry]] table and turns it into a Prefix.
func prefixOf(r registryTable, where string) (Prefix, error) {
	p := Prefix{Prefix: r.Prefix, Location: r.Location, Insecure: r.Insecure, Blocked: r.Blocked}
	if p.Prefix == "" {
		p.Prefix = p.Location
	}
	if p.Prefix == "" {
		return Prefix{}, fmt.Errorf("%s: needs location or prefix", where)
	}
	if strings.Contains(p.Prefix, "*") {
		if !strings.HasPrefix(p.Prefix, "*.") || strings.ContainsAny(p.Prefix[2:], "*/:") {
			return Prefix{}, fmt.Errorf("%s: prefix %q: a wildcard is *.domain", where, p.Prefix)
		}
		if r.Location != "" {
			return Prefix{}, fmt.Errorf("%s: a wildcard prefix takes no location", where)
		}
	} else if err := checkLocation(p.Prefix); err != nil {
		return Prefix{}, fmt.Errorf("%s: prefix: %w", where, err)
	}
	if p.Location != "" {
		if err := checkLocation(p.Location); err != nil {
			return Prefix{}, fmt.Errorf("%s: location: %w", where, err)
		}
	}
	for j, m := range r.Mirrors {
		if err := checkLocation(m.Location); err != nil {
			return Prefix{}, fmt.Errorf("%s: mirror %d: location: %w", where, j+1, err)
		}
		mode := m.PullFromMirror
		if r.MirrorByDigestOnly && mode == "" {
			mode = "digest-only"
		}
		switch mode {
		case "", "all", "digest-only", "tag-only":
		default:
			return Prefix{}, fmt.Errorf("%s: mirror %d: pull-from-mirror %q is all, digest-only or tag-only", where, j+1, mode)
		}
		p.Mirrors = append(p.Mirrors, Mirror{Location: m.Location, Insecure: m.Insecure, PullFromMirror: mode})
	}
	return p, nil
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

// insecureHost reports whether registries.conf marks host insecure: the
// location of a [[registry]] or of a mirror with insecure = true (Berth's
// insecure is per host: plain HTTP to it).
func (c Config) insecureHost(host string) bool {
	hostOf := func(l string) string { h, _, _ := strings.Cut(l, "/"); return h }
	for _, p := range c.Prefixes {
		if p.Insecure && p.Location != "" && hostOf(p.Location) == host {
			return true
		}
		for _, m := range p.Mirrors {
			if m.Insecure && hostOf(m.Location) == host {
				return true
			}
		}
	}
	return false
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
