// Package registriesd reads a containers-registries.d directory (the
// `*.yaml` files of /etc/containers/registries.d, containers/image's
// docs/containers-registries.d.5.md): per-scope settings for where an
// image's signatures are stored. Each file is a YAML mapping with two
// optional keys, `default-docker` (one section) and `docker` (a mapping
// from scope to section); a section has `lookaside`, `lookaside-staging`
// (and their old names `sigstore`, `sigstore-staging`) and
// `use-sigstore-attachments`.
//
// The files are merged: a scope (and default-docker) may be configured in
// only one place across all files, as containers/image requires. For an
// image, only the most specific scope's section applies (the reference with
// its tag or digest, its repository, each parent namespace, the host, then
// *.domain wildcards; then default-docker), never a merge of several.
//
// Parsing is strict: an unknown key, a value of the wrong type, a key
// repeated in one mapping or a scope defined twice is an error naming the
// file and line. Berth acts on use-sigstore-attachments only as far as
// internal/trust says; lookaside (simple-signing signature storage for
// GPG `signedBy`, which Berth refuses) is read and shown, never fetched.
package registriesd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/trust/policy"
)

// Limits on what is read.
const (
	// MaxFileSize bounds one YAML file.
	MaxFileSize = 1 << 20
	// MaxFiles bounds the files read from a directory.
	MaxFiles = 1000
)

// Section is one configuration section.
type Section struct {
	// Lookaside is where simple-signing signatures are read from
	// (`lookaside`, or its old name `sigstore`); LookasideStaging where
	// they are written.
	Lookaside        string `json:"lookaside,omitempty"`
	LookasideStaging string `json:"lookasideStaging,omitempty"`
	// UseSigstoreAttachments is nil when the section does not say.
	UseSigstoreAttachments *bool `json:"useSigstoreAttachments,omitempty"`
	// Source is FILE:LINE of the section.
	Source string `json:"source"`
}

// Config is a registries.d directory, merged.
type Config struct {
	// Dir is the directory read ("" when none existed).
	Dir string
	// Default is default-docker's section, if any file has one.
	Default *Section
	// Docker maps a scope to its section.
	Docker map[string]Section
}

// Match is the section that applies to an image.
type Match struct {
	// Scope is the docker scope matched, or "default-docker".
	Scope   string
	Section Section
}

// Load reads the first of dirs that exists (a user's directory before the
// system's, as containers/image chooses one, never both); none existing
// is an empty Config. Only regular `*.yaml` files directly in the
// directory are read, in lexical order.
func Load(dirs ...string) (*Config, error) {
	c := &Config{Docker: map[string]Section{}}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("registries.d %s: %w", d, err)
		}
		c.Dir = d
		var names []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".yaml") && e.Type().IsRegular() {
				names = append(names, e.Name())
			}
		}
		if len(names) > MaxFiles {
			return nil, fmt.Errorf("registries.d %s: %d files, more than %d", d, len(names), MaxFiles)
		}
		sort.Strings(names)
		for _, n := range names {
			p := filepath.Join(d, n)
			b, err := readLimited(p)
			if err != nil {
				return nil, err
			}
			if err := c.Parse(b, p); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
	return c, nil
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("registries.d: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("registries.d %s: %w", p, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("registries.d %s: more than %d bytes", p, MaxFileSize)
	}
	return b, nil
}

// ParseError is a file's error, at a line when known.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("registries.d %s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("registries.d %s: %s", e.File, e.Msg)
}

// Parse adds one YAML file's sections to c; file names it in errors.
func (c *Config) Parse(b []byte, file string) error {
	if c.Docker == nil {
		c.Docker = map[string]Section{}
	}
	fail := func(line int, format string, a ...any) error {
		return &ParseError{File: file, Line: line, Msg: fmt.Sprintf(format, a...)}
	}
	if len(b) > MaxFileSize {
		return fail(0, "more than %d bytes", MaxFileSize)
	}
	if !utf8.Valid(b) {
		return fail(0, "not valid UTF-8")
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file configures nothing
		}
		return fail(0, "YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fail(extra.Line, "more than one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	pairs, err := mapping(root, "the file", fail)
	if err != nil {
		return err
	}
	// Check the whole file before adding any of it: a bad file adds nothing.
	var def *Section
	docker := map[string]Section{}
	for _, kv := range pairs {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "default-docker":
			s, err := section(v, "default-docker", file, fail)
			if err != nil {
				return err
			}
			def = &s
		case "docker":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue
			}
			scopes, err := mapping(v, "docker", fail)
			if err != nil {
				return err
			}
			for _, skv := range scopes {
				scope := skv[0].Value
				if err := validScope(scope); err != nil {
					return fail(skv[0].Line, "docker scope %q: %v", scope, err)
				}
				s, err := section(skv[1], "docker scope "+scope, file, fail)
				if err != nil {
					return err
				}
				s.Source = fmt.Sprintf("%s:%d", file, skv[0].Line)
				if prev, ok := c.Docker[scope]; ok {
					return fail(skv[0].Line, "docker scope %q is already configured at %s", scope, prev.Source)
				}
				docker[scope] = s
			}
		default:
			return fail(k.Line, "unknown key %q (want default-docker or docker)", k.Value)
		}
	}
	if def != nil {
		if c.Default != nil {
			return fail(lineOf(def.Source), "default-docker is already configured at %s", c.Default.Source)
		}
		c.Default = def
	}
	for k, v := range docker {
		c.Docker[k] = v
	}
	return nil
}

func lineOf(source string) int {
	var line int
	if i := strings.LastIndexByte(source, ':'); i >= 0 {
		fmt.Sscanf(source[i+1:], "%d", &line)
	}
	return line
}

type failFunc func(line int, format string, a ...any) error

// mapping returns n's key/value pairs, refusing anything but a mapping
// with distinct scalar keys.
func mapping(n *yaml.Node, what string, fail failFunc) ([][2]*yaml.Node, error) {
	if n.Kind == yaml.AliasNode {
		return nil, fail(n.Line, "%s: YAML aliases are not accepted", what)
	}
	if n.Kind != yaml.MappingNode {
		return nil, fail(n.Line, "%s must be a mapping", what)
	}
	seen := map[string]int{}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, fail(k.Line, "%s: keys must be strings", what)
		}
		if v.Kind == yaml.AliasNode {
			return nil, fail(v.Line, "%s: %s: YAML aliases are not accepted", what, k.Value)
		}
		if prev, ok := seen[k.Value]; ok {
			return nil, fail(k.Line, "%s: key %q repeats line %d", what, k.Value, prev)
		}
		seen[k.Value] = k.Line
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out, nil
}

func section(n *yaml.Node, what, file string, fail failFunc) (Section, error) {
	s := Section{Source: fmt.Sprintf("%s:%d", file, n.Line)}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return s, nil // an empty section: the scope configures nothing
	}
	pairs, err := mapping(n, what, fail)
	if err != nil {
		return Section{}, err
	}
	var sigstore, sigstoreStaging string
	for _, kv := range pairs {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "lookaside", "lookaside-staging", "sigstore", "sigstore-staging":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
				return Section{}, fail(v.Line, "%s: %s must be a URL string", what, k.Value)
			}
			if err := validURL(v.Value); err != nil {
				return Section{}, fail(v.Line, "%s: %s: %v", what, k.Value, err)
			}
			switch k.Value {
			case "lookaside":
				s.Lookaside = v.Value
			case "lookaside-staging":
				s.LookasideStaging = v.Value
			case "sigstore":
				sigstore = v.Value
			case "sigstore-staging":
				sigstoreStaging = v.Value
			}
		case "use-sigstore-attachments":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				return Section{}, fail(v.Line, "%s: use-sigstore-attachments must be true or false, not %q", what, v.Value)
			}
			b := v.Value == "true" || v.Value == "True" || v.Value == "TRUE"
			s.UseSigstoreAttachments = &b
		default:
			return Section{}, fail(k.Line, "%s: unknown key %q (want lookaside, lookaside-staging, use-sigstore-attachments)", what, k.Value)
		}
	}
	// sigstore and sigstore-staging are the old names: one name per
	// setting, so a reader cannot wonder which wins.
	if sigstore != "" {
		if s.Lookaside != "" {
			return Section{}, fail(n.Line, "%s: both lookaside and its old name sigstore are set", what)
		}
		s.Lookaside = sigstore
	}
	if sigstoreStaging != "" {
		if s.LookasideStaging != "" {
			return Section{}, fail(n.Line, "%s: both lookaside-staging and its old name sigstore-staging are set", what)
		}
		s.LookasideStaging = sigstoreStaging
	}
	return s, nil
}

func validURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "http", "https", "file":
		return nil
	case "":
		return fmt.Errorf("%q has no scheme (http, https or file)", s)
	}
	return fmt.Errorf("%q: scheme %q is not http, https or file", s, u.Scheme)
}

// validScope accepts what a scope of containers/image's docker transport
// may be: a host[:port], a repository or namespace under it, a reference
// with tag or digest, or a *.domain wildcard.
func validScope(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.HasPrefix(s, "*.") {
		if strings.ContainsAny(s[2:], "*/:@") || len(s) == 2 {
			return errors.New("a wildcard scope is *.domain")
		}
		return nil
	}
	if strings.ContainsAny(s, " \t*") || strings.HasSuffix(s, "/") || strings.Contains(s, "://") {
		return errors.New("not host[:port][/path][:tag|@digest]")
	}
	// A scope naming a repository parses as a fully qualified reference;
	// a bare host[:port] does with any repository below it.
	full := s
	if !strings.Contains(s, "/") {
		full = s + "/x"
	}
	r, err := reference.Parse(full)
	if err != nil {
		return err
	}
	host, _, _ := strings.Cut(full, "/")
	if r.Domain != host {
		return errors.New("not fully qualified (it must start with the registry host)")
	}
	return nil
}

// For returns the section that applies to ref: the most specific docker
// scope configured, else default-docker; ok is false when neither is.
func (c *Config) For(ref reference.Reference) (Match, bool) {
	if c == nil {
		return Match{}, false
	}
	for _, s := range policy.Scopes(ref) {
		if sec, ok := c.Docker[s]; ok {
			return Match{Scope: s, Section: sec}, true
		}
	}
	if c.Default != nil {
		return Match{Scope: "default-docker", Section: *c.Default}, true
	}
	return Match{}, false
}

// UseSigstoreAttachments reports what the section says: set is false when
// it says nothing.
func (m Match) UseSigstoreAttachments() (use, set bool) {
	if m.Section.UseSigstoreAttachments == nil {
		return false, false
	}
	return *m.Section.UseSigstoreAttachments, true
}

// Describe is the match in one line for `berth image verify`.
func (m Match) Describe() string {
	var parts []string
	if use, set := m.UseSigstoreAttachments(); set {
		parts = append(parts, fmt.Sprintf("use-sigstore-attachments: %t", use))
	}
	if m.Section.Lookaside != "" {
		parts = append(parts, "lookaside: "+m.Section.Lookaside)
	}
	if len(parts) == 0 {
		parts = append(parts, "no settings")
	}
	return fmt.Sprintf("%s (scope %s, %s)", strings.Join(parts, ", "), m.Scope, m.Section.Source)
}
