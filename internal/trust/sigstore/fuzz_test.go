package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/trust/policy"
)

// FuzzDocuments feeds hostile payloads, envelopes and bundles to the
// verifiers: they must refuse without panicking.
func FuzzDocuments(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	req := policy.Requirement{Type: policy.TypeSigstoreSigned, Keys: []crypto.PublicKey{k.Public()}, KeyNames: []string{"k"}, RekorKey: k.Public(),
		SignedIdentity: policy.Identity{Type: policy.IdentityMatchRepository}}
	d := digest.FromString("x")
	ref, _ := reference.Parse("r.io/a:1")
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"r.io/a"},"image":{"docker-manifest-digest":"`+d.String()+`"},"type":"cosign container image signature"}}`), "MEUCIQ==", `{"SignedEntryTimestamp":"MEU=","Payload":{"body":"e30=","integratedTime":1,"logIndex":1,"logID":"00"}}`)
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"MEU="}]}`), "", "")
	f.Fuzz(func(t *testing.T, doc []byte, sig, bundle string) {
		ann := map[string]string{AnnotationSignature: sig, AnnotationBundle: bundle}
		if _, err := VerifySignature(req, Signature{Payload: doc, Annotations: ann}, d, ref); err == nil {
			t.Fatal("a fuzzed signature verified")
		}
		if _, _, err := VerifyAttestation(req, doc, ann, d); err == nil {
			t.Fatal("a fuzzed attestation verified")
		}
		StatementOf(doc, d)
	})
}

// FuzzLogEntry: a Rekor entry body that the log signed is still read as
// hostile input; a fuzzed one must never record the signature below.
func FuzzLogEntry(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"0.0.1","kind":"dsse","spec":{"payloadHash":{"algorithm":"sha256","value":"00"},"signatures":[{"signature":"MEU=","verifier":"AA=="}]}}`))
	f.Add([]byte(`{"apiVersion":"0.0.2","kind":"intoto","spec":{"content":{"payloadHash":{"algorithm":"sha256","value":"00"},"envelope":{"signatures":[{"sig":"TUVVPQ==","publicKey":"AA=="}]}}}}`))
	f.Add([]byte(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":"00"}},"signature":{"content":"MEU=","publicKey":{"content":"AA=="}}}}`))
	sd := signedData{sig: []byte("real signature"), data: []byte("PAE"), dssePayload: []byte("payload"), dsseSig: "cmVhbCBzaWduYXR1cmU="}
	f.Fuzz(func(t *testing.T, body []byte) {
		var e logEntry
		if json.Unmarshal(body, &e) != nil {
			return
		}
		if entryRecords(e, sd, []byte("the real certificate")) == nil {
			t.Fatalf("fuzzed entry %s recorded the signature", body)
		}
	})
}
