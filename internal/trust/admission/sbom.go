package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Limits on documents read from a registry. An SBOM of a large image is a
// few megabytes; these leave room while keeping a hostile document from
// exhausting memory or making every rule walk millions of entries.
const (
	// MaxDocumentSize bounds an SBOM or vulnerability report, in bytes.
	MaxDocumentSize = 32 << 20
	// MaxComponents bounds the components of one SBOM: several times the
	// packages of the largest images.
	MaxComponents = 50_000
	// MaxVulnerabilities bounds the findings of one report.
	MaxVulnerabilities = 50_000
	// maxNesting bounds CycloneDX's nested components.
	maxNesting = 32
)

// ErrTooLarge is wrapped by errors for documents over a size or count limit.
var ErrTooLarge = errors.New("document too large")

// ParseSBOM reads an SBOM in SPDX 2.2/2.3 JSON or CycloneDX 1.4 or later
// JSON, telling them apart by SPDX's spdxVersion and CycloneDX's bomFormat.
// It keeps only what rules see: each package's name, version, purl, type and
// licenses.
func ParseSBOM(data []byte) (*SBOM, error) {
	if err := checkSize(data, "SBOM"); err != nil {
		return nil, err
	}
	var probe struct {
		SPDXVersion *string `json:"spdxVersion"`
		BOMFormat   *string `json:"bomFormat"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("parse SBOM: %w", jsonError(data, err))
	}
	switch {
	case probe.SPDXVersion != nil:
		return parseSPDX(data, *probe.SPDXVersion)
	case probe.BOMFormat != nil:
		if *probe.BOMFormat != "CycloneDX" {
			return nil, fmt.Errorf("parse SBOM: bomFormat is %q, not CycloneDX", *probe.BOMFormat)
		}
		bom, err := decodeCycloneDX(data)
		if err != nil {
			return nil, err
		}
		return &SBOM{Format: "cyclonedx", Components: bom.flatten()}, nil
	}
	return nil, errors.New("parse SBOM: neither SPDX JSON (no spdxVersion) nor CycloneDX JSON (no bomFormat)")
}

func checkSize(data []byte, what string) error {
	if len(data) > MaxDocumentSize {
		return fmt.Errorf("parse %s: %d bytes, more than the %d allowed: %w", what, len(data), MaxDocumentSize, ErrTooLarge)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("parse %s: empty document", what)
	}
	return checkJSONShape(data, what)
}

// jsonError adds the line and column to a syntax or type error, since
// encoding/json gives only a byte offset.
func jsonError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Errorf("line %d column %d: %w", line, col, err)
}

type spdxDocument struct {
	SPDXVersion string        `json:"spdxVersion"`
	Packages    []spdxPackage `json:"packages"`
}

type spdxPackage struct {
	Name                  string `json:"name"`
	VersionInfo           string `json:"versionInfo"`
	LicenseConcluded      string `json:"licenseConcluded"`
	LicenseDeclared       string `json:"licenseDeclared"`
	PrimaryPackagePurpose string `json:"primaryPackagePurpose"`
	ExternalRefs          []struct {
		ReferenceCategory string `json:"referenceCategory"`
		ReferenceType     string `json:"referenceType"`
		ReferenceLocator  string `json:"referenceLocator"`
	} `json:"externalRefs"`
}

func parseSPDX(data []byte, version string) (*SBOM, error) {
	switch version {
	case "SPDX-2.2", "SPDX-2.3":
	default:
		return nil, fmt.Errorf("parse SPDX SBOM: spdxVersion %q is not supported (want SPDX-2.2 or SPDX-2.3 JSON)", version)
	}
	var doc spdxDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse SPDX SBOM: %w", jsonError(data, err))
	}
	if len(doc.Packages) > MaxComponents {
		return nil, fmt.Errorf("parse SPDX SBOM: %d packages, more than the %d allowed: %w", len(doc.Packages), MaxComponents, ErrTooLarge)
	}
	s := &SBOM{Format: "spdx", Components: make([]Component, 0, len(doc.Packages))}
	for _, p := range doc.Packages {
		c := Component{
			Name:    p.Name,
			Version: p.VersionInfo,
			Type:    strings.ToLower(p.PrimaryPackagePurpose),
		}
		for _, r := range p.ExternalRefs {
			// SPDX 2.2 spells the category with an underscore, 2.3 with a hyphen.
			cat := strings.ReplaceAll(r.ReferenceCategory, "_", "-")
			if cat == "PACKAGE-MANAGER" && r.ReferenceType == "purl" {
				c.PURL = r.ReferenceLocator
				break
			}
		}
		for _, l := range []string{p.LicenseDeclared, p.LicenseConcluded} {
			if spdxLicenseKnown(l) && !slices.Contains(c.Licenses, l) {
				c.Licenses = append(c.Licenses, l)
			}
		}
		s.Components = append(s.Components, c)
	}
	return s, nil
}

func spdxLicenseKnown(l string) bool {
	return l != "" && l != "NOASSERTION" && l != "NONE"
}

type cdxBOM struct {
	BOMFormat       string              `json:"bomFormat"`
	SpecVersion     string              `json:"specVersion"`
	Components      []cdxComponent      `json:"components"`
	Vulnerabilities *[]cdxVulnerability `json:"vulnerabilities"` // nil: no vulnerabilities section
}

type cdxComponent struct {
	BOMRef     string         `json:"bom-ref"`
	Type       string         `json:"type"`
	Name       string         `json:"name"`
	Version    string         `json:"version"`
	PURL       string         `json:"purl"`
	Licenses   []cdxLicense   `json:"licenses"`
	Components []cdxComponent `json:"components"`
}

type cdxLicense struct {
	License *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"license"`
	Expression string `json:"expression"`
}

type cdxVulnerability struct {
	ID      string `json:"id"`
	Ratings []struct {
		Score    *float64 `json:"score"`
		Severity string   `json:"severity"`
	} `json:"ratings"`
	Affects []struct {
		Ref string `json:"ref"`
	} `json:"affects"`
}

func decodeCycloneDX(data []byte) (*cdxBOM, error) {
	var bom cdxBOM
	if err := json.Unmarshal(data, &bom); err != nil {
		return nil, fmt.Errorf("parse CycloneDX: %w", jsonError(data, err))
	}
	if bom.BOMFormat != "CycloneDX" {
		return nil, fmt.Errorf("parse CycloneDX: bomFormat is %q, not CycloneDX", bom.BOMFormat)
	}
	switch bom.SpecVersion {
	case "1.4", "1.5", "1.6", "1.7":
	default:
		return nil, fmt.Errorf("parse CycloneDX: specVersion %q is not supported (want 1.4 or later JSON)", bom.SpecVersion)
	}
	n, err := countComponents(bom.Components, 0)
	if err != nil {
		return nil, err
	}
	if n > MaxComponents {
		return nil, fmt.Errorf("parse CycloneDX: %d components, more than the %d allowed: %w", n, MaxComponents, ErrTooLarge)
	}
	if bom.Vulnerabilities != nil && len(*bom.Vulnerabilities) > MaxVulnerabilities {
		return nil, fmt.Errorf("parse CycloneDX: %d vulnerabilities, more than the %d allowed: %w", len(*bom.Vulnerabilities), MaxVulnerabilities, ErrTooLarge)
	}
	return &bom, nil
}

func countComponents(cs []cdxComponent, depth int) (int, error) {
	if depth > maxNesting {
		return 0, fmt.Errorf("parse CycloneDX: components nested more than %d deep: %w", maxNesting, ErrTooLarge)
	}
	n := len(cs)
	for _, c := range cs {
		m, err := countComponents(c.Components, depth+1)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

// flatten lists every component, nested ones after their parent. The BOM's
// metadata.component (the image itself) is not a component of the image.
func (bom *cdxBOM) flatten() []Component {
	out := []Component{}
	var walk func([]cdxComponent)
	walk = func(cs []cdxComponent) {
		for _, c := range cs {
			out = append(out, c.component())
			walk(c.Components)
		}
	}
	walk(bom.Components)
	return out
}

func (c *cdxComponent) component() Component {
	comp := Component{Name: c.Name, Version: c.Version, PURL: c.PURL, Type: strings.ToLower(c.Type)}
	for _, l := range c.Licenses {
		var s string
		switch {
		case l.Expression != "":
			s = l.Expression
		case l.License != nil && l.License.ID != "":
			s = l.License.ID
		case l.License != nil:
			s = l.License.Name
		}
		if s != "" && !slices.Contains(comp.Licenses, s) {
			comp.Licenses = append(comp.Licenses, s)
		}
	}
	return comp
}
