// Package sigstore verifies the signatures and attestations cosign attaches
// to images, against one sigstoreSigned requirement of a policy:
//
//   - a signature is a simple-signing payload (critical.image.docker-manifest-digest,
//     critical.identity.docker-reference) in a layer of the manifest tagged
//     sha256-<hex>.sig, its base64 signature in the layer's annotation
//     dev.cosignproject.cosign/signature and, when keyless, the signer's
//     certificate, chain and transparency-log bundle in dev.sigstore.cosign/*;
//   - an attestation is an in-toto statement in a DSSE envelope, a layer
//     of the manifest tagged sha256-<hex>.att (or a referrer of the image).
//
// Key-based signatures verify offline with the policy's keys; a log entry is
// required only when the requirement names a Rekor key. Keyless signatures
// need both: the certificate must chain to the policy's Fulcio CA at the
// time the log recorded the entry, and the entry's signed timestamp must
// verify with the Rekor key.
//
// Every input here comes from a registry and is hostile until verified:
// sizes are bounded by the caller (Max*) and nothing is trusted before its
// signature verifies.
package sigstore

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/trust/policy"
)

// Annotations cosign writes on a signature or attestation layer.
const (
	AnnotationSignature   = "dev.cosignproject.cosign/signature"
	AnnotationCertificate = "dev.sigstore.cosign/certificate"
	AnnotationChain       = "dev.sigstore.cosign/chain"
	AnnotationBundle      = "dev.sigstore.cosign/bundle"
	AnnotationPredicate   = "predicateType"
)

// Limits on what is read from a registry.
const (
	// MaxPayload bounds a simple-signing payload.
	MaxPayload = 64 << 10
	// MaxEnvelope bounds a DSSE envelope (its statement carries an SBOM).
	MaxEnvelope = 16 << 20
	// MaxAnnotation bounds a signature, certificate, chain or bundle annotation.
	MaxAnnotation = 64 << 10
	// MaxLayers bounds the signatures or attestations read per image.
	MaxLayers = 64
)

// SimpleSigningType is critical.type of a cosign signature payload.
const SimpleSigningType = "cosign container image signature"

// Signature is one layer of a .sig manifest.
type Signature struct {
	Payload     []byte
	Annotations map[string]string
}

// Verified says who made a signature that verified, and for what.
type Verified struct {
	// Signer is the key (its path, or "keyData") or, keyless, the
	// certificate's subject (an email or URI).
	Signer string
	// Identity is the docker-reference the signature claims (empty for
	// an attestation).
	Identity string
	// Issuer is the OIDC issuer of a keyless certificate.
	Issuer string
}

type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// VerifySignature checks that sig, by a signer req accepts, signs manifest
// (the digest the image reference resolved to) with an identity acceptable
// for ref. The error says which step failed.
func VerifySignature(req policy.Requirement, sig Signature, manifest digest.Digest, ref reference.Reference) (Verified, error) {
	if len(sig.Payload) > MaxPayload {
		return Verified{}, fmt.Errorf("payload of %d bytes is more than %d", len(sig.Payload), MaxPayload)
	}
	raw, err := annotation(sig.Annotations, AnnotationSignature, true)
	if err != nil {
		return Verified{}, err
	}
	sigBytes, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return Verified{}, fmt.Errorf("signature annotation is not base64: %w", err)
	}
	v, err := verifyBlob(req, sigBytes, sig.Payload, sig.Annotations)
	if err != nil {
		return Verified{}, err
	}
	var ss simpleSigning
	dec := json.NewDecoder(bytes.NewReader(sig.Payload))
	if err := dec.Decode(&ss); err != nil {
		return Verified{}, fmt.Errorf("signed payload: %w", err)
	}
	if ss.Critical.Type != SimpleSigningType {
		return Verified{}, fmt.Errorf("signed payload: type %q is not %q", ss.Critical.Type, SimpleSigningType)
	}
	signed, err := digest.Parse(ss.Critical.Image.DockerManifestDigest)
	if err != nil {
		return Verified{}, fmt.Errorf("signed payload: manifest digest: %w", err)
	}
	if signed != manifest {
		return Verified{}, fmt.Errorf("signature is for manifest %s, not %s", signed, manifest)
	}
	v.Identity = ss.Critical.Identity.DockerReference
	if !req.SignedIdentity.Matches(ref, v.Identity) {
		return Verified{}, fmt.Errorf("signed identity %q is not accepted for %s (signedIdentity %s)", v.Identity, ref, req.SignedIdentity.Describe())
	}
	return v, nil
}

func annotation(a map[string]string, key string, required bool) (string, error) {
	v, ok := a[key]
	if !ok {
		if required {
			return "", fmt.Errorf("no %s annotation", key)
		}
		return "", nil
	}
	if len(v) > MaxAnnotation {
		return "", fmt.Errorf("annotation %s of %d bytes is more than %d", key, len(v), MaxAnnotation)
	}
	return v, nil
}

// verifyBlob verifies sigBytes over data with req's keys, or keyless with
// the certificate in annotations.
func verifyBlob(req policy.Requirement, sigBytes, data []byte, annotations map[string]string) (Verified, error) {
	if req.Fulcio != nil {
		return verifyKeyless(req, sigBytes, data, annotations)
	}
	if len(req.Keys) == 0 {
		return Verified{}, errors.New("the requirement has no keys (policy not resolved)")
	}
	for i, k := range req.Keys {
		if verifyWith(k, sigBytes, data) == nil {
			v := Verified{Signer: req.KeyNames[i]}
			if req.RekorKey != nil {
				bundle, err := annotation(annotations, AnnotationBundle, true)
				if err != nil {
					return Verified{}, fmt.Errorf("the policy asks for a transparency log entry: %w", err)
				}
				pem, err := cryptoutils.MarshalPublicKeyToPEM(k)
				if err != nil {
					return Verified{}, err
				}
				if _, err := verifyRekorBundle(req.RekorKey, bundle, sigBytes, data, pem); err != nil {
					return Verified{}, err
				}
			}
			return v, nil
		}
	}
	return Verified{}, fmt.Errorf("no signature verifies with %s", strings.Join(req.KeyNames, ", "))
}

func verifyWith(k crypto.PublicKey, sig, data []byte) error {
	v, err := signature.LoadVerifier(k, crypto.SHA256)
	if err != nil {
		return err
	}
	return v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(data), options.NoOpOptionImpl{})
}

// Fulcio certificate extensions (sigstore's OID arc 1.3.6.1.4.1.57264.1).
var (
	oidIssuerV1 = []int{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = []int{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

func verifyKeyless(req policy.Requirement, sigBytes, data []byte, annotations map[string]string) (Verified, error) {
	f := req.Fulcio
	certPEM, err := annotation(annotations, AnnotationCertificate, true)
	if err != nil {
		return Verified{}, fmt.Errorf("keyless: %w", err)
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(certPEM))
	if err != nil || len(certs) != 1 {
		return Verified{}, fmt.Errorf("keyless: certificate annotation is not one PEM certificate")
	}
	leaf := certs[0]
	chainPEM, err := annotation(annotations, AnnotationChain, false)
	if err != nil {
		return Verified{}, err
	}
	intermediates := x509.NewCertPool()
	if chainPEM != "" {
		chain, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(chainPEM))
		if err != nil {
			return Verified{}, fmt.Errorf("keyless: chain annotation: %w", err)
		}
		for _, c := range chain {
			intermediates.AddCert(c)
		}
	}
	// The log entry dates the signature: a Fulcio certificate lives ten
	// minutes, and it must have been valid when the entry was made.
	bundle, err := annotation(annotations, AnnotationBundle, true)
	if err != nil {
		return Verified{}, fmt.Errorf("keyless: the certificate can only be dated by a transparency log entry: %w", err)
	}
	integrated, err := verifyRekorBundle(req.RekorKey, bundle, sigBytes, data, []byte(certPEM))
	if err != nil {
		return Verified{}, fmt.Errorf("keyless: %w", err)
	}
	roots := x509.NewCertPool()
	for _, r := range f.Roots {
		roots.AddCert(r)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: integrated,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
		return Verified{}, fmt.Errorf("keyless: certificate does not chain to the Fulcio CA %s at %s: %w", caName(f), integrated.UTC().Format(time.RFC3339), err)
	}
	if err := verifyWith(leaf.PublicKey, sigBytes, data); err != nil {
		return Verified{}, fmt.Errorf("keyless: signature does not verify with its certificate: %w", err)
	}
	issuer := certIssuer(leaf)
	if issuer != f.OIDCIssuer {
		return Verified{}, fmt.Errorf("keyless: certificate issued for OIDC issuer %q, not %q", issuer, f.OIDCIssuer)
	}
	found := false
	for _, e := range leaf.EmailAddresses {
		found = found || e == f.SubjectEmail
	}
	if !found {
		return Verified{}, fmt.Errorf("keyless: certificate subject %v is not %s", leaf.EmailAddresses, f.SubjectEmail)
	}
	return Verified{Signer: f.SubjectEmail, Issuer: issuer}, nil
}

func caName(f *policy.Fulcio) string {
	if f.CAPath != "" {
		return f.CAPath
	}
	return "(caData)"
}

func certIssuer(c *x509.Certificate) string {
	for _, e := range c.Extensions {
		if e.Id.Equal(oidIssuerV2) {
			var s string
			if _, err := asn1.Unmarshal(e.Value, &s); err == nil {
				return s
			}
		}
	}
	for _, e := range c.Extensions {
		if e.Id.Equal(oidIssuerV1) {
			return string(e.Value)
		}
	}
	return ""
}

// rekorBundle is cosign's dev.sigstore.cosign/bundle annotation.
type rekorBundle struct {
	SignedEntryTimestamp []byte `json:"SignedEntryTimestamp"`
	Payload              struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogIndex       int64  `json:"logIndex"`
		LogID          string `json:"logID"`
	} `json:"Payload"`
}

// canonicalPayload is the bundle's Payload as Rekor signs it: RFC 8785
// canonical JSON, which for these four fields is their sorted order.
type canonicalPayload struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogID          string `json:"logID"`
	LogIndex       int64  `json:"logIndex"`
}

// hashedRekord is the log entry body cosign makes for a signature.
type hashedRekord struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Data struct {
			Hash struct {
				Algorithm string `json:"algorithm"`
				Value     string `json:"value"`
			} `json:"hash"`
		} `json:"data"`
		Signature struct {
			Content   []byte `json:"content"`
			PublicKey struct {
				Content []byte `json:"content"`
			} `json:"publicKey"`
		} `json:"signature"`
	} `json:"spec"`
}

// verifyRekorBundle checks the log's signed entry timestamp over the entry
// and that the entry records this signature over this data by this key or
// certificate; it returns when the log integrated the entry.
func verifyRekorBundle(rekorKey crypto.PublicKey, bundleJSON string, sig, data, pubPEM []byte) (time.Time, error) {
	if rekorKey == nil {
		return time.Time{}, errors.New("no Rekor public key in the policy")
	}
	var b rekorBundle
	if err := json.Unmarshal([]byte(bundleJSON), &b); err != nil {
		return time.Time{}, fmt.Errorf("rekor bundle: %w", err)
	}
	canon, err := json.Marshal(canonicalPayload{Body: b.Payload.Body, IntegratedTime: b.Payload.IntegratedTime, LogID: b.Payload.LogID, LogIndex: b.Payload.LogIndex})
	if err != nil {
		return time.Time{}, err
	}
	if err := verifyWith(rekorKey, b.SignedEntryTimestamp, canon); err != nil {
		return time.Time{}, fmt.Errorf("rekor bundle: signed entry timestamp does not verify with the Rekor key: %w", err)
	}
	logID, err := keyID(rekorKey)
	if err != nil {
		return time.Time{}, err
	}
	if b.Payload.LogID != logID {
		return time.Time{}, fmt.Errorf("rekor bundle: log ID %s is not the Rekor key's %s", b.Payload.LogID, logID)
	}
	body, err := base64.StdEncoding.DecodeString(b.Payload.Body)
	if err != nil {
		return time.Time{}, fmt.Errorf("rekor bundle: body: %w", err)
	}
	var e hashedRekord
	if err := json.Unmarshal(body, &e); err != nil {
		return time.Time{}, fmt.Errorf("rekor bundle: body: %w", err)
	}
	sum := sha256.Sum256(data)
	switch {
	case e.Kind != "hashedrekord":
		return time.Time{}, fmt.Errorf("rekor bundle: entry kind %q is not hashedrekord", e.Kind)
	case e.Spec.Data.Hash.Algorithm != "sha256" || e.Spec.Data.Hash.Value != hex.EncodeToString(sum[:]):
		return time.Time{}, errors.New("rekor bundle: the entry records other data")
	case !bytes.Equal(e.Spec.Signature.Content, sig):
		return time.Time{}, errors.New("rekor bundle: the entry records another signature")
	case !samePEM(e.Spec.Signature.PublicKey.Content, pubPEM):
		return time.Time{}, errors.New("rekor bundle: the entry records another key or certificate")
	}
	return time.Unix(b.Payload.IntegratedTime, 0), nil
}

func samePEM(a, b []byte) bool {
	return bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b))
}

// keyID is a log's ID: the SHA-256 of its DER public key, in hex.
func keyID(k crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}
