package trust

import (
	"context"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/trust/policy"
	"github.com/berth-project/berth/internal/trust/registriesd"
	"github.com/berth-project/berth/internal/trust/sigstore"
)

// Step is one requirement's or rule's verdict, as `berth image verify` lists them.
type Step struct {
	// Kind is "requirement", "rule", "attestation(s)" or "registries.d"
	// (informational: the section in force, never a verdict).
	Kind string `json:"kind"`
	// Name is the requirement's type (with its keys) or the rule's name.
	Name    string `json:"name"`
	Allowed bool   `json:"allowed"`
	// Skipped is set for a rule whose matchConditions did not match.
	Skipped bool   `json:"skipped,omitempty"`
	Message string `json:"message,omitempty"`
}

// Attestation is a verified in-toto statement about the image.
type Attestation struct {
	PredicateType string
	Predicate     []byte
	Signer        sigstore.Verified
}

// policyResult is the policy's verdict on one image.
type policyResult struct {
	Allowed      bool
	Scope        string
	Steps        []Step
	Signatures   []sigstore.Verified
	Attestations []Attestation
	// Transient is set when the verdict came from a failure that may not
	// recur (the registry unreachable): it is not cached.
	Transient bool
}

// evaluatePolicy decides whether ref, resolved to manifest, satisfies pol.
// Signatures are fetched only when a requirement needs them; attestations
// only when wantAttestations, and they count only if they verify under
// every sigstoreSigned requirement of the scope.
//
// Sigstore attachments are looked up for every sigstoreSigned requirement,
// whatever registries.d says: containers/image reads them only where
// use-sigstore-attachments is true, and a policy asking for sigstore
// signatures where they are never read would refuse every image. Where
// the policy needs no signature there is nothing to verify them with, so
// registries.d changes no verdict; its section is shown as a step.
func evaluatePolicy(ctx context.Context, rc *registry.Client, pol *policy.Policy, rd *registriesd.Config, ref reference.Reference, manifest ocispec.Descriptor, wantAttestations, explain bool) policyResult {
	scope := pol.For(ref)
	res := policyResult{Allowed: true, Scope: scope.Name}
	if step, ok := registriesDStep(ctx, rc, rd, scope, ref, manifest.Digest, explain); ok {
		res.Steps = append(res.Steps, step)
	}
	var sigs []attachment
	var sigErr error
	fetched := false
	var signed []policy.Requirement
	for _, req := range scope.Requirements {
		step := Step{Kind: "requirement", Name: req.Type}
		switch req.Type {
		case policy.TypeInsecureAcceptAnything:
			step.Allowed = true
		case policy.TypeReject:
			step.Message = "the policy rejects every image here"
		case policy.TypeSigstoreSigned:
			signed = append(signed, req)
			step.Name = req.Type + " " + signerNames(req)
			if !fetched {
				sigs, sigErr = fetchTagged(ctx, rc, ref, manifest.Digest, "sig", sigstore.MaxPayload)
				fetched = true
			}
			if sigErr != nil {
				step.Message = fmt.Sprintf("cannot read the signatures: %v", sigErr)
				res.Transient = true
				break
			}
			var why []string
			for _, s := range sigs {
				v, err := sigstore.VerifySignature(req, sigstore.Signature{Payload: s.Blob, Annotations: s.Annotations}, manifest.Digest, ref)
				if err == nil {
					step.Allowed = true
					res.Signatures = append(res.Signatures, v)
					step.Message = "signed by " + v.Signer + " as " + v.Identity
					break
				}
				why = append(why, err.Error())
			}
			if !step.Allowed {
				step.Message = noSignatureMessage(req, len(sigs), why)
			}
		}
		if !step.Allowed {
			res.Allowed = false
		}
		res.Steps = append(res.Steps, step)
	}
	if res.Allowed && wantAttestations {
		var complete bool
		res.Attestations, res.Steps, complete = attestations(ctx, rc, signed, ref, manifest, res.Steps)
		// A verdict made without some attestation (unreadable, too big,
		// the registry away) is not cached: the next start reads them again.
		res.Transient = res.Transient || !complete
	}
	return res
}

// registriesDStep describes the registries.d section in force for ref.
// Explaining, where it asks for sigstore attachments that the policy does
// not need, they are looked up and counted (never verified: there is
// nothing to verify them with); a check does not pay that request.
func registriesDStep(ctx context.Context, rc *registry.Client, rd *registriesd.Config, scope policy.Scope, ref reference.Reference, d digest.Digest, explain bool) (Step, bool) {
	m, ok := rd.For(ref)
	if !ok {
		return Step{}, false
	}
	signed := false
	for _, r := range scope.Requirements {
		signed = signed || r.Type == policy.TypeSigstoreSigned
	}
	msg := m.Describe()
	use, set := m.UseSigstoreAttachments()
	switch {
	case signed && set && !use:
		msg += "; attachments are read anyway: the policy's sigstoreSigned needs them"
	case signed:
		msg += "; attachments are read: the policy's sigstoreSigned needs them"
	case use && explain:
		sigs, err := fetchTagged(ctx, rc, ref, d, "sig", sigstore.MaxPayload)
		if err != nil {
			msg += "; attachments unreadable: " + err.Error()
		} else {
			msg += fmt.Sprintf("; %d signature attachments found, none verified: the policy needs no signature here", len(sigs))
		}
	case use:
		msg += "; not read: the policy needs no signature here"
	}
	if m.Section.Lookaside != "" {
		msg += "; lookaside storage is not read (Berth verifies sigstore attachments only)"
	}
	return Step{Kind: "registries.d", Name: m.Scope, Allowed: true, Message: msg}, true
}

func signerNames(req policy.Requirement) string {
	if req.Fulcio != nil {
		return "fulcio " + req.Fulcio.SubjectEmail + " (" + req.Fulcio.OIDCIssuer + ")"
	}
	if len(req.KeyNames) > 0 {
		return strings.Join(req.KeyNames, ", ")
	}
	return strings.Join(req.KeyPaths, ", ")
}

func noSignatureMessage(req policy.Requirement, n int, why []string) string {
	with := "with " + signerNames(req)
	if req.Fulcio != nil {
		with = "for " + signerNames(req)
	}
	if n == 0 {
		return "no sigstore signature verifies " + with + " (the image has no signatures)"
	}
	// One reason is enough to act on; more would be noise.
	return fmt.Sprintf("no sigstore signature verifies %s (%d found: %s)", with, n, why[0])
}

// attestations reads the image's attestations (cosign's .att tag and the
// referrers API) and keeps those that verify; complete is false when some
// could not be read.
func attestations(ctx context.Context, rc *registry.Client, signed []policy.Requirement, ref reference.Reference, manifest ocispec.Descriptor, steps []Step) (_ []Attestation, _ []Step, complete bool) {
	complete = true
	found, err := fetchTagged(ctx, rc, ref, manifest.Digest, "att", sigstore.MaxEnvelope)
	if err != nil {
		complete = false
		steps = append(steps, Step{Kind: "attestations", Name: "tag " + attachmentTag(manifest.Digest, "att"), Message: "unreadable: " + err.Error()})
	}
	if more, err := fetchReferrers(ctx, rc, ref, manifest); err == nil {
		found = append(found, more...)
	}
	var out []Attestation
	for _, a := range found {
		st, v, err := verifyStatement(signed, a, manifest.Digest)
		if err != nil {
			steps = append(steps, Step{Kind: "attestation", Name: a.From, Message: "ignored: " + err.Error()})
			continue
		}
		out = append(out, Attestation{PredicateType: st.PredicateType, Predicate: st.Predicate, Signer: v})
		steps = append(steps, Step{Kind: "attestation", Name: st.PredicateType, Allowed: true, Message: "signed by " + v.Signer})
	}
	return out, steps, complete
}

func verifyStatement(signed []policy.Requirement, a attachment, d digest.Digest) (sigstore.Statement, sigstore.Verified, error) {
	if len(signed) == 0 {
		// The scope accepts any image; its attestations are as good as
		// the image. Still, the envelope must be about this image.
		return sigstore.StatementOf(a.Blob, d)
	}
	var st sigstore.Statement
	var v sigstore.Verified
	for _, req := range signed {
		var err error
		if st, v, err = sigstore.VerifyAttestation(req, a.Blob, a.Annotations, d); err != nil {
			return st, v, err
		}
	}
	return st, v, nil
}
