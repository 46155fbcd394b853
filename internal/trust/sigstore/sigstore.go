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
	v, err := verifyBlob(req, signedData{sig: sigBytes, data: sig.Payload}, sig.Annotations)
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

// signedData is a signature and what it signs: a simple-signing payload,
// or a DSSE envelope's PAE with the envelope's payload and signature as
// written in it (a log entry of an attestation records those).
type signedData struct {
	sig, data []byte
	// dssePayload is nil for a simple-signing signature.
	dssePayload []byte
	dsseSig     string
}

// verifyBlob verifies sd.sig over sd.data with req's keys, or keyless with
// the certificate in annotations.
func verifyBlob(req policy.Requirement, sd signedData, annotations map[string]string) (Verified, error) {
	sigBytes, data := sd.sig, sd.data
	if req.Fulcio != nil {
		return verifyKeyless(req, sd, annotations)
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
				if _, err := verifyRekorBundle(req.RekorKey, bundle, sd, pem); err != nil {
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

func verifyKeyless(req policy.Requirement, sd signedData, annotations map[string]string) (Verified, error) {
	sigBytes, data := sd.sig, sd.data
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
	integrated, err := verifyRekorBundle(req.RekorKey, bundle, sd, []byte(certPEM))
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

// logEntry is a Rekor entry body: its kind decides what spec holds.
type logEntry struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Spec       json.RawMessage `json:"spec"`
}

// hashedRekordSpec is the entry cosign makes for a signature.
type hashedRekordSpec struct {
	Data struct {
		Hash hashValue `json:"hash"`
	} `json:"data"`
	Signature struct {
		Content   []byte `json:"content"`
		PublicKey struct {
			Content []byte `json:"content"`
		} `json:"publicKey"`
	} `json:"signature"`
}

type hashValue struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"value"`
}

// dsseSpec is a dsse v0.0.1 entry (an attestation): the payload's hash and
// each signature (as the envelope writes it) with its key or certificate.
type dsseSpec struct {
	PayloadHash hashValue `json:"payloadHash"`
	Signatures  []struct {
		Signature string `json:"signature"`
		Verifier  []byte `json:"verifier"`
	} `json:"signatures"`
}

// intotoSpec is an intoto entry: v0.0.2 records each signature (the
// envelope's base64 text, base64-encoded again) and its key; v0.0.1 only
// the key and hashes.
type intotoSpec struct {
	Content struct {
		PayloadHash *hashValue `json:"payloadHash"`
		Envelope    struct {
			Signatures []struct {
				Sig       []byte `json:"sig"`
				PublicKey []byte `json:"publicKey"`
			} `json:"signatures"`
		} `json:"envelope"`
	} `json:"content"`
	PublicKey []byte `json:"publicKey"`
}

// verifyRekorBundle checks the log's signed entry timestamp over the entry
// and that the entry records this signature over this data by this key or
// certificate; it returns when the log integrated the entry.
func verifyRekorBundle(rekorKey crypto.PublicKey, bundleJSON string, sd signedData, pubPEM []byte) (time.Time, error) {
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
	var e logEntry
	if err := json.Unmarshal(body, &e); err != nil {
		return time.Time{}, fmt.Errorf("rekor bundle: body: %w", err)
	}
	if err := entryRecords(e, sd, pubPEM); err != nil {
		return time.Time{}, fmt.Errorf("rekor bundle: %w", err)
	}
	return time.Unix(b.Payload.IntegratedTime, 0), nil
}

// entryRecords checks that a log entry records sd by pubPEM: hashedrekord
// (a signature, or an attestation logged as its PAE's signature), dsse or
// intoto (attestations only, bound by the payload's hash, the signature
// where the kind records it, and the key).
func entryRecords(e logEntry, sd signedData, pubPEM []byte) error {
	sha := func(b []byte) hashValue {
		sum := sha256.Sum256(b)
		return hashValue{Algorithm: "sha256", Value: hex.EncodeToString(sum[:])}
	}
	attestationOnly := func() error {
		if sd.dssePayload == nil {
			return fmt.Errorf("entry kind %q records an attestation, not a signature", e.Kind)
		}
		return nil
	}
	switch {
	case e.Kind == "hashedrekord":
		var s hashedRekordSpec
		if err := json.Unmarshal(e.Spec, &s); err != nil {
			return fmt.Errorf("hashedrekord entry: %w", err)
		}
		switch {
		case s.Data.Hash != sha(sd.data):
			return errors.New("the entry records other data")
		case !bytes.Equal(s.Signature.Content, sd.sig):
			return errors.New("the entry records another signature")
		case !samePEM(s.Signature.PublicKey.Content, pubPEM):
			return errors.New("the entry records another key or certificate")
		}
		return nil
	case e.Kind == "dsse" && e.APIVersion == "0.0.1":
		if err := attestationOnly(); err != nil {
			return err
		}
		var s dsseSpec
		if err := json.Unmarshal(e.Spec, &s); err != nil {
			return fmt.Errorf("dsse entry: %w", err)
		}
		if s.PayloadHash != sha(sd.dssePayload) {
			return errors.New("the entry records another attestation payload")
		}
		for _, sig := range s.Signatures {
			if sig.Signature == sd.dsseSig && samePEM(sig.Verifier, pubPEM) {
				return nil
			}
		}
		return errors.New("the entry records another signature or certificate")
	case e.Kind == "intoto" && (e.APIVersion == "0.0.2" || e.APIVersion == "0.0.1"):
		if err := attestationOnly(); err != nil {
			return err
		}
		var s intotoSpec
		if err := json.Unmarshal(e.Spec, &s); err != nil {
			return fmt.Errorf("intoto entry: %w", err)
		}
		// v0.0.1 entries made before payloadHash existed bind nothing
		// Berth can check against the statement: refused.
		if s.Content.PayloadHash == nil || *s.Content.PayloadHash != sha(sd.dssePayload) {
			return errors.New("the entry records another attestation payload (or none)")
		}
		if e.APIVersion == "0.0.1" {
			if !samePEM(s.PublicKey, pubPEM) {
				return errors.New("the entry records another key or certificate")
			}
			return nil
		}
		for _, sig := range s.Content.Envelope.Signatures {
			if string(sig.Sig) == sd.dsseSig && samePEM(sig.PublicKey, pubPEM) {
				return nil
			}
		}
		return errors.New("the entry records another signature or certificate")
	}
	return fmt.Errorf("entry kind %q version %q is not hashedrekord, dsse 0.0.1 or intoto 0.0.1/0.0.2", e.Kind, e.APIVersion)
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
