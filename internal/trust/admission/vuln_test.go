package admission

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseVulnerabilities(t *testing.T) {
	crit := Vulnerability{ID: "CVE-2024-1234", Severity: "critical", Score: 9.8, Component: "openssl", Version: "3.0.1-r0"}
	cases := []struct {
		file, predicate string
		want            []Vulnerability
	}{
		{"sbom-cdx15-vulns.json", PredicateCycloneDX, []Vulnerability{
			crit,
			{ID: "CVE-2024-1234", Severity: "critical", Score: 9.8, Component: "zlib", Version: "1.2.11"},
			{ID: "GHSA-xxxx-yyyy-zzzz", Severity: "medium", Score: 5.3, Component: "net", Version: "v0.17.0"},
			{ID: "CVE-2023-0002", Severity: "low"},
		}},
		{"vuln-trivy.json", PredicateCosignVuln, []Vulnerability{
			crit,
			{ID: "CVE-2023-5678", Severity: "medium", Score: 5.0, Component: "zlib", Version: "1.2.11-r3"},
		}},
		{"vuln-grype.json", PredicateCosignVuln, []Vulnerability{
			crit,
			{ID: "GHSA-aaaa-bbbb-cccc", Severity: "low", Component: "busybox", Version: "1.36.1"},
		}},
		{"vuln-sarif.json", "cosign.sigstore.dev/attestation/vuln/v1", []Vulnerability{
			crit,
			{ID: "CVE-2023-0003", Severity: "high", Score: 7.5, Component: "zlib", Version: "1.2.11-r3"},
		}},
		// Detected from the content.
		{"vuln-trivy.json", "", nil},
		{"sbom-cdx15-vulns.json", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.file+"/"+tc.predicate, func(t *testing.T) {
			got, err := ParseVulnerabilities(tc.predicate, readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(got) == 0 || got[0] != crit {
					t.Fatalf("detected: %+v", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// The issue's message: "refused by rule no-critical-vulns: CVE-2024-1234
// (critical) in openssl 3.0.1", from a real-shaped report to the rule.
func TestVulnerabilityRuleMessage(t *testing.T) {
	vulns, err := ParseVulnerabilities(PredicateCosignVuln, readTestdata(t, "vuln-trivy.json"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := Load("testdata/examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := goodFacts()
	f.Vulnerabilities = vulns
	res, err := rules.Evaluate(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	d := res.Denied()
	if len(d) != 1 || d[0].Name != "no-critical-vulns" || d[0].Message != "CVE-2024-1234 (critical) in openssl 3.0.1-r0" {
		t.Fatalf("denied %+v", d)
	}
}

func TestParseVulnerabilitiesBad(t *testing.T) {
	cases := []struct {
		name, predicate, doc, want string
	}{
		{"other predicate", "https://slsa.dev/provenance/v1", `{}`, "is not a vulnerability report"},
		{"malformed", PredicateCosignVuln, `{"scanner": `, "unexpected end of JSON input"},
		{"no scanner", PredicateCosignVuln, `{"invocation": {}}`, "no scanner"},
		{"no result", PredicateCosignVuln, `{"scanner": {"uri": "x"}}`, "scanner has no result"},
		{"unknown result", PredicateCosignVuln, `{"scanner": {"result": {"findings": []}}}`, "not a recognised report"},
		{"result not an object", PredicateCosignVuln, `{"scanner": {"result": [1]}}`, "cannot unmarshal array"},
		{"trivy wrong type", PredicateCosignVuln, `{"scanner": {"result": {"Results": [{"Vulnerabilities": "x"}]}}}`, "parse Trivy report"},
		{"trivy no id", PredicateCosignVuln, `{"scanner": {"result": {"Results": [{"Target": "t", "Vulnerabilities": [{"PkgName": "x"}]}]}}}`, "has no VulnerabilityID"},
		{"trivy score out of range", PredicateCosignVuln, `{"scanner": {"result": {"Results": [{"Vulnerabilities": [{"VulnerabilityID": "C", "CVSS": {"nvd": {"V3Score": 99}}}]}]}}}`, "outside 0 to 10"},
		{"grype no id", PredicateCosignVuln, `{"scanner": {"result": {"matches": [{"artifact": {"name": "x"}}]}}}`, "has no vulnerability.id"},
		{"sarif version", PredicateCosignVuln, `{"scanner": {"result": {"version": "1.0", "runs": []}}}`, `version "1.0" is not supported`},
		{"sarif bad score", PredicateCosignVuln, `{"scanner": {"result": {"version": "2.1.0", "runs": [{"tool": {"driver": {"rules": [{"id": "C", "properties": {"security-severity": "high"}}]}}, "results": [{"ruleId": "C"}]}]}}}`, "is not a number"},
		{"cyclonedx no id", PredicateCycloneDX, `{"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": [{"ratings": []}]}`, "has no id"},
		{"cyclonedx score wrong type", PredicateCycloneDX, `{"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": [{"id": "C", "ratings": [{"score": "9"}]}]}`, "cannot unmarshal string"},
		{"cyclonedx SBOM only", PredicateCycloneDX, `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}`, "no vulnerabilities section"},
		{"cyclonedx for SPDX", PredicateCycloneDX, `{"spdxVersion": "SPDX-2.3"}`, `bomFormat is ""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseVulnerabilities(tc.predicate, []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %+v, %v; want an error containing %q", v, err, tc.want)
			}
		})
	}
}

func TestPurlNameVersion(t *testing.T) {
	for in, want := range map[string][2]string{
		"pkg:golang/golang.org/x/net@v0.17.0":          {"net", "v0.17.0"},
		"pkg:apk/alpine/openssl@3.0.1-r0?arch=x86_64":  {"openssl", "3.0.1-r0"},
		"pkg:npm/%40angular/core@16.0.0#sub":           {"core", "16.0.0"},
		"pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?distro": {"libc6", "2.36-9+deb12u1"},
	} {
		name, ver, ok := purlNameVersion(in)
		if !ok || name != want[0] || ver != want[1] {
			t.Errorf("%s: %q %q %v", in, name, ver, ok)
		}
	}
	if _, _, ok := purlNameVersion("openssl-ref"); ok {
		t.Error("openssl-ref read as a purl")
	}
}

func TestCleanReports(t *testing.T) {
	for _, doc := range []string{
		`{"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": []}`,
		`{"scanner": {"result": {"SchemaVersion": 2, "ArtifactName": "x"}}}`,
		`{"scanner": {"result": {"matches": []}}}`,
		`{"scanner": {"result": {"version": "2.1.0", "runs": [{"results": []}]}}}`,
	} {
		v, err := ParseVulnerabilities("", []byte(doc))
		if err != nil || v == nil || len(v) != 0 {
			t.Errorf("%s: %v, %v; want an empty, non-nil list", doc, v, err)
		}
	}
	_, err := ParseVulnerabilities(PredicateCycloneDX, readTestdata(t, "sbom-cdx14.json"))
	if !errors.Is(err, ErrNoVulnerabilities) {
		t.Errorf("SBOM-only BOM: %v", err)
	}
}

func TestPredicateKinds(t *testing.T) {
	for pt, want := range map[string][2]bool{
		PredicateSPDX:                    {true, false},
		PredicateCycloneDX:               {true, true},
		PredicateCycloneDXVEX:            {false, true},
		PredicateCosignVuln:              {false, true},
		"https://cyclonedx.org/bom/v1.5": {true, true},
		"https://slsa.dev/provenance/v1": {false, false},
	} {
		if IsSBOMPredicate(pt) != want[0] || IsVulnerabilityPredicate(pt) != want[1] {
			t.Errorf("%s: sbom %v vuln %v, want %v", pt, IsSBOMPredicate(pt), IsVulnerabilityPredicate(pt), want)
		}
	}
}
