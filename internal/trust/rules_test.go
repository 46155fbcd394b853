package trust

import (
	"context"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const cycloneDX = `{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
 "components": [{"bom-ref": "pkg:generic/openssl@3.0.1", "type": "library", "name": "openssl", "version": "3.0.1", "purl": "pkg:generic/openssl@3.0.1"}],
 "vulnerabilities": [{"id": "CVE-2024-1234", "ratings": [{"severity": "critical", "score": 9.8}], "affects": [{"ref": "pkg:generic/openssl@3.0.1"}]}]}`

const threeRules = `rules:
  - name: non-root
    expression: image.user != "" && image.user != "root" && image.user != "0"
    message: the image runs as root
  - name: require-sbom
    expression: sbom != null
    message: no SBOM attested
  - name: no-critical-vulns
    expression: '!vulnerabilities.exists(v, v.severity == "critical")'
    messageExpression: 'vulnerabilities.filter(v, v.severity == "critical").map(v, v.id + " (critical) in " + v.component + " " + v.version).join(", ")'
`

func TestAttestationsAndRules(t *testing.T) {
	e := newTestEnv(t, nil)
	key := e.newKey("release")
	other := e.newKey("other")
	app := e.host + "/app"
	e.writePolicy(signedPolicy(app, key.path, "matchRepository"))
	e.writeRules(threeRules)
	ctx := context.Background()

	check := func(img testImage, tag string) Decision {
		t.Helper()
		det, err := e.pull(app + ":" + tag)
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.checker.Check(ctx, Request{Reference: det.Name, Digest: det.Digest})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	newSigned := func(tag, body string, cfg ocispec.ImageConfig, atts ...attachmentLayer) testImage {
		img := newTestImage(t, body, cfg)
		e.push(img, app+":"+tag)
		e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, app, img.desc.Digest))
		if len(atts) > 0 {
			e.pushAttachment(app, attTag(img.desc.Digest), atts...)
		}
		return img
	}

	// Signed, non-root, no SBOM.
	img := newSigned("nosbom", "a", ocispec.ImageConfig{User: "1000"})
	d := check(img, "nosbom")
	refusedWith(t, d.Err(), "refused by rule require-sbom: no SBOM attested")

	// An SBOM with a critical vulnerability.
	img = newTestImage(t, "b", ocispec.ImageConfig{User: "1000"})
	e.push(img, app+":vuln")
	e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, app, img.desc.Digest))
	e.pushAttachment(app, attTag(img.desc.Digest), attestation(key, img.desc.Digest, "https://cyclonedx.org/bom", []byte(cycloneDX)))
	d = check(img, "vuln")
	refusedWith(t, d.Err(), "image "+app+":vuln refused by rule no-critical-vulns: CVE-2024-1234 (critical) in openssl 3.0.1")

	// The same SBOM without vulnerabilities passes every rule.
	clean := strings.Replace(cycloneDX, `"vulnerabilities"`, `"x-none"`, 1)
	clean = strings.Replace(clean, `"x-none": [{"id": "CVE-2024-1234", "ratings": [{"severity": "critical", "score": 9.8}], "affects": [{"ref": "pkg:generic/openssl@3.0.1"}]}]`, `"vulnerabilities": []`, 1)
	img = newTestImage(t, "c", ocispec.ImageConfig{User: "1000"})
	e.push(img, app+":clean")
	e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, app, img.desc.Digest))
	e.pushAttachment(app, attTag(img.desc.Digest), attestation(key, img.desc.Digest, "https://cyclonedx.org/bom", []byte(clean)))
	if d = check(img, "clean"); !d.Allowed {
		t.Fatalf("clean image refused: %v %+v", d.Err(), d.Steps)
	}

	// Attestations that do not count: signed by another key, tampered
	// after signing, about another image. The SBOM rule then refuses.
	for _, c := range []struct {
		tag string
		att func(img testImage) attachmentLayer
	}{
		{"otherkey", func(img testImage) attachmentLayer {
			return attestation(other, img.desc.Digest, "https://cyclonedx.org/bom", []byte(clean))
		}},
		{"tampered", func(img testImage) attachmentLayer {
			l := attestation(key, img.desc.Digest, "https://cyclonedx.org/bom", []byte(clean))
			l.blob = []byte(strings.Replace(string(l.blob), `"payload":"`, `"payload":"ey`, 1))
			return l
		}},
		{"otherimage", func(testImage) attachmentLayer {
			return attestation(key, img.desc.Digest, "https://cyclonedx.org/bom", []byte(clean))
		}},
	} {
		other := newTestImage(t, "d "+c.tag, ocispec.ImageConfig{User: "1000"})
		e.push(other, app+":"+c.tag)
		e.pushAttachment(app, sigTag(other.desc.Digest), signature(key, app, other.desc.Digest))
		e.pushAttachment(app, attTag(other.desc.Digest), c.att(other))
		d := check(other, c.tag)
		refusedWith(t, d.Err(), "refused by rule require-sbom")
		ignored := false
		for _, s := range d.Steps {
			ignored = ignored || (s.Kind == "attestation" && strings.HasPrefix(s.Message, "ignored:"))
		}
		if !ignored {
			t.Errorf("%s: no ignored attestation in %+v", c.tag, d.Steps)
		}
	}

	// An oversized attestation is not read: no SBOM, refused, not cached.
	img = newTestImage(t, "big", ocispec.ImageConfig{User: "1000"})
	e.push(img, app+":bigsbom")
	e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, app, img.desc.Digest))
	big := strings.Replace(clean, `"components": [`, `"components": [`+strings.Repeat(`{"type": "library", "name": "padding", "version": "1"},`, 300000), 1)
	e.pushAttachment(app, attTag(img.desc.Digest), attestation(key, img.desc.Digest, "https://cyclonedx.org/bom", []byte(big)))
	d = check(img, "bigsbom")
	refusedWith(t, d.Err(), "refused by rule require-sbom")
	if d2, _ := e.checker.Check(ctx, Request{Reference: app + ":bigsbom", Digest: img.desc.Digest}); d2.Cached {
		t.Error("a decision made without an unreadable attestation was cached")
	}

	// A verified but malformed SBOM refuses rather than reading as none.
	img = newTestImage(t, "e", ocispec.ImageConfig{User: "1000"})
	e.push(img, app+":badsbom")
	e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, app, img.desc.Digest))
	e.pushAttachment(app, attTag(img.desc.Digest), attestation(key, img.desc.Digest, "https://cyclonedx.org/bom", []byte(`{"bomFormat": "CycloneDX", "components": 7}`)))
	refusedWith(t, check(img, "badsbom").Err(), "refused by rule attestations: attested SBOM")

	// A rule file that does not compile is an error at check time, not a
	// silent allow; fixing it takes effect on the next check.
	e.writeRules("rules:\n  - name: broken\n    expression: image.nosuchfield == 1\n")
	det, _ := e.svc.Inspect(ctx, app+":clean")
	if _, err := e.checker.Check(ctx, Request{Reference: det.Name, Digest: det.Digest}); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("broken rules: %v", err)
	}
	e.writeRules("rules:\n  - name: errors\n    expression: image.labels['missing'] == 'x'\n")
	d, err := e.checker.Check(ctx, Request{Reference: det.Name, Digest: det.Digest})
	if err != nil {
		t.Fatal(err)
	}
	refusedWith(t, d.Err(), "refused by rule errors: evaluation failed")
}
