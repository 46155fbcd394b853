package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTrustStartRecheck: an image pulled while no policy was in force is
// refused at `berth run` once a policy asks for signatures, with exit 125
// and a message naming the key and scope; `image verify` explains it; the
// audit log and the events record it; a cosign signature (when cosign is
// installed) makes it run again.
func TestTrustStartRecheck(t *testing.T) {
	e := newEngine(t)
	// With neither ROOT/policy.json nor /etc/containers/policy.json (which
	// Podman's package installs), every image is accepted.
	wantPolicy := "Trust Policy: none"
	if fileExists("/etc/containers/policy.json") {
		wantPolicy = "Trust Policy: /etc/containers/policy.json"
	}
	if info := e.ok("info"); !strings.Contains(info, wantPolicy) {
		t.Errorf("info without a policy:\n%s", info)
	}
	e.ok("run", "--rm", "--network", "none", e.image, "true")

	// A repository of the test's own, so signatures do not leak to others.
	repo := e.images.registry + "/" + uniq("trust") + "/app"
	img := repo + ":1"
	e.ok("tag", e.image, img)
	e.ok("push", img)
	e.ok("pull", img)

	keys := t.TempDir()
	pub := filepath.Join(keys, "release.pub")
	cosign := findCosign(t)
	if cosign != "" {
		cmd := exec.Command(cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(keys, "release"))
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
		}
	} else {
		writeTestPublicKey(t, pub)
	}
	policy := `{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"` + repo +
		`": [{"type": "sigstoreSigned", "keyPath": "` + pub + `", "signedIdentity": {"type": "matchRepository"}}]}}}`
	if err := os.WriteFile(filepath.Join(e.root, "policy.json"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Second).Format(time.RFC3339)
	r := e.berth("run", "--rm", "--network", "none", img, "true")
	want := "image " + img + " refused by policy: no sigstore signature verifies with " + pub + " (the image has no signatures) (scope " + repo + ")"
	if r.code != 125 || !strings.Contains(r.stderr, want) {
		t.Fatalf("run under the tightened policy: %s\nwant: %s", r, want)
	}
	if ps := e.ok("ps", "-aq"); ps != "" {
		t.Errorf("a refused run left containers: %s", ps)
	}
	r = e.berth("image", "verify", img)
	if r.code != 1 || !strings.Contains(r.stdout, "sigstoreSigned "+pub) || !strings.Contains(r.stdout, "Decision: refused") {
		t.Errorf("image verify: %s", r)
	}
	if info := e.ok("info"); !strings.Contains(info, "Trust Policy: "+filepath.Join(e.root, "policy.json")) {
		t.Errorf("info with a policy:\n%s", info)
	}
	// Audit log: the refusal, with the digest.
	audit, err := os.ReadFile(filepath.Join(e.root, "trust-audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var refusal map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(audit)), "\n") {
		var d map[string]any
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if d["allowed"] == false {
			refusal = d
		}
	}
	if refusal == nil || refusal["reference"] != img || !strings.HasPrefix(refusal["digest"].(string), "sha256:") || refusal["scope"] != repo {
		t.Errorf("audit log:\n%s", audit)
	}
	events := e.ok("events", "--since", since, "--until", time.Now().Add(time.Second).Format(time.RFC3339), "--filter", "type=image", "--format", "{{.Action}} {{.Actor.ID}}")
	if !strings.Contains(events, "refuse "+img) {
		t.Errorf("events:\n%s", events)
	}

	if cosign == "" {
		return
	}
	sign := exec.Command(cosign, "sign", "--key", filepath.Join(keys, "release.key"), "--tlog-upload=false", "--allow-insecure-registry", "--yes", img)
	sign.Env = append(os.Environ(), "COSIGN_PASSWORD=", "HOME="+keys)
	if out, err := sign.CombinedOutput(); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	e.ok("run", "--rm", "--network", "none", img, "true")
	// The next run's checks are answered from the cache.
	e.ok("run", "--rm", "--network", "none", img, "true")
	audit, err = os.ReadFile(filepath.Join(e.root, "trust-audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(audit)), "\n")
	var last map[string]any
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if last["allowed"] != true || last["cached"] != true || last["stage"] != "start" {
		t.Errorf("last audit line of a run with nothing changed: %s", lines[len(lines)-1])
	}
	if out := e.ok("image", "verify", img); !strings.Contains(out, "Decision: allowed") {
		t.Errorf("image verify after signing:\n%s", out)
	}
}

// findCosign returns cosign from PATH or $HOME/go/bin; "" outside CI when
// it is missing (CI installs it: .ci/run).
func findCosign(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(home, "go", "bin", "cosign"); fileExists(p) {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("cosign not found on PATH or in $HOME/go/bin: go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5")
	}
	t.Log("cosign not installed: the signing half is skipped (go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5)")
	return ""
}

// writeTestPublicKey writes a fresh P-256 public key (nothing is signed with it).
func writeTestPublicKey(t *testing.T, path string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
