package sigstore

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/bundle"
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
	entries, err := ent.TlogEntries()
	if err != nil || len(entries) != 1 {
		t.Fatalf("tlog entries: %v", err)
	}
	// The entry's signed timestamp is not exported; the virtual Rekor
	// signs the same payload again (its signatures are not deterministic,
	// its payload is: RFC 8785 JSON of body, time, index and log ID).
	tle := entries[0].TransparencyLogEntry()
	ann := keylessAnnotations(t, vs, ent, tle.GetCanonicalizedBody(), tle.GetIntegratedTime())
	ann[AnnotationSignature] = base64.StdEncoding.EncodeToString(sc.MessageSignatureContent().Signature())
	return Signature{Payload: payload, Annotations: ann}
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

// keylessAttestation signs an in-toto statement about manifest with a
// certificate of the virtual Fulcio, logged by the virtual Rekor as a dsse
// entry (as sigstore-go makes it), and lays it out as cosign's .att layer.
func keylessAttestation(t *testing.T, vs *ca.VirtualSigstore, email, issuer string, manifest digest.Digest) ([]byte, map[string]string) {
	t.Helper()
	st := []byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://spdx.dev/Document","subject":[{"name":"app","digest":{"sha256":"` + manifest.Encoded() + `"}}],"predicate":{"spdxVersion":"SPDX-2.3"}}`)
	ent, err := vs.Attest(email, issuer, st)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	env, err := json.Marshal(sc.(*bundle.Envelope).Envelope)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ent.TlogEntries()
	if err != nil || len(entries) != 1 {
		t.Fatalf("tlog entries: %v", err)
	}
	tle := entries[0].TransparencyLogEntry()
	return env, keylessAnnotations(t, vs, ent, tle.GetCanonicalizedBody(), tle.GetIntegratedTime())
}

// keylessAnnotations lays out a certificate, its chain and a log entry
// body (re-signed by the virtual Rekor) as cosign's annotations.
func keylessAnnotations(t *testing.T, vs *ca.VirtualSigstore, ent *ca.TestEntity, body []byte, integrated int64) map[string]string {
	t.Helper()
	vc, err := ent.VerificationContent()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := cryptoutils.MarshalCertificateToPEM(vc.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	logID, err := vs.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	payloadOfLog := tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(body), IntegratedTime: integrated, LogID: logID}
	set, err := vs.RekorSignPayload(payloadOfLog)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": payloadOfLog})
	fca := vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	chain, _ := cryptoutils.MarshalCertificatesToPEM(append(fca.Intermediates, fca.Root))
	return map[string]string{AnnotationSignature: "", AnnotationCertificate: string(certPEM), AnnotationChain: string(chain), AnnotationBundle: string(b)}
}

// intotoBody is the intoto v0.0.2 entry cosign attest logs for env signed
// by certPEM: the signature as the envelope writes it, base64-encoded
// again, and the certificate.
func intotoBody(t *testing.T, env []byte, certPEM string, payloadOverride []byte) []byte {
	t.Helper()
	var e Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(e.Payload)
	if payloadOverride != nil {
		payload = payloadOverride
	}
	psum, esum := sha256.Sum256(payload), sha256.Sum256(env)
	body, _ := json.Marshal(map[string]any{"apiVersion": "0.0.2", "kind": "intoto", "spec": map[string]any{"content": map[string]any{
		"envelope":    map[string]any{"payloadType": e.PayloadType, "signatures": []map[string]any{{"sig": []byte(e.Signatures[0].Sig), "publicKey": []byte(certPEM)}}},
		"hash":        map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(esum[:])},
		"payloadHash": map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(psum[:])},
	}}})
	return body
}

func TestKeylessAttestation(t *testing.T) {
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
	req := keylessRequirement(t, vs, email, issuer)

	// dsse entry, as sigstore-go's virtual Rekor logs an attestation.
	env, ann := keylessAttestation(t, vs, email, issuer, d)
	st, v, err := VerifyAttestation(req, env, ann, d)
	if err != nil {
		t.Fatal(err)
	}
	if st.PredicateType != "https://spdx.dev/Document" || v.Signer != email || v.Issuer != issuer {
		t.Errorf("verified %+v %+v", st, v)
	}

	// intoto v0.0.2 entry, as cosign attest logs it.
	intoto := func(payload []byte) map[string]string {
		a := map[string]string{}
		for k, v := range ann {
			a[k] = v
		}
		var b rekorBundle
		json.Unmarshal([]byte(ann[AnnotationBundle]), &b)
		body := intotoBody(t, env, ann[AnnotationCertificate], payload)
		p := tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(body), IntegratedTime: b.Payload.IntegratedTime, LogID: b.Payload.LogID}
		set, err := vs.RekorSignPayload(p)
		if err != nil {
			t.Fatal(err)
		}
		nb, _ := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": p})
		a[AnnotationBundle] = string(nb)
		return a
	}
	if _, _, err := VerifyAttestation(req, env, intoto(nil), d); err != nil {
		t.Errorf("intoto entry: %v", err)
	}

	tamper := func(env []byte) []byte {
		var e map[string]any
		json.Unmarshal(env, &e)
		e["payload"] = base64.StdEncoding.EncodeToString([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"x","subject":[{"name":"app","digest":{"sha256":"` + d.Encoded() + `"}}],"predicate":{}}`))
		b, _ := json.Marshal(e)
		return b
	}
	_, otherAnn := keylessAttestation(t, vs, email, issuer, d)
	type attCase struct {
		env  []byte
		ann  map[string]string
		want string
	}
	cases := map[string]attCase{
		"tampered payload":          {tamper(env), ann, "the entry records another attestation payload"},
		"entry of another one":      {env, otherAnn, "the entry records another"},
		"intoto of another payload": {env, intoto([]byte("other")), "the entry records another attestation payload"},
	}
	c := attCase{want: "is not release@example.com"}
	c.env, c.ann = keylessAttestation(t, vs, "mallory@example.com", issuer, d)
	cases["another subject"] = c
	c = attCase{want: "signed entry timestamp does not verify"}
	c.env, c.ann = keylessAttestation(t, other, email, issuer, d)
	cases["another sigstore"] = c
	c = attCase{want: "is not about"}
	c.env, c.ann = keylessAttestation(t, vs, email, issuer, digest.FromString("other"))
	cases["about another image"] = c
	// A signature's hashedrekord entry by the same certificate's issuer
	// does not log this attestation.
	c = attCase{env: env, ann: map[string]string{}, want: "the entry records"}
	for k, v := range ann {
		c.ann[k] = v
	}
	c.ann[AnnotationBundle] = keylessSignature(t, vs, email, issuer, "registry.example.com/app", d).Annotations[AnnotationBundle]
	cases["a signature's entry"] = c
	for name, c := range cases {
		if _, _, err := VerifyAttestation(req, c.env, c.ann, d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
