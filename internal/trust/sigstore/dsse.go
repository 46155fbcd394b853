package sigstore

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/trust/policy"
)

// In-toto and DSSE media types.
const (
	MediaTypeDSSE     = "application/vnd.dsse.envelope.v1+json"
	PayloadTypeInToto = "application/vnd.in-toto+json"
)

// Envelope is a DSSE envelope.
type Envelope struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	} `json:"signatures"`
}

// Statement is an in-toto statement (v0.1 or v1).
type Statement struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate json.RawMessage `json:"predicate"`
}

// PAE is DSSE's pre-authentication encoding: what is actually signed.
func PAE(payloadType string, payload []byte) []byte {
	b := []byte("DSSEv1 " + strconv.Itoa(len(payloadType)) + " " + payloadType + " " + strconv.Itoa(len(payload)) + " ")
	return append(b, payload...)
}

// VerifyAttestation checks that the DSSE envelope is signed by a signer
// req accepts and that its in-toto statement is about manifest, and
// returns the statement. annotations are the layer's (certificate, bundle).
// Keyless, the Rekor entry (dsse or intoto kind, as cosign attest logs it,
// or hashedrekord of the PAE) must record this payload, signature and
// certificate, and dates the certificate as for a signature.
func VerifyAttestation(req policy.Requirement, envelope []byte, annotations map[string]string, manifest digest.Digest) (Statement, Verified, error) {
	if len(envelope) > MaxEnvelope {
		return Statement{}, Verified{}, fmt.Errorf("envelope of %d bytes is more than %d", len(envelope), MaxEnvelope)
	}
	var env Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return Statement{}, Verified{}, fmt.Errorf("DSSE envelope: %w", err)
	}
	if env.PayloadType != PayloadTypeInToto {
		return Statement{}, Verified{}, fmt.Errorf("DSSE envelope: payload type %q is not %q", env.PayloadType, PayloadTypeInToto)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return Statement{}, Verified{}, fmt.Errorf("DSSE envelope: payload is not base64: %w", err)
	}
	if len(env.Signatures) == 0 {
		return Statement{}, Verified{}, errors.New("DSSE envelope: no signatures")
	}
	if len(env.Signatures) > 16 {
		return Statement{}, Verified{}, errors.New("DSSE envelope: more than 16 signatures")
	}
	pae := PAE(env.PayloadType, payload)
	var v Verified
	var lastErr error
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			lastErr = fmt.Errorf("DSSE signature is not base64: %w", err)
			continue
		}
		sd := signedData{sig: sig, data: pae, dssePayload: payload, dsseSig: s.Sig}
		if v, lastErr = verifyBlob(req, sd, annotations); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return Statement{}, Verified{}, lastErr
	}
	return statementAbout(payload, manifest, v)
}

// StatementOf reads the statement of an envelope without verifying its
// signatures (for a scope whose policy accepts anything), checking only
// that it is about manifest.
func StatementOf(envelope []byte, manifest digest.Digest) (Statement, Verified, error) {
	if len(envelope) > MaxEnvelope {
		return Statement{}, Verified{}, fmt.Errorf("envelope of %d bytes is more than %d", len(envelope), MaxEnvelope)
	}
	var env Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return Statement{}, Verified{}, fmt.Errorf("DSSE envelope: %w", err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return Statement{}, Verified{}, fmt.Errorf("DSSE envelope: payload is not base64: %w", err)
	}
	return statementAbout(payload, manifest, Verified{Signer: "(unverified)"})
}

func statementAbout(payload []byte, manifest digest.Digest, v Verified) (Statement, Verified, error) {
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return Statement{}, Verified{}, fmt.Errorf("in-toto statement: %w", err)
	}
	for _, s := range st.Subject {
		if s.Digest[manifest.Algorithm().String()] == manifest.Encoded() {
			return st, v, nil
		}
	}
	return Statement{}, Verified{}, fmt.Errorf("in-toto statement is not about %s", manifest)
}
