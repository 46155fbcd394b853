package admission

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkExamples measures a decision by the five example rules over an
// SBOM of 2,000 components and 500 vulnerabilities, about a large image.
func BenchmarkExamples(b *testing.B) {
	rules, err := Load("testdata/examples.yaml")
	if err != nil {
		b.Fatal(err)
	}
	f := goodFacts()
	for i := range 2000 {
		f.SBOM.Components = append(f.SBOM.Components, Component{Name: fmt.Sprintf("pkg%d", i), Version: fmt.Sprintf("1.%d.0", i)})
	}
	for i := range 500 {
		f.Vulnerabilities = append(f.Vulnerabilities, Vulnerability{ID: fmt.Sprintf("CVE-2024-%d", i), Severity: "medium", Component: "pkg1", Version: "1.1.0"})
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := rules.Evaluate(context.Background(), f)
		if err != nil || !res.Allowed {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkParse measures compiling testdata/examples.yaml, paid once per
// change of the rules file.
func BenchmarkParse(b *testing.B) {
	data := readTestdata(b, "examples.yaml")
	for b.Loop() {
		if _, err := Parse(data, "examples.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}
