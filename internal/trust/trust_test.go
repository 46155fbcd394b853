package trust

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/reference"
)

func signedPolicy(scope, keyPath, identity string) string {
	return `{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"` + scope +
		`": [{"type": "sigstoreSigned", "keyPath": "` + keyPath + `", "signedIdentity": {"type": "` + identity + `"}}]}}}`
}

func (e *testEnv) pull(ref string) (image.Details, error) {
	e.t.Helper()
	r, err := reference.Parse(ref)
	if err != nil {
		e.t.Fatal(err)
	}
	img, err := e.svc.Pull(context.Background(), r, image.PullOptions{})
	if err != nil {
		return image.Details{}, err
	}
	return e.svc.Inspect(context.Background(), img.Name)
}

func refusedWith(t *testing.T, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("error %v, want a refusal", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func TestSignedImage(t *testing.T) {
	e := newTestEnv(t, nil)
	key := e.newKey("release")
	app := e.host + "/app"
	img := newTestImage(t, "signed", ocispec.ImageConfig{User: "1000"})
	e.push(img, app+":1")
	e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, app, img.desc.Digest))
	e.writePolicy(signedPolicy(app, key.path, "matchRepository"))

	det, err := e.pull(app + ":1")
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Reference: det.Name, Digest: det.Digest, Container: "c1"}
	d, err := e.checker.Check(context.Background(), req)
	if err != nil || !d.Allowed || d.Cached || d.Scope != app {
		t.Fatalf("first check: %+v, %v", d, err)
	}
	// Cached: the registry is not asked again.
	before := e.hits
	d, err = e.checker.Check(context.Background(), req)
	if err != nil || !d.Allowed || !d.Cached || e.hits != before {
		t.Fatalf("second check: %+v, %v, %d requests", d, err, e.hits-before)
	}
	// A fresh checker (another berth process) uses the cache on disk.
	fresh := New(e.checker.opts)
	if d, err = fresh.Check(context.Background(), req); err != nil || !d.Cached || e.hits != before {
		t.Fatalf("fresh checker: %+v, %v", d, err)
	}

	// The default identity (matchRepoDigestOrExact) refuses cosign's bare
	// repository identity for a tag, as containers/image does.
	e.writePolicy(signedPolicy(app, key.path, "matchRepoDigestOrExact"))
	d, _ = e.checker.Check(context.Background(), req)
	if d.Allowed || d.Cached {
		t.Fatalf("after the policy changed: %+v", d)
	}
	refusedWith(t, d.Err(), "refused by policy", `signed identity "`+app+`" is not accepted`, "(scope "+app+")")

	// Audit: every decision, one JSON line each.
	f, err := os.Open(AuditPath(e.root))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []Decision
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d Decision
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, d)
	}
	if len(lines) != 5 || lines[0].Stage != "pull" || !lines[0].Allowed || lines[4].Allowed || lines[1].Container != "c1" || lines[4].Requirement == "" {
		t.Errorf("audit log: %+v", lines)
	}
}

func TestRefusedPulls(t *testing.T) {
	e := newTestEnv(t, nil)
	key := e.newKey("release")
	other := e.newKey("other")
	app := e.host + "/app"
	e.writePolicy(signedPolicy(e.host, key.path, "matchRepository"))

	signedImg := newTestImage(t, "signed", ocispec.ImageConfig{})
	e.push(signedImg, app+":signed")
	e.pushAttachment(app, sigTag(signedImg.desc.Digest), signature(key, app, signedImg.desc.Digest))

	cases := []struct {
		name  string
		setup func(img testImage, ref string)
		want  []string
	}{
		{"unsigned", func(testImage, string) {}, []string{"no sigstore signature verifies with " + key.path, "(the image has no signatures)", "(scope " + e.host + ")"}},
		{"another key", func(img testImage, _ string) {
			e.pushAttachment(app, sigTag(img.desc.Digest), signature(other, app, img.desc.Digest))
		}, []string{"no sigstore signature verifies with " + key.path}},
		{"signature of another digest", func(img testImage, _ string) {
			e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, app, signedImg.desc.Digest))
		}, []string{"signature is for manifest " + signedImg.desc.Digest.String()}},
		{"copied from another repository", func(img testImage, _ string) {
			e.push(img, e.host+"/other:1")
			e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, e.host+"/other", img.desc.Digest))
		}, []string{`signed identity "` + e.host + `/other" is not accepted`}},
		{"malformed signature", func(img testImage, _ string) {
			l := signature(key, app, img.desc.Digest)
			l.annotations[sigstoreAnnotation] = "%%%"
			e.pushAttachment(app, sigTag(img.desc.Digest), l)
		}, []string{"not base64"}},
		{"oversized signature", func(img testImage, _ string) {
			l := signature(key, app, img.desc.Digest)
			l.blob = append(l.blob, make([]byte, 70<<10)...)
			e.pushAttachment(app, sigTag(img.desc.Digest), l)
		}, []string{"more than 65536"}},
		{"garbage payload", func(img testImage, _ string) {
			l := signature(key, app, img.desc.Digest)
			l.blob = []byte("{not json")
			e.pushAttachment(app, sigTag(img.desc.Digest), l)
		}, []string{"no sigstore signature verifies"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := newTestImage(t, "attack "+c.name, ocispec.ImageConfig{})
			ref := app + ":" + strings.ReplaceAll(c.name, " ", "-")
			e.push(img, ref)
			c.setup(img, ref)
			_, err := e.pull(ref)
			refusedWith(t, err, append([]string{"image " + ref + " refused by policy"}, c.want...)...)
			e.assertEmptyStore()
			_ = i
		})
	}

	// The tag moves to an unsigned image after a good pull: the pull is
	// refused and the store keeps the signed image.
	if _, err := e.pull(app + ":signed"); err != nil {
		t.Fatal(err)
	}
	unsigned := newTestImage(t, "moved", ocispec.ImageConfig{})
	e.push(unsigned, app+":signed")
	_, err := e.pull(app + ":signed")
	refusedWith(t, err, "has no signatures")
	det, err := e.svc.Inspect(context.Background(), app+":signed")
	if err != nil || det.Digest != signedImg.desc.Digest {
		t.Fatalf("image after the refused pull: %v %v", det.Digest, err)
	}
}

const sigstoreAnnotation = "dev.cosignproject.cosign/signature"

// TestSubstitutedManifest: a registry answering a digest with other bytes
// is caught before anything is stored.
func TestSubstitutedManifest(t *testing.T) {
	var swap func(path string) []byte
	e := newTestEnv(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if swap != nil && r.Method == http.MethodGet {
				if b := swap(r.URL.Path); b != nil {
					w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
					w.Write(b)
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	key := e.newKey("release")
	app := e.host + "/app"
	e.writePolicy(signedPolicy(app, key.path, "matchRepository"))
	good := newTestImage(t, "good", ocispec.ImageConfig{})
	evil := newTestImage(t, "evil", ocispec.ImageConfig{})
	e.push(good, app+":1")
	e.push(evil, app+":evil")
	e.pushAttachment(app, sigTag(good.desc.Digest), signature(key, app, good.desc.Digest))
	swap = func(path string) []byte {
		if strings.HasSuffix(path, "/manifests/"+good.desc.Digest.String()) {
			return evil.manifest
		}
		return nil
	}
	if _, err := e.pull(app + ":1"); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("pull of a substituted manifest: %v", err)
	}
	e.assertEmptyStore()
}

func TestRejectAndDefaults(t *testing.T) {
	e := newTestEnv(t, nil)
	img := newTestImage(t, "x", ocispec.ImageConfig{})
	e.push(img, e.host+"/app:1")
	// No policy file: everything is accepted.
	if !strings.HasPrefix(e.checker.Describe(), "none") {
		t.Errorf("describe without a policy: %s", e.checker.Describe())
	}
	e.writePolicy(`{"default": [{"type": "reject"}]}`)
	_, err := e.pull(e.host + "/app:1")
	refusedWith(t, err, "the policy rejects every image here", "(scope default)")
	e.assertEmptyStore()
	e.writePolicy(`{"default": [{"type": "reject"}], "transports": {"docker": {"*.0.0.1": [{"type": "insecureAcceptAnything"}]}}}`)
	if _, err := e.pull(e.host + "/app:1"); err != nil {
		t.Fatalf("wildcard scope: %v", err)
	}
	e.writePolicy(`{"default": [}`)
	if _, err := e.pull(e.host + "/app:1"); err == nil || errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), e.policy) {
		t.Fatalf("a broken policy: %v", err)
	}
}

// TestRefusalNotCached: an image refused for want of a signature runs once
// it is signed, with no change to the policy.
func TestRefusalNotCached(t *testing.T) {
	e := newTestEnv(t, nil)
	key := e.newKey("release")
	app := e.host + "/app"
	img := newTestImage(t, "later", ocispec.ImageConfig{})
	e.push(img, app+":1")
	if _, err := e.pull(app + ":1"); err != nil {
		t.Fatal(err)
	}
	e.writePolicy(signedPolicy(app, key.path, "matchRepository"))
	req := Request{Reference: app + ":1", Digest: img.desc.Digest}
	d, err := e.checker.Check(context.Background(), req)
	if err != nil || d.Allowed {
		t.Fatalf("unsigned: %+v %v", d, err)
	}
	e.pushAttachment(app, sigTag(img.desc.Digest), signature(key, app, img.desc.Digest))
	if d, err = e.checker.Check(context.Background(), req); err != nil || !d.Allowed || d.Cached {
		t.Fatalf("after signing: %+v %v", d, err)
	}
}
