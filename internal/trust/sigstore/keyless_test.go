package sigstore

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/trust/policy"
)

// keylessSignature signs a cosign payload for manifest with a certificate
// of sigstore-go's offline virtual Fulcio, logged in its virtual Rekor, and
// lays it out as cosign's annotations.
func keylessSignature(t *testing.T, vs *ca.VirtualSigstore, email, issuer, identity string, manifest digest.Digest) Signature {
	t.Helper()
	payload := []byte(`{"critical":{"identity":{"docker-reference":"` + identity + `"},"image":{"docker-manifest-digest":"` + manifest.String() + `"},"type":"cosign container image signature"},"optional":null}`)
	ent, err := vs.Sign(email, issuer, payload)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	vc, err := ent.VerificationContent()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := cryptoutils.MarshalCertificateToPEM(vc.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ent.TlogEntries()
	if err != nil || len(entries) != 1 {
		t.Fatalf("tlog entries: %v", err)
	}
	// The entry's signed timestamp is not exported; the virtual Rekor
	// signs the same payload again (its signatures are not deterministic,
	// its payload is: RFC 8785 JSON of body, time, index and log ID).
	tle := entries[0].TransparencyLogEntry()
	payloadOfLog := tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(tle.GetCanonicalizedBody()),
		IntegratedTime: tle.GetIntegratedTime(), LogIndex: tle.GetLogIndex(), LogID: hex.EncodeToString(tle.GetLogId().GetKeyId())}
	set, err := vs.RekorSignPayload(payloadOfLog)
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": payloadOfLog})
	fca := vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	chain, _ := cryptoutils.MarshalCertificatesToPEM(append(fca.Intermediates, fca.Root))
	return Signature{Payload: payload, Annotations: map[string]string{
		AnnotationSignature:   base64.StdEncoding.EncodeToString(sc.MessageSignatureContent().Signature()),
		AnnotationCertificate: string(certPEM),
		AnnotationChain:       string(chain),
		AnnotationBundle:      string(bundle),
	}}
}

func keylessRequirement(t *testing.T, vs *ca.VirtualSigstore, email, issuer string) policy.Requirement {
	t.Helper()
	fca := vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	var rekor any
	for _, l := range vs.RekorLogs() {
		rekor = l.PublicKey
	}
	return policy.Requirement{Type: policy.TypeSigstoreSigned, RekorKey: rekor,
		Fulcio:         &policy.Fulcio{CAPath: "/virtual/fulcio.pem", OIDCIssuer: issuer, SubjectEmail: email, Roots: []*x509.Certificate{fca.Root}},
		SignedIdentity: policy.Identity{Type: policy.IdentityMatchRepository}}
}

func TestKeyless(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	const email, issuer = "release@example.com", "https://accounts.example.com"
	d := digest.FromString("image")
	ref, _ := reference.Parse("registry.example.com/app:1")
	req := keylessRequirement(t, vs, email, issuer)

	sig := keylessSignature(t, vs, email, issuer, "registry.example.com/app", d)
	v, err := VerifySignature(req, sig, d, ref)
	if err != nil {
		t.Fatal(err)
	}
	if v.Signer != email || v.Issuer != issuer {
		t.Errorf("verified %+v", v)
	}

	for name, c := range map[string]struct {
		sig  Signature
		req  policy.Requirement
		want string
	}{
		"another subject":  {keylessSignature(t, vs, "mallory@example.com", issuer, "registry.example.com/app", d), req, "is not release@example.com"},
		"another issuer":   {keylessSignature(t, vs, email, "https://evil.example.com", "registry.example.com/app", d), req, "OIDC issuer"},
		"another sigstore": {keylessSignature(t, other, email, issuer, "registry.example.com/app", d), req, "signed entry timestamp does not verify"},
		"another CA": {sig, func() policy.Requirement {
			r := keylessRequirement(t, vs, email, issuer)
			r.Fulcio.Roots = []*x509.Certificate{other.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority).Root}
			return r
		}(), "does not chain to the Fulcio CA /virtual/fulcio.pem"},
		"another log": {sig, func() policy.Requirement {
			r := keylessRequirement(t, vs, email, issuer)
			for _, l := range other.RekorLogs() {
				r.RekorKey = l.PublicKey
			}
			return r
		}(), "signed entry timestamp does not verify"},
		"no bundle": {func() Signature {
			s := keylessSignature(t, vs, email, issuer, "registry.example.com/app", d)
			delete(s.Annotations, AnnotationBundle)
			return s
		}(), req, "transparency log entry"},
		"bundle of another signature": {func() Signature {
			s := keylessSignature(t, vs, email, issuer, "registry.example.com/app", d)
			s.Annotations[AnnotationBundle] = keylessSignature(t, vs, email, issuer, "registry.example.com/app", digest.FromString("other")).Annotations[AnnotationBundle]
			return s
		}(), req, "rekor bundle: the entry records"},
		"identity": {keylessSignature(t, vs, email, issuer, "registry.example.com/other", d), req, "is not accepted"},
	} {
		if _, err := VerifySignature(c.req, c.sig, d, ref); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
