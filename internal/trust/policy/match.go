package policy

import (
	"strings"

	"github.com/berth-project/berth/internal/reference"
)

// Scope is the requirement list that applies to an image and where it came from.
type Scope struct {
	// Name is the transports.docker scope that matched, "" for the
	// transport's default, or "default".
	Name         string
	Requirements []Requirement
}

// For returns the requirements for ref: the most specific matching scope
// of transports.docker (the reference itself, its repository, each parent
// namespace, the host[:port], then *.domain wildcards from the longest),
// then the transport's "" scope, then the policy's default.
func (p *Policy) For(ref reference.Reference) Scope {
	for _, s := range Scopes(ref) {
		if reqs, ok := p.Docker[s]; ok {
			return Scope{Name: s, Requirements: reqs}
		}
	}
	if reqs, ok := p.Docker[""]; ok {
		return Scope{Name: "", Requirements: reqs}
	}
	return Scope{Name: "default", Requirements: p.Default}
}

// Scopes lists ref's scopes from the most specific, as containers/image's
// docker transport does (PolicyConfigurationIdentity, then
// PolicyConfigurationNamespaces); registries.d matches the same scopes.
func Scopes(ref reference.Reference) []string {
	var out []string
	if ref.Digest != "" {
		out = append(out, ref.Name()+"@"+ref.Digest.String())
	}
	if ref.Tag != "" {
		out = append(out, ref.Name()+":"+ref.Tag)
	}
	name := ref.Name()
	for {
		out = append(out, name)
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			break
		}
		name = name[:i]
	}
	// name is now the host with its port; wildcards match the host name only.
	host := name
	if strings.HasPrefix(host, "[") {
		return out // an IPv6 literal has no subdomains
	}
	if i := strings.IndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	for {
		i := strings.IndexByte(host, '.')
		if i < 0 {
			break
		}
		host = host[i+1:]
		out = append(out, "*."+host)
	}
	return out
}

// signedRef is the docker-reference a signature claims, which (unlike a
// pulled reference) may be a bare repository name.
type signedRef struct {
	reference.Reference
	nameOnly bool
}

// parseSigned parses a claimed identity without Docker's normalisation of
// a missing tag to "latest". A claimed identity must be fully qualified,
// as containers/image requires: "busybox" is not docker.io/library/busybox.
func parseSigned(s string) (signedRef, error) {
	r, err := reference.Parse(s)
	if err != nil {
		return signedRef{}, err
	}
	last := s[strings.LastIndexByte(s, '/')+1:]
	nameOnly := !strings.ContainsAny(last, ":@")
	if nameOnly {
		r.Tag = ""
	}
	if canonical := (signedRef{Reference: r, nameOnly: nameOnly}).String(); canonical != s {
		return signedRef{}, errNotQualified
	}
	return signedRef{Reference: r, nameOnly: nameOnly}, nil
}

type qualifiedError struct{}

func (qualifiedError) Error() string { return "not a fully qualified reference" }

var errNotQualified error = qualifiedError{}

// Matches reports whether a signature claiming signed (its
// critical.identity.docker-reference) is acceptable for an image pulled as
// intended, as containers/image's policy_reference_match.go decides.
func (id Identity) Matches(intended reference.Reference, signed string) bool {
	sig, err := parseSigned(signed)
	if err != nil {
		return false
	}
	switch id.Type {
	case IdentityMatchExact:
		return !sig.nameOnly && exactString(intended) == sig.String()
	case IdentityMatchRepoDigestOrExact, "":
		return matchRepoDigestOrExact(intended, sig)
	case IdentityMatchRepository:
		return sig.Name() == intended.Name()
	case IdentityExactReference:
		return !sig.nameOnly && sig.String() == id.DockerReference
	case IdentityExactRepository:
		return sig.Name() == id.DockerRepository
	case IdentityRemapIdentity:
		name := intended.Name()
		if name == id.Prefix || (strings.HasPrefix(name, id.Prefix) && name[len(id.Prefix)] == '/') {
			remapped, err := reference.Parse(id.SignedPrefix + name[len(id.Prefix):] + suffix(intended))
			if err != nil {
				return false
			}
			intended = remapped
		}
		return matchRepoDigestOrExact(intended, sig)
	}
	return false
}

func matchRepoDigestOrExact(intended reference.Reference, sig signedRef) bool {
	if sig.nameOnly {
		return false
	}
	if intended.Tag != "" {
		return exactString(intended) == sig.String()
	}
	// A digest reference: the signature's digest is checked against the
	// manifest elsewhere; here only the repository must agree.
	return sig.Name() == intended.Name()
}

// exactString is the reference as containers/image names it: with a tag,
// or with a digest when there is no tag.
func exactString(r reference.Reference) string {
	if r.Tag != "" {
		return r.Name() + ":" + r.Tag
	}
	return r.Name() + "@" + r.Digest.String()
}

func suffix(r reference.Reference) string {
	s := ""
	if r.Tag != "" {
		s = ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Describe is a short human description of an identity rule.
func (id Identity) Describe() string {
	switch id.Type {
	case IdentityExactReference:
		return "exactReference " + id.DockerReference
	case IdentityExactRepository:
		return "exactRepository " + id.DockerRepository
	case IdentityRemapIdentity:
		return "remapIdentity " + id.Prefix + " -> " + id.SignedPrefix
	}
	return id.Type
}
