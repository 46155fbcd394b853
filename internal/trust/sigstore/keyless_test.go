package sigstore_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"

	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/trust/policy"
	"github.com/berth-project/berth/internal/trust/sigstore"
	"github.com/berth-project/berth/internal/trust/sigstore/sigstoretest"
)

const email, issuer = "release@example.com", "https://accounts.example.com"

func virtualSigstores(t *testing.T) (vs, other *ca.VirtualSigstore) {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	other, err = ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return vs, other
}

func TestKeyless(t *testing.T) {
	vs, other := virtualSigstores(t)
	d := digest.FromString("image")
	ref, _ := reference.Parse("registry.example.com/app:1")
	req := sigstoretest.Requirement(vs, email, issuer)
	sign := func(vs *ca.VirtualSigstore, email, issuer, identity string, d digest.Digest) sigstore.Signature {
		return sigstoretest.Signature(t, vs, email, issuer, identity, d)
	}

	sig := sign(vs, email, issuer, "registry.example.com/app", d)
	v, err := sigstore.VerifySignature(req, sig, d, ref)
	if err != nil {
		t.Fatal(err)
	}
	if v.Signer != email || v.Issuer != issuer {
		t.Errorf("verified %+v", v)
	}

	for name, c := range map[string]struct {
		sig  sigstore.Signature
		req  policy.Requirement
		want string
	}{
		"another subject":  {sign(vs, "mallory@example.com", issuer, "registry.example.com/app", d), req, "is not release@example.com"},
		"another issuer":   {sign(vs, email, "https://evil.example.com", "registry.example.com/app", d), req, "OIDC issuer"},
		"another sigstore": {sign(other, email, issuer, "registry.example.com/app", d), req, "signed entry timestamp does not verify"},
		"another CA": {sig, func() policy.Requirement {
			r := sigstoretest.Requirement(vs, email, issuer)
			r.Fulcio.Roots = []*x509.Certificate{sigstoretest.FulcioRoot(other)}
			return r
		}(), "does not chain to the Fulcio CA /virtual/fulcio.pem"},
		"another log": {sig, func() policy.Requirement {
			r := sigstoretest.Requirement(vs, email, issuer)
			r.RekorKey = sigstoretest.Requirement(other, email, issuer).RekorKey
			return r
		}(), "signed entry timestamp does not verify"},
		"no bundle": {func() sigstore.Signature {
			s := sign(vs, email, issuer, "registry.example.com/app", d)
			delete(s.Annotations, sigstore.AnnotationBundle)
			return s
		}(), req, "transparency log entry"},
		"bundle of another signature": {func() sigstore.Signature {
			s := sign(vs, email, issuer, "registry.example.com/app", d)
			s.Annotations[sigstore.AnnotationBundle] = sign(vs, email, issuer, "registry.example.com/app", digest.FromString("other")).Annotations[sigstore.AnnotationBundle]
			return s
		}(), req, "rekor bundle: the entry records"},
		"identity": {sign(vs, email, issuer, "registry.example.com/other", d), req, "is not accepted"},
	} {
		if _, err := sigstore.VerifySignature(c.req, c.sig, d, ref); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

// TestKeylessAttestation: attestations logged as dsse entries (as
// sigstore-go's virtual Rekor makes them) and intoto v0.0.2 entries (as
// cosign attest logs them) verify; every mismatch between envelope, log
// entry, certificate and image is refused.
func TestKeylessAttestation(t *testing.T) {
	vs, other := virtualSigstores(t)
	d := digest.FromString("image")
	req := sigstoretest.Requirement(vs, email, issuer)
	attest := func(vs *ca.VirtualSigstore, email string, d digest.Digest) ([]byte, map[string]string) {
		return sigstoretest.Attestation(t, vs, email, issuer, sigstoretest.Statement(d, "https://spdx.dev/Document", `{"spdxVersion":"SPDX-2.3"}`))
	}

	env, ann := attest(vs, email, d)
	st, v, err := sigstore.VerifyAttestation(req, env, ann, d)
	if err != nil {
		t.Fatal(err)
	}
	if st.PredicateType != "https://spdx.dev/Document" || v.Signer != email || v.Issuer != issuer {
		t.Errorf("verified %+v %+v", st, v)
	}

	copyOf := func(a map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range a {
			out[k] = v
		}
		return out
	}
	intoto := func(payload []byte) map[string]string {
		a := copyOf(ann)
		body := sigstoretest.IntotoBody(t, env, ann[sigstore.AnnotationCertificate], payload)
		sigstoretest.WithLogEntry(t, vs, a, body, sigstoretest.IntegratedTime(t, ann))
		return a
	}
	if _, _, err := sigstore.VerifyAttestation(req, env, intoto(nil), d); err != nil {
		t.Errorf("intoto entry: %v", err)
	}

	tamper := func(env []byte) []byte {
		var e map[string]any
		json.Unmarshal(env, &e)
		e["payload"] = base64.StdEncoding.EncodeToString(sigstoretest.Statement(d, "x", "{}"))
		b, _ := json.Marshal(e)
		return b
	}
	_, otherAnn := attest(vs, email, d)
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
	c.env, c.ann = attest(vs, "mallory@example.com", d)
	cases["another subject"] = c
	c = attCase{want: "signed entry timestamp does not verify"}
	c.env, c.ann = attest(other, email, d)
	cases["another sigstore"] = c
	c = attCase{want: "is not about"}
	c.env, c.ann = attest(vs, email, digest.FromString("other"))
	cases["about another image"] = c
	// A signature's hashedrekord entry does not log this attestation.
	c = attCase{env: env, ann: copyOf(ann), want: "the entry records"}
	c.ann[sigstore.AnnotationBundle] = sigstoretest.Signature(t, vs, email, issuer, "registry.example.com/app", d).Annotations[sigstore.AnnotationBundle]
	cases["a signature's entry"] = c
	for name, c := range cases {
		if _, _, err := sigstore.VerifyAttestation(req, c.env, c.ann, d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
