package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/berth-project/berth/internal/reference"
)

func writeKey(t *testing.T, dir, name string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return pem
}

const example = `{
  "default": [{"type": "reject"}],
  "transports": {
    "docker": {
      "": [{"type": "insecureAcceptAnything"}],
      "registry.example.com": [{"type": "sigstoreSigned", "keyPath": "release.pub"}],
      "registry.example.com/team": [{"type": "sigstoreSigned", "keyPaths": ["release.pub", "team.pub"], "signedIdentity": {"type": "matchRepository"}}],
      "registry.example.com/team/app:1": [{"type": "reject"}],
      "registry.example.com:5000": [{"type": "reject"}],
      "*.example.com": [{"type": "sigstoreSigned", "keyPath": "release.pub", "signedIdentity": {"type": "remapIdentity", "prefix": "mirror.example.com/x", "signedPrefix": "registry.example.com/team"}}],
      "*.com": [{"type": "reject"}]
    },
    "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}
  }
}`

func TestScopes(t *testing.T) {
	dir := t.TempDir()
	writeKey(t, dir, "release.pub")
	writeKey(t, dir, "team.pub")
	path := filepath.Join(dir, "policy.json")
	os.WriteFile(path, []byte(example), 0o644)
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{
		"registry.example.com/other:1":         "registry.example.com",
		"registry.example.com/team/app:2":      "registry.example.com/team",
		"registry.example.com/team/app:1":      "registry.example.com/team/app:1",
		"registry.example.com/team/sub/deep:1": "registry.example.com/team",
		"registry.example.com:5000/team/app:1": "registry.example.com:5000",
		"a.b.example.com/x:1":                  "*.example.com",
		"a.b.example.com:443/x:1":              "*.example.com",
		"other.com/x:1":                        "*.com",
		"docker.io/library/busybox:1":          "",
		"127.0.0.1:5000/app:1":                 "",
	} {
		r, err := reference.Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.For(r).Name; got != want {
			t.Errorf("%s: scope %q, want %q", ref, got, want)
		}
	}
	team := p.For(mustRef(t, "registry.example.com/team/x:1")).Requirements[0]
	if len(team.Keys) != 2 || team.KeyNames[1] != filepath.Join(dir, "team.pub") {
		t.Errorf("keys %v", team.KeyNames)
	}
	if team.SignedIdentity.Type != IdentityMatchRepository {
		t.Errorf("identity %v", team.SignedIdentity)
	}
	if def := p.For(mustRef(t, "registry.example.com/other:1")).Requirements[0].SignedIdentity.Type; def != IdentityMatchRepoDigestOrExact {
		t.Errorf("default identity %q", def)
	}
	// A key file's content is part of the hash.
	h1 := p.Hash()
	writeKey(t, dir, "team.pub")
	p2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Hash() == h1 {
		t.Error("hash unchanged after the key changed")
	}
}

func mustRef(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestIdentity(t *testing.T) {
	const d = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	cases := []struct {
		id       Identity
		intended string
		signed   string
		want     bool
	}{
		{Identity{Type: IdentityMatchRepoDigestOrExact}, "r.io/a/b:1", "r.io/a/b:1", true},
		{Identity{Type: IdentityMatchRepoDigestOrExact}, "r.io/a/b:1", "r.io/a/b:2", false},
		{Identity{Type: IdentityMatchRepoDigestOrExact}, "r.io/a/b:1", "r.io/a/b", false}, // cosign's bare repository
		{Identity{Type: IdentityMatchRepoDigestOrExact}, "r.io/a/b@" + d, "r.io/a/b:7", true},
		{Identity{Type: IdentityMatchRepoDigestOrExact}, "r.io/a/b@" + d, "r.io/a/c:7", false},
		{Identity{Type: IdentityMatchExact}, "r.io/a/b:1", "r.io/a/b:1", true},
		{Identity{Type: IdentityMatchExact}, "r.io/a/b@" + d, "r.io/a/b:1", false},
		{Identity{Type: IdentityMatchRepository}, "r.io/a/b:1", "r.io/a/b", true},
		{Identity{Type: IdentityMatchRepository}, "r.io/a/b:1", "r.io/a/b:9", true},
		{Identity{Type: IdentityMatchRepository}, "r.io/a/b:1", "r.io/a/c", false},
		{Identity{Type: IdentityMatchRepository}, "docker.io/library/busybox:1", "busybox", false}, // not fully qualified
		{Identity{Type: IdentityExactReference, DockerReference: "r.io/x:1"}, "r.io/a/b:1", "r.io/x:1", true},
		{Identity{Type: IdentityExactReference, DockerReference: "r.io/x:1"}, "r.io/a/b:1", "r.io/a/b:1", false},
		{Identity{Type: IdentityExactRepository, DockerRepository: "r.io/x"}, "r.io/a/b:1", "r.io/x:3", true},
		{Identity{Type: IdentityExactRepository, DockerRepository: "r.io/x"}, "r.io/a/b:1", "r.io/xy:3", false},
		{Identity{Type: IdentityRemapIdentity, Prefix: "m.io/mirror", SignedPrefix: "r.io/a"}, "m.io/mirror/b:1", "r.io/a/b:1", true},
		{Identity{Type: IdentityRemapIdentity, Prefix: "m.io/mirror", SignedPrefix: "r.io/a"}, "m.io/mirrorx/b:1", "r.io/a/b:1", false},
		{Identity{Type: IdentityRemapIdentity, Prefix: "m.io/mirror", SignedPrefix: "r.io/a"}, "m.io/other/b:1", "m.io/other/b:1", true},
	}
	for _, c := range cases {
		if got := c.id.Matches(mustRef(t, c.intended), c.signed); got != c.want {
			t.Errorf("%s: %s signed as %s: %v, want %v", c.id.Describe(), c.intended, c.signed, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("x"))
	for doc, want := range map[string]string{
		`{}`:                                `"default" is missing`,
		`{"default": []}`:                   "empty requirement list",
		`{"default": [{"type": "rejekt"}]}`: `unknown type "rejekt"`,
		`{"default": [{"type": "reject", "keyPath": "/x"}]}`:                                                                                    `unknown field "keyPath"`,
		`{"default": [{"type": "reject"}], "default": [{"type": "reject"}]}`:                                                                    `"default" appears twice`,
		`{"default": [{"type": "sigstoreSigned"}]}`:                                                                                             "exactly one of",
		`{"default": [{"type": "sigstoreSigned", "keyPath": "/a", "keyData": "` + key + `"}]}`:                                                  "exactly one of",
		`{"default": [{"type": "sigstoreSigned", "keyData": "!!"}]}`:                                                                            "not base64",
		`{"default": [{"type": "sigstoreSigned", "fulcio": {"caPath": "/ca", "oidcIssuer": "https://i", "subjectEmail": "a@b"}}]}`:              "needs rekorPublicKeyPath",
		`{"default": [{"type": "sigstoreSigned", "fulcio": {"caPath": "/ca", "subjectEmail": "a@b"}, "rekorPublicKeyPath": "/r"}]}`:             "needs oidcIssuer",
		`{"default": [{"type": "sigstoreSigned", "keyPath": "/a", "signedIdentity": {"type": "exactReference"}}]}`:                              "needs dockerReference",
		`{"default": [{"type": "sigstoreSigned", "keyPath": "/a", "signedIdentity": {"type": "exactReference", "dockerReference": "r.io/a"}}]}`: "not a reference with a tag",
		`{"default": [{"type": "sigstoreSigned", "keyPath": "/a", "signedIdentity": {"type": "matchRepository", "prefix": "x"}}]}`:              "takes no prefix",
		`{"default": [{"type": "signedBy", "keyType": "GPGKeys"}]}`:                                                                             "signedBy",
		`{"default": [{"type": "reject"}], "transports": {"docker": {"ex*ample.com": [{"type": "reject"}]}}}`:                                   "wildcard",
		`{"default": [{"type": "reject"}], "transports": {"docker": {"*.example.com:5000": [{"type": "reject"}]}}}`:                             "wildcard",
		`{"default": [{"type": "reject"}]} {}`:                                                                                                  "more than one",
		`[`:                                                                                                                                     "EOF",
	} {
		_, err := Parse([]byte(doc), "p.json")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "p.json") {
			t.Errorf("%s: error %v, want one with %q", doc, err, want)
		}
	}
	if _, err := Parse([]byte(strings.Repeat(" ", MaxSize+1)), "big"); err == nil {
		t.Error("oversized policy parsed")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "p.json")
	os.WriteFile(path, []byte(`{"default": [{"type": "sigstoreSigned", "keyPath": "nokey.pub"}]}`), 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "nokey.pub") {
		t.Errorf("missing key: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bad.pub"), []byte("not a key"), 0o644)
	os.WriteFile(path, []byte(`{"default": [{"type": "sigstoreSigned", "keyPath": "bad.pub"}]}`), 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "not a PEM public key") {
		t.Errorf("bad key: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(`{"default": [{"type": "insecureAcceptAnything"}]}`))
	f.Add([]byte(`{"default": [{"type": "sigstoreSigned", "fulcio": {"caData": "eA==", "oidcIssuer": "i", "subjectEmail": "e"}, "rekorPublicKeyData": "eA==", "signedIdentity": {"type": "remapIdentity", "prefix": "a.io", "signedPrefix": "b.io"}}]}`))
	f.Add([]byte(`{"default": [{"type": "reject"}], "transports": {"docker": {"*.a.b": [{"type": "reject"}]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		if len(p.Default) == 0 || p.Hash() == "" {
			t.Fatal("parsed policy without a default or hash")
		}
		for scope, reqs := range p.Docker {
			if len(reqs) == 0 || validateScope(scope) != nil {
				t.Fatalf("scope %q kept", scope)
			}
		}
		r, _ := reference.Parse("a.example.com/x/y:1")
		p.For(r)
	})
}

func TestFulcioFiles(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fulcio"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "fulcio.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	writeKey(t, dir, "rekor.pub")
	path := filepath.Join(dir, "policy.json")
	os.WriteFile(path, []byte(`{"default": [{"type": "sigstoreSigned", "fulcio": {"caPath": "fulcio.pem", "oidcIssuer": "https://issuer", "subjectEmail": "a@example.com"}, "rekorPublicKeyPath": "rekor.pub"}]}`), 0o644)
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := p.Default[0]
	if r.Fulcio == nil || len(r.Fulcio.Roots) != 1 || r.RekorKey == nil || r.Fulcio.CAPath != filepath.Join(dir, "fulcio.pem") {
		t.Fatalf("requirement %+v", r)
	}
	os.WriteFile(filepath.Join(dir, "fulcio.pem"), []byte("junk"), 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "fulcio CA") {
		t.Fatalf("bad CA: %v", err)
	}
}
