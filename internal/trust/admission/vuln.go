package admission

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Predicate types ParseVulnerabilities understands.
const (
	// PredicateCosignVuln is cosign's vulnerability scan record
	// (cosign attest --type vuln).
	PredicateCosignVuln = "https://cosign.sigstore.dev/attestation/vuln/v1"
	// PredicateCycloneDX is a CycloneDX BOM (cosign attest --type cyclonedx).
	PredicateCycloneDX = "https://cyclonedx.org/bom"
	// PredicateCycloneDXVEX is a CycloneDX VEX document.
	PredicateCycloneDXVEX = "https://cyclonedx.org/vex"
	// PredicateSPDX is an SPDX JSON document (cosign attest --type spdxjson).
	PredicateSPDX = "https://spdx.dev/Document"
)

// ErrNoVulnerabilities is returned for a CycloneDX BOM without a
// vulnerabilities section: an SBOM, not a scan. A report with an empty
// vulnerabilities list is a scan that found nothing.
var ErrNoVulnerabilities = errors.New("CycloneDX document has no vulnerabilities section: not a vulnerability report")

// IsSBOMPredicate reports whether an attestation of this predicate type
// carries an SBOM for ParseSBOM.
func IsSBOMPredicate(predicateType string) bool {
	pt := normPredicate(predicateType)
	return pt == "spdx.dev/Document" || strings.HasPrefix(pt, "spdx.dev/Document/") ||
		pt == "cyclonedx.org/bom" || strings.HasPrefix(pt, "cyclonedx.org/bom/")
}

// IsVulnerabilityPredicate reports whether an attestation of this predicate
// type may carry vulnerabilities for ParseVulnerabilities. A CycloneDX BOM
// is both: it can list components and vulnerabilities together.
func IsVulnerabilityPredicate(predicateType string) bool {
	pt := normPredicate(predicateType)
	return pt == "cosign.sigstore.dev/attestation/vuln/v1" ||
		pt == "cyclonedx.org/bom" || strings.HasPrefix(pt, "cyclonedx.org/bom/") ||
		pt == "cyclonedx.org/vex" || strings.HasPrefix(pt, "cyclonedx.org/vex/")
}

func normPredicate(pt string) string {
	return strings.TrimSuffix(strings.TrimPrefix(pt, "https://"), "/")
}

// ParseVulnerabilities reads a vulnerability report, the predicate of an
// in-toto statement of type predicateType ("" to detect it from the content):
//
//   - CycloneDX 1.4+ JSON: its vulnerabilities list; each affects.ref is
//     resolved to the component with that bom-ref (or read as a purl), and
//     one Vulnerability is made per affected component.
//   - cosign's vuln predicate: {invocation, scanner: {uri, version, db,
//     result}, metadata}. The spec leaves scanner.result free-form; the shapes
//     scanners write there are recognised by their top-level keys:
//     Trivy's JSON report (Results[].Vulnerabilities[]: VulnerabilityID,
//     PkgName, InstalledVersion, Severity, CVSS.*.V3Score) — what
//     `trivy --format cosign-vuln` writes; Grype's JSON report (matches[]:
//     vulnerability {id, severity, cvss[].metrics.baseScore}, artifact {name,
//     version}); SARIF 2.1.0 (runs[].results[] with ruleId, the severity from
//     the rule's tags or its security-severity score, and the package and
//     version read from the message text as Trivy and Grype word it); and a
//     CycloneDX document.
//
// Severities are normalised (see Vulnerability); a missing severity is
// derived from the CVSS score by CVSS v3's bands. Any other shape is an
// error: a report that cannot be read must not pass for a clean one.
func ParseVulnerabilities(predicateType string, data []byte) ([]Vulnerability, error) {
	if err := checkSize(data, "vulnerability report"); err != nil {
		return nil, err
	}
	pt := normPredicate(predicateType)
	switch {
	case pt == "cosign.sigstore.dev/attestation/vuln/v1":
		return parseCosignVuln(data)
	case pt == "cyclonedx.org/bom" || strings.HasPrefix(pt, "cyclonedx.org/bom/") ||
		pt == "cyclonedx.org/vex" || strings.HasPrefix(pt, "cyclonedx.org/vex/"):
		return parseCycloneDXVulns(data)
	case pt == "":
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(data, &probe); err != nil {
			return nil, fmt.Errorf("parse vulnerability report: %w", jsonError(data, err))
		}
		if _, ok := probe["scanner"]; ok {
			return parseCosignVuln(data)
		}
		if _, ok := probe["scanners"]; ok {
			return parseCosignVuln(data)
		}
		return parseScannerResult(data, "vulnerability report")
	}
	return nil, fmt.Errorf("parse vulnerability report: predicate type %q is not a vulnerability report (want %s or %s)",
		predicateType, PredicateCosignVuln, PredicateCycloneDX)
}

func parseCycloneDXVulns(data []byte) ([]Vulnerability, error) {
	bom, err := decodeCycloneDX(data)
	if err != nil {
		return nil, err
	}
	byRef := map[string]*cdxComponent{}
	var index func([]cdxComponent)
	index = func(cs []cdxComponent) {
		for i := range cs {
			if cs[i].BOMRef != "" {
				byRef[cs[i].BOMRef] = &cs[i]
			}
			index(cs[i].Components)
		}
	}
	index(bom.Components)
	if bom.Vulnerabilities == nil {
		return nil, ErrNoVulnerabilities
	}
	out := []Vulnerability{}
	for i, v := range *bom.Vulnerabilities {
		if v.ID == "" {
			return nil, fmt.Errorf("parse CycloneDX: vulnerabilities[%d] has no id", i)
		}
		sev, score := "", 0.0
		for _, r := range v.Ratings {
			if r.Score != nil {
				if err := checkScore(*r.Score); err != nil {
					return nil, fmt.Errorf("parse CycloneDX: vulnerabilities[%d] (%s): %w", i, v.ID, err)
				}
				score = max(score, *r.Score)
			}
			if s := normSeverity(r.Severity); severityRank(s) > severityRank(sev) {
				sev = s
			}
		}
		sev = severityOrScore(sev, score)
		if len(v.Affects) == 0 {
			out = append(out, Vulnerability{ID: v.ID, Severity: sev, Score: score})
		}
		for _, a := range v.Affects {
			vv := Vulnerability{ID: v.ID, Severity: sev, Score: score}
			if c, ok := byRef[a.Ref]; ok {
				vv.Component, vv.Version = c.Name, c.Version
			} else if name, ver, ok := purlNameVersion(a.Ref); ok {
				vv.Component, vv.Version = name, ver
			} else {
				vv.Component = a.Ref
			}
			out = append(out, vv)
		}
		if len(out) > MaxVulnerabilities {
			return nil, fmt.Errorf("parse CycloneDX: more than %d affected components: %w", MaxVulnerabilities, ErrTooLarge)
		}
	}
	return out, nil
}

type cosignVulnPredicate struct {
	Scanner *struct {
		URI    string          `json:"uri"`
		Result json.RawMessage `json:"result"`
	} `json:"scanner"`
	// Early cosign (v1.3) wrote a list of scanners.
	Scanners []struct {
		URI    string          `json:"uri"`
		Result json.RawMessage `json:"result"`
	} `json:"scanners"`
}

func parseCosignVuln(data []byte) ([]Vulnerability, error) {
	var p cosignVulnPredicate
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("parse cosign vuln predicate: %w", jsonError(data, err))
	}
	var results []json.RawMessage
	if p.Scanner != nil {
		results = append(results, p.Scanner.Result)
	}
	for _, s := range p.Scanners {
		results = append(results, s.Result)
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("parse cosign vuln predicate: no scanner")
	}
	out := []Vulnerability{}
	for _, r := range results {
		if len(r) == 0 || string(r) == "null" {
			return nil, fmt.Errorf("parse cosign vuln predicate: scanner has no result")
		}
		vs, err := parseScannerResult(r, "cosign vuln predicate scanner.result")
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
		if len(out) > MaxVulnerabilities {
			return nil, fmt.Errorf("parse cosign vuln predicate: more than %d vulnerabilities: %w", MaxVulnerabilities, ErrTooLarge)
		}
	}
	return out, nil
}

func parseScannerResult(data []byte, what string) ([]Vulnerability, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("parse %s: %w", what, jsonError(data, err))
	}
	has := func(k string) bool { _, ok := probe[k]; return ok }
	switch {
	case has("bomFormat"):
		return parseCycloneDXVulns(data)
	case has("Results") || (has("SchemaVersion") && has("ArtifactName")):
		return parseTrivy(data)
	case has("matches"):
		return parseGrype(data)
	case has("runs"):
		return parseSARIF(data)
	}
	return nil, fmt.Errorf("parse %s: not a recognised report: want Trivy JSON (Results), Grype JSON (matches), SARIF (runs) or CycloneDX (bomFormat)", what)
}

type trivyReport struct {
	Results []struct {
		Target          string `json:"Target"`
		Vulnerabilities []struct {
			VulnerabilityID  string `json:"VulnerabilityID"`
			PkgName          string `json:"PkgName"`
			InstalledVersion string `json:"InstalledVersion"`
			Severity         string `json:"Severity"`
			CVSS             map[string]struct {
				V2Score  *float64 `json:"V2Score"`
				V3Score  *float64 `json:"V3Score"`
				V40Score *float64 `json:"V40Score"`
			} `json:"CVSS"`
		} `json:"Vulnerabilities"`
	} `json:"Results"`
}

func parseTrivy(data []byte) ([]Vulnerability, error) {
	var r trivyReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse Trivy report: %w", jsonError(data, err))
	}
	out := []Vulnerability{}
	for _, res := range r.Results {
		for i, v := range res.Vulnerabilities {
			if v.VulnerabilityID == "" {
				return nil, fmt.Errorf("parse Trivy report: %s: Vulnerabilities[%d] has no VulnerabilityID", res.Target, i)
			}
			score := 0.0
			for _, c := range v.CVSS {
				// Prefer the newest CVSS version a source gives.
				s := c.V40Score
				if s == nil {
					s = c.V3Score
				}
				if s == nil {
					s = c.V2Score
				}
				if s != nil {
					if err := checkScore(*s); err != nil {
						return nil, fmt.Errorf("parse Trivy report: %s: %w", v.VulnerabilityID, err)
					}
					score = max(score, *s)
				}
			}
			out = append(out, Vulnerability{
				ID:        v.VulnerabilityID,
				Severity:  severityOrScore(normSeverity(v.Severity), score),
				Score:     score,
				Component: v.PkgName,
				Version:   v.InstalledVersion,
			})
			if len(out) > MaxVulnerabilities {
				return nil, fmt.Errorf("parse Trivy report: more than %d vulnerabilities: %w", MaxVulnerabilities, ErrTooLarge)
			}
		}
	}
	return out, nil
}

type grypeReport struct {
	Matches []struct {
		Vulnerability struct {
			ID       string `json:"id"`
			Severity string `json:"severity"`
			CVSS     []struct {
				Metrics struct {
					BaseScore *float64 `json:"baseScore"`
				} `json:"metrics"`
			} `json:"cvss"`
		} `json:"vulnerability"`
		Artifact struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"artifact"`
	} `json:"matches"`
}

func parseGrype(data []byte) ([]Vulnerability, error) {
	var r grypeReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse Grype report: %w", jsonError(data, err))
	}
	if len(r.Matches) > MaxVulnerabilities {
		return nil, fmt.Errorf("parse Grype report: %d matches, more than the %d allowed: %w", len(r.Matches), MaxVulnerabilities, ErrTooLarge)
	}
	out := make([]Vulnerability, 0, len(r.Matches))
	for i, m := range r.Matches {
		if m.Vulnerability.ID == "" {
			return nil, fmt.Errorf("parse Grype report: matches[%d] has no vulnerability.id", i)
		}
		score := 0.0
		for _, c := range m.Vulnerability.CVSS {
			if s := c.Metrics.BaseScore; s != nil {
				if err := checkScore(*s); err != nil {
					return nil, fmt.Errorf("parse Grype report: %s: %w", m.Vulnerability.ID, err)
				}
				score = max(score, *s)
			}
		}
		out = append(out, Vulnerability{
			ID:        m.Vulnerability.ID,
			Severity:  severityOrScore(normSeverity(m.Vulnerability.Severity), score),
			Score:     score,
			Component: m.Artifact.Name,
			Version:   m.Artifact.Version,
		})
	}
	return out, nil
}

type sarifLog struct {
	Version string `json:"version"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Rules []sarifRule `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Results []struct {
			RuleID    string `json:"ruleId"`
			RuleIndex *int   `json:"ruleIndex"`
			Message   struct {
				Text string `json:"text"`
			} `json:"message"`
		} `json:"results"`
	} `json:"runs"`
}

type sarifRule struct {
	ID         string `json:"id"`
	Properties struct {
		Tags             []string        `json:"tags"`
		SecuritySeverity json.RawMessage `json:"security-severity"`
	} `json:"properties"`
}

// How Trivy ("Package: openssl\nInstalled Version: 3.0.1") and Grype ("A
// critical vulnerability in deb package: openssl, version 3.0.1 was found
// at: ...") word a SARIF result's message.
var (
	sarifTrivyPackage = regexp.MustCompile(`(?m)^Package: (\S+)`)
	sarifTrivyVersion = regexp.MustCompile(`(?m)^Installed Version: (\S+)`)
	sarifGrype        = regexp.MustCompile(`package: ([^,\s]+), version (\S+)`)
)

func parseSARIF(data []byte) ([]Vulnerability, error) {
	var l sarifLog
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("parse SARIF: %w", jsonError(data, err))
	}
	if !strings.HasPrefix(l.Version, "2.") {
		return nil, fmt.Errorf("parse SARIF: version %q is not supported (want 2.1.0)", l.Version)
	}
	out := []Vulnerability{}
	for ri, run := range l.Runs {
		rules := map[string]*sarifRule{}
		for i := range run.Tool.Driver.Rules {
			rules[run.Tool.Driver.Rules[i].ID] = &run.Tool.Driver.Rules[i]
		}
		for i, res := range run.Results {
			rule := rules[res.RuleID]
			if res.RuleIndex != nil && *res.RuleIndex >= 0 && *res.RuleIndex < len(run.Tool.Driver.Rules) {
				rule = &run.Tool.Driver.Rules[*res.RuleIndex]
			}
			id := res.RuleID
			if id == "" && rule != nil {
				id = rule.ID
			}
			if id == "" {
				return nil, fmt.Errorf("parse SARIF: runs[%d].results[%d] has no ruleId", ri, i)
			}
			v := Vulnerability{ID: id}
			if rule != nil {
				for _, t := range rule.Properties.Tags {
					if s := normSeverity(t); severityRank(s) > severityRank(v.Severity) {
						v.Severity = s
					}
				}
				if s, ok, err := sarifScore(rule.Properties.SecuritySeverity); err != nil {
					return nil, fmt.Errorf("parse SARIF: rule %s: %w", rule.ID, err)
				} else if ok {
					v.Score = s
				}
			}
			v.Severity = severityOrScore(v.Severity, v.Score)
			if m := sarifTrivyPackage.FindStringSubmatch(res.Message.Text); m != nil {
				v.Component = m[1]
				if m := sarifTrivyVersion.FindStringSubmatch(res.Message.Text); m != nil {
					v.Version = m[1]
				}
			} else if m := sarifGrype.FindStringSubmatch(res.Message.Text); m != nil {
				v.Component, v.Version = m[1], m[2]
			}
			out = append(out, v)
			if len(out) > MaxVulnerabilities {
				return nil, fmt.Errorf("parse SARIF: more than %d results: %w", MaxVulnerabilities, ErrTooLarge)
			}
		}
	}
	return out, nil
}

// sarifScore reads security-severity, which GitHub defines as a string
// holding a number but some tools write as a number.
func sarifScore(raw json.RawMessage) (float64, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		s = string(raw)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, false, fmt.Errorf("security-severity %s is not a number", raw)
	}
	if err := checkScore(f); err != nil {
		return 0, false, err
	}
	return f, true, nil
}

func checkScore(s float64) error {
	if !(s >= 0 && s <= 10) {
		return fmt.Errorf("CVSS score %v is outside 0 to 10", s)
	}
	return nil
}

// normSeverity maps the scanners' words onto one scale: critical, high,
// medium, low, info, none, unknown (and "" for no word at all).
func normSeverity(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return "critical"
	case "high", "important":
		return "high"
	case "medium", "moderate":
		return "medium"
	case "low", "negligible":
		return "low"
	case "info", "informational":
		return "info"
	case "none":
		return "none"
	case "unknown":
		return "unknown"
	}
	return ""
}

func severityRank(s string) int {
	switch s {
	case "critical":
		return 7
	case "high":
		return 6
	case "medium":
		return 5
	case "low":
		return 4
	case "info":
		return 3
	case "none":
		return 2
	case "unknown":
		return 1
	}
	return 0
}

// severityOrScore fills a missing or unknown severity from the CVSS v3 band
// of the score.
func severityOrScore(sev string, score float64) string {
	if sev != "" && sev != "unknown" {
		return sev
	}
	switch {
	case score >= 9:
		return "critical"
	case score >= 7:
		return "high"
	case score >= 4:
		return "medium"
	case score > 0:
		return "low"
	}
	return "unknown"
}

// purlNameVersion reads name and version from a package URL
// (pkg:type/namespace/name@version?qualifiers#subpath).
func purlNameVersion(s string) (name, version string, ok bool) {
	rest, found := strings.CutPrefix(s, "pkg:")
	if !found {
		return "", "", false
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		version = rest[i+1:]
		rest = rest[:i]
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", false
	}
	name = rest[i+1:]
	if u, err := url.PathUnescape(name); err == nil {
		name = u
	}
	if u, err := url.PathUnescape(version); err == nil {
		version = u
	}
	return name, version, name != ""
}
