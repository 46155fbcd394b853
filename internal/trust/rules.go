package trust

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/trust/admission"
)

// ruleSet is what the Checker needs of admission rules.
type ruleSet interface {
	Hash() string
	Evaluate(ctx context.Context, f admission.Facts) (admission.Result, error)
}

// rulesStamp is the rules file's content hash, "" when there is none: the
// cache key, known without compiling the rules (a cached start must not pay
// for CEL). The caller holds c.mu.
func (c *Checker) rulesStamp() (string, error) {
	p := c.opts.AdmissionPath
	if p == "" {
		return "", nil
	}
	stamp, err := fileStamp(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("admission rules %s: %w", p, err)
	}
	return stamp, nil
}

// loadRules compiles the rules whose content hash is stamp (nil for ""),
// reusing the last compilation while the content is unchanged. A rule that
// does not compile is an error naming it. The caller holds c.mu.
func (c *Checker) loadRules(stamp string) (ruleSet, error) {
	if stamp == "" {
		return nil, nil
	}
	if c.rules != nil && stamp == c.rulStamp {
		return c.rules, nil
	}
	r, err := admission.Load(c.opts.AdmissionPath)
	if err != nil {
		return nil, err
	}
	c.rules, c.rulStamp = r, stamp
	return r, nil
}

// Predicate types whose statements feed the rules.
const (
	predicateCycloneDX = "https://cyclonedx.org/bom"
	predicateSPDX      = "https://spdx.dev/Document"
	predicateVuln      = "https://cosign.sigstore.dev/attestation/vuln/v1"
)

// evaluateRules runs the rules over the image's facts and its verified
// attestations; the first rule that refuses decides the message.
func (c *Checker) evaluateRules(ctx context.Context, d *Decision, rules ruleSet, req Request, res policyResult) error {
	det, err := c.opts.Images.Inspect(ctx, req.Reference)
	if err != nil {
		return fmt.Errorf("image facts for %s: %w", req.Reference, err)
	}
	facts, bad := factsOf(det, req, res)
	if bad != nil {
		d.Allowed, d.Rule, d.Reason = false, "attestations", bad.Error()
		return nil
	}
	out, err := rules.Evaluate(ctx, facts)
	if err != nil {
		return err
	}
	for _, rr := range out.Rules {
		st := Step{Kind: "rule", Name: rr.Name, Allowed: rr.Allowed, Skipped: !rr.Matched, Message: rr.Message}
		if rr.Err != nil {
			st.Message = "evaluation failed (refused): " + rr.Err.Error()
		}
		d.Steps = append(d.Steps, st)
		if !rr.Allowed && d.Rule == "" {
			d.Allowed, d.Rule, d.Reason = false, rr.Name, st.Message
		}
	}
	if !out.Allowed && d.Rule == "" {
		d.Allowed, d.Rule, d.Reason = false, "rules", "refused"
	}
	return nil
}

// factsOf builds the rules' variables. A verified attestation whose
// document does not parse is an error: rules must not pass for want of an
// SBOM that was there but malformed.
func factsOf(det image.Details, req Request, res policyResult) (admission.Facts, error) {
	ref, _ := reference.Parse(req.Reference)
	cfg := det.Config.Config
	f := admission.Facts{Image: admission.ImageFacts{
		Reference: req.Reference, Repository: ref.Name(), Tag: ref.Tag, Digest: req.Digest.String(),
		Labels: cfg.Labels, User: cfg.User, Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd,
	}}
	if det.Config.Created != nil {
		f.Image.Created = det.Config.Created.UTC()
	} else {
		f.Image.Created = time.Time{}
	}
	for p := range cfg.ExposedPorts {
		f.Image.ExposedPorts = append(f.Image.ExposedPorts, p)
	}
	sort.Strings(f.Image.ExposedPorts)
	for _, e := range cfg.Env {
		name, _, _ := strings.Cut(e, "=")
		f.Image.EnvNames = append(f.Image.EnvNames, name)
	}
	for _, s := range res.Signatures {
		f.Signatures = append(f.Signatures, admission.Signature{Signer: s.Signer, Identity: s.Identity, Issuer: s.Issuer})
	}
	for _, a := range res.Attestations {
		pt := a.PredicateType
		isCDX := strings.HasPrefix(pt, predicateCycloneDX)
		if (isCDX || strings.HasPrefix(pt, predicateSPDX)) && f.SBOM == nil {
			sbom, err := admission.ParseSBOM(a.Predicate)
			if err != nil {
				return f, fmt.Errorf("attested SBOM (%s): %w", pt, err)
			}
			f.SBOM = sbom
		}
		if isCDX || pt == predicateVuln {
			vulns, err := admission.ParseVulnerabilities(pt, a.Predicate)
			if err != nil {
				return f, fmt.Errorf("attested vulnerabilities (%s): %w", pt, err)
			}
			f.Vulnerabilities = append(f.Vulnerabilities, vulns...)
		}
	}
	return f, nil
}
