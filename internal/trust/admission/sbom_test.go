package admission

import (
	"errors"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseSBOMSPDX(t *testing.T) {
	s, err := ParseSBOM(readTestdata(t, "sbom-spdx23.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := &SBOM{Format: "spdx", Components: []Component{
		{Name: "openssl", Version: "3.0.1-r0", PURL: "pkg:apk/alpine/openssl@3.0.1-r0?arch=x86_64", Type: "library", Licenses: []string{"Apache-2.0"}},
		{Name: "busybox", Version: "1.36.1", PURL: "pkg:apk/alpine/busybox@1.36.1", Licenses: []string{"GPL-2.0-only"}},
		{Name: "musl", Version: "1.2.4", Type: "operating-system", Licenses: []string{"MIT OR BSD-2-Clause", "MIT"}},
	}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}
}

func TestParseSBOMCycloneDX(t *testing.T) {
	s, err := ParseSBOM(readTestdata(t, "sbom-cdx14.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := &SBOM{Format: "cyclonedx", Components: []Component{
		{Name: "openssl", Version: "3.0.1-r0", PURL: "pkg:apk/alpine/openssl@3.0.1-r0", Type: "library", Licenses: []string{"Apache-2.0"}},
		{Name: "app", Version: "1.0.0", Type: "application", Licenses: []string{"MIT OR Apache-2.0"}},
		{Name: "net", Version: "v0.17.0", PURL: "pkg:golang/golang.org/x/net@v0.17.0", Type: "library", Licenses: []string{"BSD 3-Clause (custom)"}},
	}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}
	s, err = ParseSBOM(readTestdata(t, "sbom-cdx15-vulns.json"))
	if err != nil || len(s.Components) != 2 || s.Components[1].Name != "zlib" {
		t.Fatalf("CycloneDX 1.5: %+v, %v", s, err)
	}
}

// testdata/sbom-cyclonedx-gomod.json was written by
// `cyclonedx-gomod mod -json -licenses` (v1.10.0) for a module needing
// github.com/opencontainers/go-digest.
func TestParseSBOMFromCycloneDXGomod(t *testing.T) {
	s, err := ParseSBOM(readTestdata(t, "sbom-cyclonedx-gomod.json"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range s.Components {
		if c.Name == "github.com/opencontainers/go-digest" {
			found = true
			if c.Version != "v1.0.0" || !strings.HasPrefix(c.PURL, "pkg:golang/github.com/opencontainers/go-digest@v1.0.0") || c.Type != "library" {
				t.Errorf("go-digest: %+v", c)
			}
		}
	}
	if !found {
		t.Fatalf("go-digest not among %+v", s.Components)
	}
}

func TestParseSBOMBad(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"empty", "  ", "empty document"},
		{"not JSON", "<xml/>", "invalid character"},
		{"truncated", `{"spdxVersion": "SPDX-2.3", "packages": [`, "unexpected end of JSON input"},
		{"neither", `{"name": "x"}`, "neither SPDX JSON"},
		{"array", `[1]`, "cannot unmarshal array"},
		{"old SPDX", `{"spdxVersion": "SPDX-2.1"}`, `spdxVersion "SPDX-2.1" is not supported`},
		{"SPDX tag-value in JSON", `{"spdxVersion": 2.3}`, "line 1 column"},
		{"packages wrong type", `{"spdxVersion": "SPDX-2.3", "packages": {"name": "x"}}`, "cannot unmarshal object"},
		{"version wrong type", "{\"spdxVersion\": \"SPDX-2.3\",\n \"packages\": [{\"name\": \"x\", \"versionInfo\": 3}]}", "line 2 column"},
		{"not CycloneDX", `{"bomFormat": "SWID"}`, `bomFormat is "SWID"`},
		{"old CycloneDX", `{"bomFormat": "CycloneDX", "specVersion": "1.3"}`, `specVersion "1.3" is not supported`},
		{"components wrong type", `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": "x"}`, "cannot unmarshal string"},
		{"nested too deep", `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [` + strings.Repeat(`{"name":"a","components":[`, 40) + strings.Repeat(`]}`, 40) + `]}`, "nested more than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSBOM([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %+v, %v; want an error containing %q", s, err, tc.want)
			}
		})
	}
}

func TestParseSBOMOversized(t *testing.T) {
	big := make([]byte, MaxDocumentSize+1)
	copy(big, `{"spdxVersion": "SPDX-2.3", "packages": [`)
	_, err := ParseSBOM(big)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("oversized: %v", err)
	}
	// Too many packages within the byte limit.
	many := `{"spdxVersion": "SPDX-2.3", "packages": [` + strings.Repeat(`{},`, MaxComponents) + `{}]}`
	if _, err := ParseSBOM([]byte(many)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too many packages: %v", err)
	}
	if _, err := ParseVulnerabilities("", big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized report: %v", err)
	}
}

// A small document of many empty objects must be refused before decoding
// turns each into a struct; the memory a refused one costs stays small.
func TestParseSBOMManyElements(t *testing.T) {
	many := strings.Repeat(`{},`, maxDecodedElements) + `{}`
	docs := map[string]string{
		"components":         `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [` + many + `]}`,
		"nested":             `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"components": [` + many[:len(many)/2] + `{}]}, {"licenses": [` + many[:len(many)/2] + `{}]}]}`,
		"scalars":            `{"spdxVersion": "SPDX-2.3", "packages": [{"name": "x", "externalRefs": [` + strings.Repeat(`1,`, maxDecodedElements) + `1]}]}`,
		"upper-case key":     `{"spdxVersion": "SPDX-2.3", "PACKAGES": [` + many + `]}`,
		"escaped key":        `{"spdxVersion": "SPDX-2.3", "p\u0061ckages": [` + many + `]}`,
		"unicode-folded key": `{"spdxVersion": "SPDX-2.3", "packageſ": [` + many + `]}`,
		"vulnerability list": `{"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": [` + many + `]}`,
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			data := []byte(doc)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ParseSBOM(data)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "list entries") {
				t.Fatalf("%v", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Fatalf("refusing %d bytes allocated %d bytes", len(doc), n)
			}
		})
	}
	// Braces, commas and keys inside strings do not count; other keys' lists do not either.
	ok := []string{
		`{"spdxVersion": "SPDX-2.3", "name": "` + strings.Repeat(`{,\"packages\":[`, maxDecodedElements) + `", "packages": []}`,
		`{"spdxVersion": "SPDX-2.3", "files": [` + many + `], "packages": []}`,
	}
	for _, doc := range ok {
		if _, err := ParseSBOM([]byte(doc)); err != nil {
			t.Fatalf("%.80s: %v", doc, err)
		}
	}
}
