package admission

import (
	"context"
	"os"
	"testing"
)

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/examples.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("rules:\n  - name: a\n    matchConditions: image.tag == 'x'\n    expression: 'true'\n"))
	f.Add([]byte("rules:\n  - {name: a, expression: '!vulnerabilities.exists(v, v.severity == \"critical\")', messageExpression: 'string(size(vulnerabilities))'}\n"))
	f.Add([]byte("rules:\n  - name: b\n    expression: |\n      versionInRange(image.tag, '>=1 <2')\n"))
	f.Add([]byte("x: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data, "fuzz.yaml")
		if err != nil {
			return
		}
		// Whatever compiled evaluates without panicking, within the limits.
		res, err := r.Evaluate(context.Background(), goodFacts())
		if err != nil {
			t.Fatal(err)
		}
		for _, rr := range res.Rules {
			if rr.Err != nil && rr.Allowed {
				t.Fatalf("rule %s errored but allowed", rr.Name)
			}
		}
	})
}

func FuzzParseSBOM(f *testing.F) {
	for _, name := range []string{"sbom-spdx23.json", "sbom-cdx14.json", "sbom-cdx15-vulns.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"components":[{}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSBOM(data)
		if err == nil && (s == nil || (s.Format != "spdx" && s.Format != "cyclonedx") || len(s.Components) > MaxComponents) {
			t.Fatalf("accepted %+v", s)
		}
	})
}

func FuzzParseVulnerabilities(f *testing.F) {
	for _, name := range []string{"vuln-trivy.json", "vuln-grype.json", "vuln-sarif.json", "sbom-cdx15-vulns.json"} {
		f.Add("", readTestdata(f, name))
	}
	f.Add(PredicateCosignVuln, []byte(`{"scanners":[{"result":{"matches":[]}}]}`))
	f.Add(PredicateCycloneDX, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.4","vulnerabilities":[{"id":"x","affects":[{"ref":"pkg:a/b@1"}]}]}`))
	f.Fuzz(func(t *testing.T, predicate string, data []byte) {
		vs, err := ParseVulnerabilities(predicate, data)
		if err != nil {
			return
		}
		for _, v := range vs {
			if v.ID == "" || severityRank(v.Severity) == 0 || !(v.Score >= 0 && v.Score <= 10) {
				t.Fatalf("accepted %+v", v)
			}
		}
	})
}

// Version comparison is the one ordering rules rely on: it must be
// antisymmetric, and ranges must never panic on what an SBOM says.
func FuzzVersions(f *testing.F) {
	f.Add("3.0.1-r0", "3.0.7", ">=3.0.0 <3.0.7")
	f.Add("1:1.1.1n", "v1.1.1", "<1.1.1t || =2")
	f.Add("1.0.0-alpha.1", "1.0.0-alpha.beta", "!= 1.0")
	f.Fuzz(func(t *testing.T, a, b, r string) {
		ab, errA := compareVersions(a, b)
		ba, errB := compareVersions(b, a)
		if (errA == nil) != (errB == nil) || (errA == nil && ab != -ba) {
			t.Fatalf("compare(%q, %q) = %d, %v but compare(%q, %q) = %d, %v", a, b, ab, errA, b, a, ba, errB)
		}
		_, _ = versionInRange(a, r)
	})
}
