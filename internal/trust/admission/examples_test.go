package admission

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

const goodDigest = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// goodFacts passes every rule of testdata/examples.yaml.
func goodFacts() Facts {
	return Facts{
		Image: ImageFacts{
			Reference:  "127.0.0.1:5000/prod/app@" + goodDigest,
			Repository: "127.0.0.1:5000/prod/app",
			Digest:     goodDigest,
			Created:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Labels:     map[string]string{"org.opencontainers.image.source": "https://example.com/app"},
			User:       "1000:1000",
			Entrypoint: []string{"/app"},
			EnvNames:   []string{"PATH"},
		},
		Signatures: []Signature{{Signer: "release.pub", Identity: "127.0.0.1:5000/prod/app"}},
		SBOM: &SBOM{Format: "spdx", Components: []Component{
			{Name: "openssl", Version: "3.0.7", PURL: "pkg:apk/alpine/openssl@3.0.7", Type: "library", Licenses: []string{"Apache-2.0"}},
			{Name: "busybox", Version: "1.36.1", Type: "application"},
		}},
		Vulnerabilities: []Vulnerability{{ID: "CVE-2023-0001", Severity: "low", Score: 2.1, Component: "busybox", Version: "1.36.1"}},
	}
}

func TestExamples(t *testing.T) {
	rules, err := Load("testdata/examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if rules.Len() != 5 {
		t.Fatalf("Len = %d, want 5", rules.Len())
	}
	res, err := rules.Evaluate(context.Background(), goodFacts())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Allowed {
		t.Fatalf("good facts refused: %+v", res.Denied())
	}

	cases := []struct {
		name    string
		rule    string
		change  func(*Facts)
		message string
	}{
		{"root by default", "non-root-user", func(f *Facts) { f.Image.User = "" }, "the image runs as root"},
		{"root by name", "non-root-user", func(f *Facts) { f.Image.User = "root:wheel" }, "the image runs as root"},
		{"root by uid", "non-root-user", func(f *Facts) { f.Image.User = "0" }, "the image runs as root"},
		{"no SBOM", "require-sbom", func(f *Facts) { f.SBOM = nil }, "the image has no SBOM attestation"},
		{"empty SBOM", "require-sbom", func(f *Facts) { f.SBOM.Components = nil }, "the image has no SBOM attestation"},
		{"openssl in range", "no-vulnerable-openssl", func(f *Facts) { f.SBOM.Components[0].Version = "3.0.1" },
			"openssl 3.0.1 is in the refused range >=3.0.0 <3.0.7"},
		{"openssl revision in range", "no-vulnerable-openssl", func(f *Facts) { f.SBOM.Components[0].Version = "3.0.6-r1" },
			"openssl 3.0.6-r1 is in the refused range"},
		{"critical vulnerability", "no-critical-vulns", func(f *Facts) {
			f.Vulnerabilities = append(f.Vulnerabilities, Vulnerability{ID: "CVE-2024-1234", Severity: "critical", Score: 9.8, Component: "openssl", Version: "3.0.1"})
		}, "CVE-2024-1234 (critical) in openssl 3.0.1"},
		{"prod by tag", "prod-digest-pinned", func(f *Facts) {
			f.Image.Reference, f.Image.Tag = "127.0.0.1:5000/prod/app:1", "1"
		}, "images from 127.0.0.1:5000/prod/ must be pulled by digest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := goodFacts()
			tc.change(&f)
			res, err := rules.Evaluate(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			if res.Allowed {
				t.Fatal("allowed, want refused")
			}
			denied := res.Denied()
			if len(denied) != 1 || denied[0].Name != tc.rule {
				t.Fatalf("denied by %+v, want only %s", denied, tc.rule)
			}
			if denied[0].Err != nil || !denied[0].Matched {
				t.Fatalf("rule result %+v: want matched, no error", denied[0])
			}
			if !strings.Contains(denied[0].Message, tc.message) {
				t.Fatalf("message %q, want it to contain %q", denied[0].Message, tc.message)
			}
		})
	}

	// Outside the prod namespace a tag is fine: the rule does not match.
	f := goodFacts()
	f.Image.Reference, f.Image.Repository, f.Image.Tag, f.Image.Digest = "127.0.0.1:5000/dev/app:1", "127.0.0.1:5000/dev/app", "1", ""
	res, err = rules.Evaluate(context.Background(), f)
	if err != nil || !res.Allowed {
		t.Fatalf("dev image by tag: %+v, %v", res, err)
	}
	for _, rr := range res.Rules {
		if rr.Name == "prod-digest-pinned" && rr.Matched {
			t.Fatalf("prod-digest-pinned matched a dev image")
		}
	}
	// Openssl outside the range, and versions around the bounds.
	for _, v := range []string{"1.1.1n", "3.0.7", "3.0.10", "3.1.0"} {
		f := goodFacts()
		f.SBOM.Components[0].Version = v
		if res, _ := rules.Evaluate(context.Background(), f); !res.Allowed {
			t.Errorf("openssl %s refused: %+v", v, res.Denied())
		}
	}
}

// Rules are shared by every start: Evaluate runs concurrently.
func TestEvaluateConcurrently(t *testing.T) {
	rules, err := Load("testdata/examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			f := goodFacts()
			if i%2 == 1 {
				f.Image.User = "root"
			}
			for range 20 {
				res, err := rules.Evaluate(context.Background(), f)
				if err == nil && res.Allowed != (i%2 == 0) {
					err = fmt.Errorf("goroutine %d: allowed %v", i, res.Allowed)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
