package trust

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestRegistriesD: registries.d's section in force is shown in the
// decision; attachments are read for a sigstoreSigned scope even where it
// says use-sigstore-attachments: false, and a permissive scope's verdict
// does not change where it says true. A broken file fails closed, naming
// the file and line.
func TestRegistriesD(t *testing.T) {
	e := newTestEnv(t, nil)
	dir := filepath.Join(e.root, "registries.d")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.checker.opts.RegistriesDirs = []string{dir}
	key := e.newKey("release")
	signed, open := e.host+"/team/signed", e.host+"/open/app"
	img := newTestImage(t, "rd", ocispec.ImageConfig{User: "1000"})
	e.push(img, signed+":1")
	e.push(img, open+":1")
	e.pushAttachment(signed, sigTag(img.desc.Digest), signature(key, signed, img.desc.Digest))
	e.pushAttachment(open, sigTag(img.desc.Digest), signature(key, open, img.desc.Digest))
	e.writePolicy(signedPolicy(signed, key.path, "matchRepository"))
	conf := "docker:\n  " + signed + ":\n    use-sigstore-attachments: false\n  " + open + ":\n    use-sigstore-attachments: true\n"
	if err := os.WriteFile(filepath.Join(dir, "berth.yaml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ref, want string }{
		{signed + ":1", "use-sigstore-attachments: false (scope " + signed + ", " + filepath.Join(dir, "berth.yaml") + ":2); attachments are read anyway"},
		{open + ":1", "use-sigstore-attachments: true (scope " + open + ", " + filepath.Join(dir, "berth.yaml") + ":4); 1 signature attachments found, none verified: the policy needs no signature here"},
	} {
		det, err := e.pull(c.ref)
		if err != nil {
			t.Fatalf("%s: %v", c.ref, err)
		}
		d, err := e.checker.Explain(context.Background(), Request{Reference: det.Name, Digest: det.Digest})
		if err != nil || !d.Allowed {
			t.Fatalf("%s: %+v %v", c.ref, d, err)
		}
		found := false
		for _, s := range d.Steps {
			found = found || (s.Kind == "registries.d" && strings.Contains(s.Message, c.want))
		}
		if !found {
			t.Errorf("%s: steps %+v lack %q", c.ref, d.Steps, c.want)
		}
	}
	// A start does not pay for looking them up: the policy needs none.
	before := e.hits
	if d, err := e.checker.Check(context.Background(), Request{Reference: open + ":1", Digest: img.desc.Digest}); err != nil || !d.Allowed || e.hits != before {
		t.Errorf("check of the open scope: %+v %v, %d requests", d, err, e.hits-before)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("docker:\n  x.io:\n    use-sigstore-attachment: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e.checker.Explain(context.Background(), Request{Reference: signed + ":1", Digest: img.desc.Digest})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "bad.yaml")+":3: docker scope x.io: unknown key \"use-sigstore-attachment\"") {
		t.Errorf("broken registries.d: %v", err)
	}
}
