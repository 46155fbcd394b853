// Package reference parses image references such as "busybox",
// "registry.example:5000/app:1.2" or "app@sha256:…" with Docker's
// normalisation: a name without a registry is on docker.io, a one-component
// name on docker.io is under library/, and a reference with neither tag nor
// digest means the tag "latest".
//
// A Reference returned by Parse always has a Domain and a Path, and at least
// one of Tag and Digest; String gives the fully qualified form.
package reference

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

const (
	// DefaultDomain is the registry of a reference that names none.
	DefaultDomain = "docker.io"
	// DefaultTag is the tag of a reference that names neither tag nor digest.
	DefaultTag = "latest"
	// legacyDomain is what Docker's auth files and old clients call docker.io.
	legacyDomain = "index.docker.io"
	// maxLength bounds a whole reference, as distribution does.
	maxLength = 255
)

// The grammar is distribution's (reference/regexp.go), written out.
var (
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	domainPattern = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$`)
)

// Reference is a parsed, normalised image reference.
type Reference struct {
	// Domain is the registry host, with its port if one was given ("docker.io", "localhost:5000").
	Domain string
	// Path is the repository inside the registry ("library/busybox").
	Path string
	// Tag is empty when the reference names only a digest.
	Tag string
	// Digest is empty unless the reference pins one.
	Digest digest.Digest
}

// Parse parses and normalises s. The error names the part of s at fault.
func Parse(s string) (Reference, error) {
	if s == "" {
		return Reference{}, fmt.Errorf("invalid reference: empty")
	}
	if len(s) > maxLength {
		return Reference{}, fmt.Errorf("invalid reference %q: longer than %d characters", s, maxLength)
	}
	var ref Reference
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		d, err := digest.Parse(rest[i+1:])
		if err != nil {
			return Reference{}, fmt.Errorf("invalid reference %q: digest %q: %w", s, rest[i+1:], err)
		}
		ref.Digest = d
		rest = rest[:i]
	}
	// A tag follows the last colon after the last slash; a colon before a
	// slash is a port.
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && i > strings.LastIndexByte(rest, '/') {
		ref.Tag = rest[i+1:]
		rest = rest[:i]
		if !tagPattern.MatchString(ref.Tag) {
			return Reference{}, fmt.Errorf("invalid reference %q: tag %q", s, ref.Tag)
		}
	}
	domain, path := splitDomain(rest)
	if !domainPattern.MatchString(domain) {
		return Reference{}, fmt.Errorf("invalid reference %q: registry %q", s, domain)
	}
	if path == "" {
		return Reference{}, fmt.Errorf("invalid reference %q: empty repository name", s)
	}
	for _, c := range strings.Split(path, "/") {
		if !pathComponent.MatchString(c) {
			return Reference{}, fmt.Errorf("invalid reference %q: repository name component %q (lowercase letters, digits and separators only)", s, c)
		}
	}
	if domain == legacyDomain {
		domain = DefaultDomain
	}
	if domain == DefaultDomain && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	ref.Domain, ref.Path = domain, path
	if ref.Tag == "" && ref.Digest == "" {
		ref.Tag = DefaultTag
	}
	return ref, nil
}

// splitDomain separates the registry from the repository path as Docker does:
// the first component is a registry only if it has a dot or a port, or is
// "localhost" (or an IPv6 literal).
func splitDomain(name string) (domain, path string) {
	i := strings.IndexByte(name, '/')
	if i < 0 {
		return DefaultDomain, name
	}
	first := name[:i]
	if first == "localhost" || strings.ContainsAny(first, ".:[") || strings.ToLower(first) != first {
		return first, name[i+1:]
	}
	return DefaultDomain, name
}

// Name is the repository without tag or digest: "docker.io/library/busybox".
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the fully qualified reference: name, then ":tag" and/or "@digest".
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Familiar is the short form Docker shows: "busybox:latest" for
// docker.io/library/busybox:latest, "user/app:1" for docker.io/user/app:1.
func (r Reference) Familiar() string {
	s := r.String()
	if r.Domain == DefaultDomain {
		s = strings.TrimPrefix(strings.TrimPrefix(s, DefaultDomain+"/"), "library/")
	}
	return s
}

// WithTag returns r naming tag and no digest.
func (r Reference) WithTag(tag string) (Reference, error) {
	if !tagPattern.MatchString(tag) {
		return Reference{}, fmt.Errorf("invalid tag %q", tag)
	}
	r.Tag, r.Digest = tag, ""
	return r, nil
}

// WithDigest returns r pinned to d, keeping its tag.
func (r Reference) WithDigest(d digest.Digest) Reference {
	r.Digest = d
	return r
}

// Object is what a registry is asked for: the digest if there is one, else the tag.
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}
