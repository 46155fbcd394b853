package trust

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// findCosign returns cosign from PATH or $HOME/go/bin; absent, the test is
// skipped, except in CI (.ci/run installs it), where it fails.
func findCosign(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "cosign")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("cosign not found on PATH or in $HOME/go/bin: go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5")
	}
	t.Skip("requires cosign: go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5")
	return ""
}

// cosignRun runs cosign offline: no password on the key, its home (and
// TUF cache) in a temporary directory.
func cosignRun(t *testing.T, bin, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=", "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"), "COSIGN_EXPERIMENTAL=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestCosign: images signed and attested by cosign v2 with a key pair,
// offline, verify; a signature by another cosign key does not; a vuln
// report attested by cosign feeds the rules.
func TestCosign(t *testing.T) {
	cosign := findCosign(t)
	e := newTestEnv(t, nil)
	dir := t.TempDir()
	cosignRun(t, cosign, dir, "generate-key-pair")
	cosignRun(t, cosign, dir, "generate-key-pair", "--output-key-prefix", "other")
	app := e.host + "/app"
	ctx := context.Background()

	sign := func(key, ref string) {
		cosignRun(t, cosign, dir, "sign", "--key", key, "--tlog-upload=false", "--allow-insecure-registry", "--yes", ref)
	}
	img := newTestImage(t, "cosign", ocispec.ImageConfig{User: "1000"})
	e.push(img, app+":1")
	byDigest := app + "@" + img.desc.Digest.String()
	sign("cosign.key", byDigest)
	e.writePolicy(signedPolicy(app, filepath.Join(dir, "cosign.pub"), "matchRepository"))
	det, err := e.pull(app + ":1")
	if err != nil {
		t.Fatalf("pull of a cosign-signed image: %v", err)
	}
	d, err := e.checker.Explain(ctx, Request{Reference: det.Name, Digest: det.Digest})
	if err != nil || !d.Allowed {
		t.Fatalf("explain: %+v %v", d, err)
	}

	// Signed by another key.
	img2 := newTestImage(t, "cosign other", ocispec.ImageConfig{User: "1000"})
	e.push(img2, app+":2")
	sign("other.key", app+"@"+img2.desc.Digest.String())
	_, err = e.pull(app + ":2")
	refusedWith(t, err, "no sigstore signature verifies with "+filepath.Join(dir, "cosign.pub"))

	// cosign attest: a CycloneDX SBOM with a critical vulnerability.
	if err := os.WriteFile(filepath.Join(dir, "sbom.json"), []byte(cycloneDX), 0o644); err != nil {
		t.Fatal(err)
	}
	cosignRun(t, cosign, dir, "attest", "--key", "cosign.key", "--type", "cyclonedx", "--predicate", "sbom.json",
		"--tlog-upload=false", "--allow-insecure-registry", "--yes", byDigest)
	e.writeRules(threeRules)
	d, err = e.checker.Check(ctx, Request{Reference: det.Name, Digest: det.Digest})
	if err != nil {
		t.Fatal(err)
	}
	refusedWith(t, d.Err(), "refused by rule no-critical-vulns: CVE-2024-1234 (critical) in openssl 3.0.1")
	// An image signed by the right key but attested by another: the
	// attestation does not count, and the SBOM rule refuses.
	img3 := newTestImage(t, "cosign att other", ocispec.ImageConfig{User: "1000"})
	e.push(img3, app+":3")
	ref3 := app + "@" + img3.desc.Digest.String()
	sign("cosign.key", ref3)
	cosignRun(t, cosign, dir, "attest", "--key", "other.key", "--type", "cyclonedx", "--predicate", "sbom.json",
		"--tlog-upload=false", "--allow-insecure-registry", "--yes", ref3)
	det3, err := e.pull(app + ":3")
	if err != nil {
		t.Fatal(err)
	}
	d, err = e.checker.Check(ctx, Request{Reference: det3.Name, Digest: det3.Digest})
	if err != nil {
		t.Fatal(err)
	}
	refusedWith(t, d.Err(), "refused by rule require-sbom")
}
