package admission

import "time"

// Facts is everything a rule can see about one image. The caller fills it
// from the image store and from attestations whose signatures it has already
// verified: this package trusts Facts as given and never fetches anything.
type Facts struct {
	Image           ImageFacts
	Signatures      []Signature
	SBOM            *SBOM // nil when no SBOM is attached: rules see null
	Vulnerabilities []Vulnerability
	// VulnerabilityReport is true when at least one verified vulnerability
	// report was attached, even one with no findings: an empty
	// Vulnerabilities alone cannot tell a clean scan from no scan. Rules
	// see it as the bool variable vulnerabilityReport.
	VulnerabilityReport bool
}

// ImageFacts are the image's name and the parts of its config rules look at.
// The cel tags are the field names rules use (image.exposedPorts).
type ImageFacts struct {
	Reference    string            `cel:"reference" json:"reference"`
	Repository   string            `cel:"repository" json:"repository"`
	Tag          string            `cel:"tag" json:"tag"`
	Digest       string            `cel:"digest" json:"digest"`
	Created      time.Time         `cel:"created" json:"created"`
	Labels       map[string]string `cel:"labels" json:"labels"`
	User         string            `cel:"user" json:"user"`
	Entrypoint   []string          `cel:"entrypoint" json:"entrypoint"`
	Cmd          []string          `cel:"cmd" json:"cmd"`
	ExposedPorts []string          `cel:"exposedPorts" json:"exposedPorts"`
	EnvNames     []string          `cel:"envNames" json:"envNames"`
}

// Signature is one verified signature: who signed (a key's name or a
// certificate's subject), the identity it vouches for and, for keyless
// signatures, the OIDC issuer.
type Signature struct {
	Signer   string `cel:"signer" json:"signer"`
	Identity string `cel:"identity" json:"identity"`
	Issuer   string `cel:"issuer" json:"issuer"`
}

// SBOM is the part of a software bill of materials rules use, the same for
// SPDX and CycloneDX. Format is "spdx" or "cyclonedx".
type SBOM struct {
	Format     string      `cel:"format" json:"format"`
	Components []Component `cel:"components" json:"components"`
}

// Component is one package of an SBOM. Type is lower case (library,
// application, operating-system, ...), from CycloneDX's type or SPDX 2.3's
// primaryPackagePurpose. Licenses holds SPDX license IDs or expressions.
type Component struct {
	Name     string   `cel:"name" json:"name"`
	Version  string   `cel:"version" json:"version"`
	PURL     string   `cel:"purl" json:"purl"`
	Type     string   `cel:"type" json:"type"`
	Licenses []string `cel:"licenses" json:"licenses"`
}

// Vulnerability is one finding: one ID in one component. Severity is
// normalised to lower case: critical, high, medium, low, info, none or
// unknown. Score is the highest CVSS base score the report gives (0 when none).
type Vulnerability struct {
	ID        string  `cel:"id" json:"id"`
	Severity  string  `cel:"severity" json:"severity"`
	Score     float64 `cel:"score" json:"score"`
	Component string  `cel:"component" json:"component"`
	Version   string  `cel:"version" json:"version"`
}
