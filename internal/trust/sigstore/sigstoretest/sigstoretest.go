// Package sigstoretest makes cosign-shaped keyless signatures and
// attestations for tests, from sigstore-go's offline virtual Fulcio and
// Rekor (pkg/testing/ca): certificates, chains and Rekor bundles laid out
// as cosign's layer annotations. Only tests import it, so no binary links
// sigstore-go.
package sigstoretest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/berth-project/berth/internal/trust/policy"
	"github.com/berth-project/berth/internal/trust/sigstore"
)

// Signature signs a cosign payload for manifest claiming identity with a
// certificate for email/issuer, logged (hashedrekord) in the virtual Rekor.
func Signature(t testing.TB, vs *ca.VirtualSigstore, email, issuer, identity string, manifest digest.Digest) sigstore.Signature {
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
	ann := Annotations(t, vs, ent)
	ann[sigstore.AnnotationSignature] = base64.StdEncoding.EncodeToString(sc.MessageSignatureContent().Signature())
	return sigstore.Signature{Payload: payload, Annotations: ann}
}

// Statement is an in-toto statement about manifest.
func Statement(manifest digest.Digest, predicateType, predicate string) []byte {
	return []byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"` + predicateType + `","subject":[{"name":"app","digest":{"sha256":"` + manifest.Encoded() + `"}}],"predicate":` + predicate + `}`)
}

// Attestation signs statement as a DSSE envelope with a certificate for
// email/issuer, logged by the virtual Rekor as a dsse entry, and returns
// the envelope with cosign's .att layer annotations.
func Attestation(t testing.TB, vs *ca.VirtualSigstore, email, issuer string, statement []byte) ([]byte, map[string]string) {
	t.Helper()
	ent, err := vs.Attest(email, issuer, statement)
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
	ann := Annotations(t, vs, ent)
	ann[sigstore.AnnotationSignature] = ""
	return env, ann
}

// Annotations lays out ent's certificate, the virtual Fulcio's chain and
// ent's log entry as cosign's annotations.
func Annotations(t testing.TB, vs *ca.VirtualSigstore, ent *ca.TestEntity) map[string]string {
	t.Helper()
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
	tle := entries[0].TransparencyLogEntry()
	fca := vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	chain, _ := cryptoutils.MarshalCertificatesToPEM(append(fca.Intermediates, fca.Root))
	ann := map[string]string{sigstore.AnnotationCertificate: string(certPEM), sigstore.AnnotationChain: string(chain)}
	WithLogEntry(t, vs, ann, tle.GetCanonicalizedBody(), tle.GetIntegratedTime())
	return ann
}

// WithLogEntry sets ann's bundle to body as logged by the virtual Rekor at
// integrated. The entry's own signed timestamp is not exported; the
// virtual Rekor signs the same payload again (RFC 8785 JSON of body, time,
// index and log ID).
func WithLogEntry(t testing.TB, vs *ca.VirtualSigstore, ann map[string]string, body []byte, integrated int64) {
	t.Helper()
	logID, err := vs.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	p := tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(body), IntegratedTime: integrated, LogID: logID}
	set, err := vs.RekorSignPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": p})
	ann[sigstore.AnnotationBundle] = string(b)
}

// IntegratedTime is when ann's bundle says the log integrated the entry.
func IntegratedTime(t testing.TB, ann map[string]string) int64 {
	t.Helper()
	var b struct {
		Payload struct {
			IntegratedTime int64 `json:"integratedTime"`
		}
	}
	if err := json.Unmarshal([]byte(ann[sigstore.AnnotationBundle]), &b); err != nil {
		t.Fatal(err)
	}
	return b.Payload.IntegratedTime
}

// IntotoBody is the intoto v0.0.2 entry cosign attest logs for env signed
// by certPEM: the signature as the envelope writes it, base64-encoded
// again, and the certificate; payload, if set, replaces the envelope's in
// the recorded hash.
func IntotoBody(t testing.TB, env []byte, certPEM string, payload []byte) []byte {
	t.Helper()
	var e sigstore.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	if payload == nil {
		payload, _ = base64.StdEncoding.DecodeString(e.Payload)
	}
	psum, esum := sha256.Sum256(payload), sha256.Sum256(env)
	body, _ := json.Marshal(map[string]any{"apiVersion": "0.0.2", "kind": "intoto", "spec": map[string]any{"content": map[string]any{
		"envelope":    map[string]any{"payloadType": e.PayloadType, "signatures": []map[string]any{{"sig": []byte(e.Signatures[0].Sig), "publicKey": []byte(certPEM)}}},
		"hash":        map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(esum[:])},
		"payloadHash": map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(psum[:])},
	}}})
	return body
}

// Requirement is a keyless sigstoreSigned requirement for email/issuer
// trusting vs's Fulcio and Rekor (resolved, as policy.Load leaves it).
func Requirement(vs *ca.VirtualSigstore, email, issuer string) policy.Requirement {
	return policy.Requirement{Type: policy.TypeSigstoreSigned, RekorKey: rekorKey(vs),
		Fulcio:         &policy.Fulcio{CAPath: "/virtual/fulcio.pem", OIDCIssuer: issuer, SubjectEmail: email, Roots: []*x509.Certificate{FulcioRoot(vs)}},
		SignedIdentity: policy.Identity{Type: policy.IdentityMatchRepository}}
}

// FulcioRoot is vs's Fulcio root certificate.
func FulcioRoot(vs *ca.VirtualSigstore) *x509.Certificate {
	return vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority).Root
}

func rekorKey(vs *ca.VirtualSigstore) any {
	var k any
	for _, l := range vs.RekorLogs() {
		k = l.PublicKey
	}
	return k
}

// PolicyJSON is a policy.json requirement for email/issuer trusting vs's
// Fulcio and Rekor, with their keys inline (caData, rekorPublicKeyData).
func PolicyJSON(t testing.TB, vs *ca.VirtualSigstore, email, issuer string) string {
	t.Helper()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: FulcioRoot(vs).Raw})
	rekorPEM, err := cryptoutils.MarshalPublicKeyToPEM(rekorKey(vs))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"type": "sigstoreSigned",
		"fulcio":             map[string]string{"caData": base64.StdEncoding.EncodeToString(caPEM), "oidcIssuer": issuer, "subjectEmail": email},
		"rekorPublicKeyData": base64.StdEncoding.EncodeToString(rekorPEM),
		"signedIdentity":     map[string]string{"type": "matchRepository"}})
	return string(b)
}
