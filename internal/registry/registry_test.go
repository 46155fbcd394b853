package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/reference"
)

func serve(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func parse(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pushManifest pushes an empty-config manifest (with subject, if given) and returns it.
func pushManifest(t *testing.T, c *Client, ref string, artifactType string, subject *ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	r := parse(t, ref)
	repo, err := c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	empty := ocispec.DescriptorEmptyJSON
	if err := repo.PushBlob(ctx, empty, bytes.NewReader(empty.Data)); err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType, Config: ocispec.Descriptor{MediaType: empty.MediaType, Digest: empty.Digest, Size: empty.Size},
		Layers: []ocispec.Descriptor{}, Subject: subject}
	b, _ := json.Marshal(m)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := repo.PushManifest(ctx, desc, b, r.Tag); err != nil {
		t.Fatal(err)
	}
	return desc
}

func TestReferrers(t *testing.T) {
	host := serve(t, nil)
	c := New(Options{})
	subject := pushManifest(t, c, host+"/app:1", "", nil)
	sig := pushManifest(t, c, host+"/app:sig", "application/vnd.berth.test.signature", &subject)
	repo, got, err := c.Resolve(context.Background(), parse(t, host+"/app:1"))
	if err != nil || got.Digest != subject.Digest {
		t.Fatalf("Resolve = %v, %v", got, err)
	}
	refs, err := repo.Referrers(context.Background(), subject, "")
	if err != nil {
		t.Fatal(err)
	}
	// (go-containerregistry's registry reports the config media type as
	// artifactType, so only the digest is compared.)
	if len(refs) != 1 || refs[0].Digest != sig.Digest {
		t.Fatalf("Referrers = %+v, want the signature %s", refs, sig.Digest)
	}
}

func TestMirrorsAreTriedFirst(t *testing.T) {
	var originHits int
	origin := serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { originHits++; h.ServeHTTP(w, r) })
	})
	mirror := serve(t, nil)
	down := "127.0.0.1:1" // nothing listens: a dead mirror is skipped
	c := New(Options{Config: Config{Registries: map[string]HostConfig{origin: {Mirrors: []string{down, mirror}}}}, Backoff: time.Millisecond})
	want := pushManifest(t, New(Options{}), mirror+"/app:1", "", nil)
	repo, got, err := c.Resolve(context.Background(), parse(t, origin+"/app:1"))
	if err != nil || got.Digest != want.Digest || repo.Endpoint != mirror {
		t.Fatalf("Resolve via mirror = %v from %v, %v", got, repo, err)
	}
	if originHits != 0 {
		t.Errorf("origin asked %d times though the mirror had the image", originHits)
	}
	// Not on the mirror: the origin answers, and the error for a tag
	// nowhere names not found.
	if _, _, err := c.Resolve(context.Background(), parse(t, origin+"/app:2")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Resolve of a missing tag: %v", err)
	}
}

func TestBasicAuthAndLogin(t *testing.T) {
	host := serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "berth" || p != "secret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="berth-test"`)
				http.Error(w, "who are you", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	authFile := filepath.Join(t.TempDir(), "auth.json")
	store, err := credentials.NewStore(authFile, credentials.StoreOptions{AllowPlaintextPut: true})
	if err != nil {
		t.Fatal(err)
	}
	anon := New(Options{Backoff: time.Millisecond})
	if err := anon.Login(ctx, store, host, auth.Credential{Username: "berth", Password: "wrong"}); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if err := anon.Login(ctx, store, host, auth.Credential{Username: "berth", Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(authFile); !strings.Contains(string(b), host) {
		t.Fatalf("auth file lacks %s: %s", host, b)
	}
	c := New(Options{Credentials: store})
	want := pushManifest(t, c, host+"/private:1", "", nil)
	if _, got, err := c.Resolve(ctx, parse(t, host+"/private:1")); err != nil || got.Digest != want.Digest {
		t.Fatalf("authenticated Resolve = %v, %v", got, err)
	}
	// (anon's token cache learnt the login, so ask with a fresh client.)
	if _, _, err := New(Options{Backoff: time.Millisecond}).Resolve(ctx, parse(t, host+"/private:1")); err == nil || !strings.Contains(err.Error(), "credential not found") {
		t.Fatalf("anonymous Resolve: %v", err)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "registries.json")
	os.WriteFile(p, []byte(`{"registries":{"reg.internal:5000":{"insecure":true,"mirrors":["m:1"]}}}`), 0o600)
	c, err := LoadConfig(filepath.Join(dir, "missing.json"), p)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{"reg.internal:5000": true, "localhost:5000": true, "127.0.0.1": true, "[::1]:5000": true, "docker.io": false, "reg.internal": false} {
		if got := c.plainHTTP(host); got != want {
			t.Errorf("plainHTTP(%q) = %v, want %v", host, got, want)
		}
	}
	os.WriteFile(p, []byte(`{"registries":{"x":{"insecur":true}}}`), 0o600)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "insecur") {
		t.Errorf("a misspelt key: %v", err)
	}
}
