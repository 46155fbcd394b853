package trust

import (
	"context"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BenchmarkCheckCached is what a start pays when nothing changed: a fresh
// Checker (each berth command is a new process) reads the policy and its
// key, hashes the rules file, finds the cached decision and appends the
// audit line; no request reaches the registry.
func BenchmarkCheckCached(b *testing.B) {
	e := newTestEnv(b, nil)
	key := e.newKey("release")
	app := e.host + "/app"
	img := newTestImage(b, "bench", ocispec.ImageConfig{User: "1000"})
	e.push(img, app+":1")
	e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, app, img.desc.Digest))
	e.pushAttachment(app, attTag(img.desc.Digest), attestation(key, img.desc.Digest, "https://cyclonedx.org/bom", []byte(cycloneDX)))
	e.writePolicy(signedPolicy(app, key.path, "matchRepository"))
	e.writeRules(threeRules)
	det, err := e.pull(app + ":1")
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Reference: det.Name, Digest: det.Digest}
	if _, err := e.checker.Check(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	hits := e.hits
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := New(e.checker.opts).Check(context.Background(), req)
		if err != nil || !d.Cached {
			b.Fatalf("%+v %v", d, err)
		}
	}
	b.StopTimer()
	if e.hits != hits {
		b.Fatalf("%d registry requests from cached checks", e.hits-hits)
	}
}

// BenchmarkCheckUncached is the first verification: signature and
// attestation fetched and verified, the rules compiled and evaluated.
func BenchmarkCheckUncached(b *testing.B) {
	e := newTestEnv(b, nil)
	key := e.newKey("release")
	app := e.host + "/app"
	img := newTestImage(b, "bench", ocispec.ImageConfig{User: "1000"})
	e.push(img, app+":1")
	e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, app, img.desc.Digest))
	e.pushAttachment(app, attTag(img.desc.Digest), attestation(key, img.desc.Digest, "https://cyclonedx.org/bom", []byte(cycloneDX)))
	e.writePolicy(signedPolicy(app, key.path, "matchRepository"))
	e.writeRules(threeRules)
	det, err := e.pull(app + ":1")
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Reference: det.Name, Digest: det.Digest}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := New(e.checker.opts).Explain(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
