package trust

import (
	"context"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"

	"github.com/berth-project/berth/internal/trust/sigstore"
	"github.com/berth-project/berth/internal/trust/sigstore/sigstoretest"
)

// TestKeylessPolicy: an image signed and attested keyless (sigstore-go's
// virtual Fulcio and Rekor standing in for the public ones) is admitted
// under a fulcio policy, its SBOM reaching the rules; an attestation by
// another identity does not count, and the rule needing an SBOM refuses.
func TestKeylessPolicy(t *testing.T) {
	e := newTestEnv(t, nil)
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	const email, issuer = "release@example.com", "https://accounts.example.com"
	app := e.host + "/keyless"
	e.writePolicy(`{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"` + app + `": [` + sigstoretest.PolicyJSON(t, vs, email, issuer) + `]}}}`)
	e.writeRules("rules:\n  - name: require-sbom\n    expression: sbom != null && sbom.components.exists(c, c.name == 'openssl')\n    message: no SBOM attested\n")
	layer := func(blob []byte, ann map[string]string, mediaType string) attachmentLayer {
		return attachmentLayer{mediaType: mediaType, blob: blob, annotations: ann}
	}
	signedBy := func(tag, attester string) Decision {
		t.Helper()
		img := newTestImage(t, tag, ocispec.ImageConfig{User: "1000"})
		e.push(img, app+":"+tag)
		sig := sigstoretest.Signature(t, vs, email, issuer, app, img.desc.Digest)
		e.pushAttachment(app, sigTag(img.desc.Digest), layer(sig.Payload, sig.Annotations, "application/vnd.dev.cosign.simplesigning.v1+json"))
		env, ann := sigstoretest.Attestation(t, vs, attester, issuer, sigstoretest.Statement(img.desc.Digest, "https://cyclonedx.org/bom", cycloneDX))
		e.pushAttachment(app, attTag(img.desc.Digest), layer(env, ann, sigstore.MediaTypeDSSE))
		det, err := e.pull(app + ":" + tag)
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.checker.Explain(context.Background(), Request{Reference: det.Name, Digest: det.Digest})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := signedBy("good", email); !d.Allowed {
		t.Fatalf("keyless signature and attestation refused: %v %+v", d.Err(), d.Steps)
	}
	d := signedBy("mallory", "mallory@example.com")
	refusedWith(t, d.Err(), "refused by rule require-sbom: no SBOM attested")
	ignored := false
	for _, s := range d.Steps {
		ignored = ignored || (s.Kind == "attestation" && !s.Allowed)
	}
	if !ignored {
		t.Errorf("the other identity's attestation is not shown as ignored: %+v", d.Steps)
	}
}
