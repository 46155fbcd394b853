package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
