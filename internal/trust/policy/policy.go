// Package policy reads containers-policy.json, the signature policy format
// of Podman, CRI-O and skopeo (containers/image's docs/containers-policy.json.5.md),
// and answers the two questions verification asks of it: which requirements
// apply to an image reference (the most specific scope of transports.docker,
// then the transport's "" scope, then "default"), and whether the identity a
// signature claims is acceptable for the reference (signedIdentity).
//
// Parsing is strict, as containers/image's is: an unknown or duplicated
// field, an empty requirement list or a requirement missing what it needs
// makes the whole file an error naming the field. Only the docker
// transport is read; other transports' sections must still be well formed
// JSON objects and are otherwise ignored (Berth pulls only from registries).
//
// Keys and CA certificates named by path are read by Load, not by Parse,
// and their contents are part of the policy's Hash: replacing a key file
// changes the policy.
package policy

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// MaxSize bounds a policy file, and each key or certificate file it names.
const MaxSize = 1 << 20

// Requirement types.
const (
	TypeInsecureAcceptAnything = "insecureAcceptAnything"
	TypeReject                 = "reject"
	TypeSigstoreSigned         = "sigstoreSigned"
)

// Identity types (signedIdentity).
const (
	IdentityMatchExact             = "matchExact"
	IdentityMatchRepoDigestOrExact = "matchRepoDigestOrExact"
	IdentityMatchRepository        = "matchRepository"
	IdentityExactReference         = "exactReference"
	IdentityExactRepository        = "exactRepository"
	IdentityRemapIdentity          = "remapIdentity"
)

// Policy is a parsed policy file.
type Policy struct {
	// Source names the file (or "" for a policy built in memory).
	Source string
	// Default applies when no scope of the docker transport does.
	Default []Requirement
	// Docker maps a transports.docker scope to its requirements; the
	// scope "" is the transport's own default.
	Docker map[string][]Requirement
	// AcceptAll is set for the policy in force when there is no file.
	AcceptAll bool

	hash string
	// paths are the key and CA files read; files is their stamp then.
	paths []string
	files string
}

// Requirement is one element of a requirement list; all of a list's
// requirements must be satisfied.
type Requirement struct {
	Type string
	// KeyPaths and KeyData (PEM) are sigstoreSigned's public keys: a
	// signature made with any of them satisfies the requirement.
	KeyPaths []string
	KeyData  [][]byte
	// Keys are the parsed keys, filled by Load (or ResolveFiles);
	// KeyNames[i] names Keys[i] in messages (its path, or "keyData").
	Keys     []crypto.PublicKey
	KeyNames []string
	// Fulcio is set for keyless signatures.
	Fulcio *Fulcio
	// RekorPublicKeyPath/Data is the transparency log's key; when set a
	// signature must carry a log entry signed with it.
	RekorPublicKeyPath string
	RekorPublicKeyData []byte
	RekorKey           crypto.PublicKey
	SignedIdentity     Identity
}

// Fulcio is sigstoreSigned's keyless part: certificates issued by the CA
// to SubjectEmail, as authenticated by OIDCIssuer.
type Fulcio struct {
	CAPath       string
	CAData       []byte
	OIDCIssuer   string
	SubjectEmail string
	// Roots are the CA's certificates, filled by Load.
	Roots []*x509.Certificate
}

// Identity is a signedIdentity.
type Identity struct {
	Type             string
	DockerReference  string
	DockerRepository string
	Prefix           string
	SignedPrefix     string
}

// AcceptAll is the policy in force when no policy file exists.
func AcceptAll() *Policy {
	return &Policy{Source: "", AcceptAll: true, Default: []Requirement{{Type: TypeInsecureAcceptAnything}}, hash: "accept-all"}
}

// Hash identifies the policy's content, key and CA files included.
func (p *Policy) Hash() string { return p.hash }

// Load reads and parses the policy at path and the key and CA files it
// names (a relative path is relative to the policy file's directory).
// A missing policy file is an error wrapping fs.ErrNotExist.
func Load(path string) (*Policy, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p, err := Parse(b, path)
	if err != nil {
		return nil, err
	}
	if err := p.ResolveFiles(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return p, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: more than %d bytes", path, MaxSize)
	}
	return b, nil
}

// ResolveFiles reads and parses every key and certificate the policy
// names, relative paths under dir, and folds their contents into Hash.
func (p *Policy) ResolveFiles(dir string) error {
	h := sha256.New()
	h.Write([]byte(p.hash))
	resolve := func(path string) (string, []byte, error) {
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		b, err := readLimited(path)
		if err != nil {
			return path, nil, err
		}
		p.paths = append(p.paths, path)
		fmt.Fprintf(h, "\x00%s\x00%d\x00", path, len(b))
		h.Write(b)
		return path, b, nil
	}
	do := func(scope string, reqs []Requirement) error {
		for i := range reqs {
			r := &reqs[i]
			if r.Type != TypeSigstoreSigned {
				continue
			}
			where := fmt.Sprintf("policy %s: %s: sigstoreSigned", p.Source, scopeName(scope))
			r.Keys, r.KeyNames = nil, nil
			for _, kp := range r.KeyPaths {
				path, b, err := resolve(kp)
				if err != nil {
					return fmt.Errorf("%s: keyPath: %w", where, err)
				}
				k, err := cryptoutils.UnmarshalPEMToPublicKey(b)
				if err != nil {
					return fmt.Errorf("%s: keyPath %s: not a PEM public key: %w", where, path, err)
				}
				r.Keys, r.KeyNames = append(r.Keys, k), append(r.KeyNames, path)
			}
			for _, kd := range r.KeyData {
				k, err := cryptoutils.UnmarshalPEMToPublicKey(kd)
				if err != nil {
					return fmt.Errorf("%s: keyData: not a PEM public key: %w", where, err)
				}
				r.Keys, r.KeyNames = append(r.Keys, k), append(r.KeyNames, "keyData")
			}
			rekor := r.RekorPublicKeyData
			if r.RekorPublicKeyPath != "" {
				path, b, err := resolve(r.RekorPublicKeyPath)
				if err != nil {
					return fmt.Errorf("%s: rekorPublicKeyPath: %w", where, err)
				}
				r.RekorPublicKeyPath, rekor = path, b
			}
			if rekor != nil {
				k, err := cryptoutils.UnmarshalPEMToPublicKey(rekor)
				if err != nil {
					return fmt.Errorf("%s: rekor public key: not a PEM public key: %w", where, err)
				}
				r.RekorKey = k
			}
			if f := r.Fulcio; f != nil {
				ca := f.CAData
				if f.CAPath != "" {
					path, b, err := resolve(f.CAPath)
					if err != nil {
						return fmt.Errorf("%s: fulcio caPath: %w", where, err)
					}
					f.CAPath, ca = path, b
				}
				roots, err := cryptoutils.UnmarshalCertificatesFromPEM(ca)
				if err != nil || len(roots) == 0 {
					return fmt.Errorf("%s: fulcio CA: no PEM certificate (%v)", where, err)
				}
				f.Roots = roots
			}
		}
		return nil
	}
	if err := do("default", p.Default); err != nil {
		return err
	}
	for scope, reqs := range p.Docker {
		if err := do(scope, reqs); err != nil {
			return err
		}
	}
	p.hash = hex.EncodeToString(h.Sum(nil))
	p.files = p.CurrentFilesStamp()
	return nil
}

func scopeName(scope string) string {
	switch scope {
	case "default":
		return "default"
	case "":
		return `transports.docker[""]`
	}
	return fmt.Sprintf("transports.docker[%q]", scope)
}

// Parse parses a policy document; source names it in errors. Files it
// names are not read (see ResolveFiles).
func Parse(data []byte, source string) (*Policy, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("policy %s: more than %d bytes", source, MaxSize)
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("policy %s: "+format, append([]any{source}, a...)...)
	}
	if err := checkDuplicates(data); err != nil {
		return nil, fail("%v", err)
	}
	var raw struct {
		Default    []json.RawMessage                       `json:"default"`
		Transports map[string]map[string][]json.RawMessage `json:"transports"`
	}
	if err := strictUnmarshal(data, &raw); err != nil {
		return nil, fail("%v", err)
	}
	if raw.Default == nil {
		return nil, fail(`"default" is missing (it may be [{"type": "reject"}])`)
	}
	p := &Policy{Source: source, Docker: map[string][]Requirement{}}
	var err error
	if p.Default, err = parseRequirements(raw.Default); err != nil {
		return nil, fail("default: %v", err)
	}
	for transport, scopes := range raw.Transports {
		for scope, reqs := range scopes {
			parsed, err := parseRequirements(reqs)
			if err != nil {
				return nil, fail("transports.%s[%q]: %v", transport, scope, err)
			}
			if transport != "docker" {
				continue
			}
			if err := validateScope(scope); err != nil {
				return nil, fail("transports.docker[%q]: %v", scope, err)
			}
			p.Docker[scope] = parsed
		}
	}
	sum := sha256.Sum256(data)
	p.hash = hex.EncodeToString(sum[:])
	return p, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// checkDuplicates refuses an object with a key twice, at any depth:
// encoding/json would keep the last silently, and a policy whose reader
// and writer disagree on which one counts is a policy nobody reviewed.
func checkDuplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var walk func(depth int) error
	walk = func(depth int) error {
		if depth > 64 {
			return errors.New("nested too deeply")
		}
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				if seen[key] {
					return fmt.Errorf("field %q appears twice", key)
				}
				seen[key] = true
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	return walk(0)
}

func parseRequirements(raws []json.RawMessage) ([]Requirement, error) {
	if len(raws) == 0 {
		return nil, errors.New("an empty requirement list (write [{\"type\": \"reject\"}] or [{\"type\": \"insecureAcceptAnything\"}])")
	}
	out := make([]Requirement, 0, len(raws))
	for i, raw := range raws {
		r, err := parseRequirement(raw)
		if err != nil {
			return nil, fmt.Errorf("requirement %d: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRequirement(raw json.RawMessage) (Requirement, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return Requirement{}, err
	}
	switch head.Type {
	case TypeInsecureAcceptAnything, TypeReject:
		var only struct {
			Type string `json:"type"`
		}
		if err := strictUnmarshal(raw, &only); err != nil {
			return Requirement{}, fmt.Errorf("%s: %w", head.Type, err)
		}
		return Requirement{Type: head.Type}, nil
	case TypeSigstoreSigned:
		return parseSigstoreSigned(raw)
	case "signedBy":
		return Requirement{}, errors.New("signedBy (GPG simple signing) is not supported by Berth; use sigstoreSigned")
	case "":
		return Requirement{}, errors.New(`"type" is missing`)
	}
	return Requirement{}, fmt.Errorf("unknown type %q (insecureAcceptAnything, reject or sigstoreSigned)", head.Type)
}

func parseSigstoreSigned(raw json.RawMessage) (Requirement, error) {
	var s struct {
		Type               string          `json:"type"`
		KeyPath            string          `json:"keyPath"`
		KeyPaths           []string        `json:"keyPaths"`
		KeyData            string          `json:"keyData"`
		KeyDatas           []string        `json:"keyDatas"`
		Fulcio             *fulcioJSON     `json:"fulcio"`
		RekorPublicKeyPath string          `json:"rekorPublicKeyPath"`
		RekorPublicKeyData string          `json:"rekorPublicKeyData"`
		SignedIdentity     json.RawMessage `json:"signedIdentity"`
	}
	if err := strictUnmarshal(raw, &s); err != nil {
		return Requirement{}, fmt.Errorf("sigstoreSigned: %w", err)
	}
	fail := func(format string, a ...any) (Requirement, error) {
		return Requirement{}, fmt.Errorf("sigstoreSigned: "+format, a...)
	}
	r := Requirement{Type: TypeSigstoreSigned, RekorPublicKeyPath: s.RekorPublicKeyPath}
	sources := 0
	if s.KeyPath != "" {
		sources++
		r.KeyPaths = []string{s.KeyPath}
	}
	if s.KeyPaths != nil {
		sources++
		if len(s.KeyPaths) == 0 {
			return fail("keyPaths is empty")
		}
		for _, k := range s.KeyPaths {
			if k == "" {
				return fail("keyPaths has an empty path")
			}
		}
		r.KeyPaths = s.KeyPaths
	}
	datas := s.KeyDatas
	if s.KeyData != "" {
		sources++
		datas = []string{s.KeyData}
	} else if s.KeyDatas != nil {
		sources++
		if len(s.KeyDatas) == 0 {
			return fail("keyDatas is empty")
		}
	}
	for _, d := range datas {
		b, err := base64.StdEncoding.DecodeString(d)
		if err != nil {
			return fail("keyData is not base64: %v", err)
		}
		r.KeyData = append(r.KeyData, b)
	}
	if s.Fulcio != nil {
		sources++
		f := s.Fulcio
		switch {
		case (f.CAPath == "") == (f.CAData == ""):
			return fail("fulcio needs exactly one of caPath and caData")
		case f.OIDCIssuer == "":
			return fail("fulcio needs oidcIssuer")
		case f.SubjectEmail == "":
			return fail("fulcio needs subjectEmail")
		}
		r.Fulcio = &Fulcio{CAPath: f.CAPath, OIDCIssuer: f.OIDCIssuer, SubjectEmail: f.SubjectEmail}
		if f.CAData != "" {
			b, err := base64.StdEncoding.DecodeString(f.CAData)
			if err != nil {
				return fail("fulcio caData is not base64: %v", err)
			}
			r.Fulcio.CAData = b
		}
	}
	if sources != 1 {
		return fail("needs exactly one of keyPath, keyPaths, keyData, keyDatas and fulcio (has %d)", sources)
	}
	if s.RekorPublicKeyPath != "" && s.RekorPublicKeyData != "" {
		return fail("rekorPublicKeyPath and rekorPublicKeyData are exclusive")
	}
	if s.RekorPublicKeyData != "" {
		b, err := base64.StdEncoding.DecodeString(s.RekorPublicKeyData)
		if err != nil {
			return fail("rekorPublicKeyData is not base64: %v", err)
		}
		r.RekorPublicKeyData = b
	}
	if r.Fulcio != nil && r.RekorPublicKeyPath == "" && r.RekorPublicKeyData == nil {
		return fail("fulcio needs rekorPublicKeyPath or rekorPublicKeyData (a certificate is checked at the time the log recorded)")
	}
	r.SignedIdentity = Identity{Type: IdentityMatchRepoDigestOrExact}
	if s.SignedIdentity != nil {
		id, err := parseIdentity(s.SignedIdentity)
		if err != nil {
			return fail("signedIdentity: %v", err)
		}
		r.SignedIdentity = id
	}
	return r, nil
}

type fulcioJSON struct {
	CAPath       string `json:"caPath"`
	CAData       string `json:"caData"`
	OIDCIssuer   string `json:"oidcIssuer"`
	SubjectEmail string `json:"subjectEmail"`
}

func parseIdentity(raw json.RawMessage) (Identity, error) {
	var id struct {
		Type             string  `json:"type"`
		DockerReference  *string `json:"dockerReference"`
		DockerRepository *string `json:"dockerRepository"`
		Prefix           *string `json:"prefix"`
		SignedPrefix     *string `json:"signedPrefix"`
	}
	if err := strictUnmarshal(raw, &id); err != nil {
		return Identity{}, err
	}
	has := func(names ...string) error {
		got := map[string]bool{"dockerReference": id.DockerReference != nil, "dockerRepository": id.DockerRepository != nil,
			"prefix": id.Prefix != nil, "signedPrefix": id.SignedPrefix != nil}
		want := map[string]bool{}
		for _, n := range names {
			want[n] = true
			if !got[n] {
				return fmt.Errorf("%s needs %s", id.Type, n)
			}
		}
		for n, g := range got {
			if g && !want[n] {
				return fmt.Errorf("%s takes no %s", id.Type, n)
			}
		}
		return nil
	}
	out := Identity{Type: id.Type}
	switch id.Type {
	case IdentityMatchExact, IdentityMatchRepoDigestOrExact, IdentityMatchRepository:
		return out, has()
	case IdentityExactReference:
		if err := has("dockerReference"); err != nil {
			return Identity{}, err
		}
		r, err := parseSigned(*id.DockerReference)
		if err != nil || r.nameOnly {
			return Identity{}, fmt.Errorf("dockerReference %q is not a reference with a tag or digest", *id.DockerReference)
		}
		out.DockerReference = *id.DockerReference
		return out, nil
	case IdentityExactRepository:
		if err := has("dockerRepository"); err != nil {
			return Identity{}, err
		}
		r, err := parseSigned(*id.DockerRepository)
		if err != nil || !r.nameOnly {
			return Identity{}, fmt.Errorf("dockerRepository %q is not a repository name", *id.DockerRepository)
		}
		out.DockerRepository = *id.DockerRepository
		return out, nil
	case IdentityRemapIdentity:
		if err := has("prefix", "signedPrefix"); err != nil {
			return Identity{}, err
		}
		for _, p := range []string{*id.Prefix, *id.SignedPrefix} {
			if !validPrefix(p) {
				return Identity{}, fmt.Errorf("prefix %q is not a host, namespace or repository", p)
			}
		}
		out.Prefix, out.SignedPrefix = *id.Prefix, *id.SignedPrefix
		return out, nil
	case "":
		return Identity{}, errors.New(`"type" is missing`)
	}
	return Identity{}, fmt.Errorf("unknown type %q", id.Type)
}

var (
	scopeChars   = regexp.MustCompile(`^[A-Za-z0-9._:/@\-\[\]]+$`)
	wildcardHost = regexp.MustCompile(`^\*\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
)

// validateScope accepts what containers/image's docker transport does: a
// host[:port], a repository or namespace under one, a reference with a
// tag or digest, or "*.domain" (a wildcard only as the first label, with
// no port or path).
func validateScope(scope string) error {
	if scope == "" {
		return nil
	}
	if strings.Contains(scope, "*") {
		if !wildcardHost.MatchString(scope) {
			return errors.New("a wildcard scope is *.domain, with no port or path")
		}
		return nil
	}
	if !scopeChars.MatchString(scope) || strings.Contains(scope, "://") {
		return errors.New("not a registry, repository or reference")
	}
	return nil
}

func validPrefix(p string) bool {
	return p != "" && !strings.ContainsAny(p, "@*") && scopeChars.MatchString(p) && !strings.HasSuffix(p, "/")
}

// FilesStamp identifies the key and CA files as they were when loaded.
func (p *Policy) FilesStamp() string { return p.files }

// CurrentFilesStamp identifies the key and CA files as they are now.
func (p *Policy) CurrentFilesStamp() string {
	var b strings.Builder
	for _, f := range p.paths {
		fi, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(&b, "%s:missing;", f)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}
