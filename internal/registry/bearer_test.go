package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
)

// tokenRegistry is go-containerregistry's registry behind Docker's token
// authentication, as Docker Hub and distribution with `auth: token` do: a
// request without a valid bearer token gets 401 and a WWW-Authenticate
// Bearer challenge naming the token service (a real HTTP server on
// 127.0.0.1) and the scope it needs; the token service hands out tokens for
// the scopes asked, pull to anyone for repositories under public/, pull and
// push on everything to berth:secret.
type tokenRegistry struct {
	host string

	mu          sync.Mutex
	tokens      map[string]string // token -> the scope it grants
	tokenAsks   []string          // scopes asked of the token service
	blobRanges  []string          // Range headers of authorised blob GETs
	droppedOnce map[string]bool   // blob paths whose first GET was cut
}

func newTokenRegistry(t *testing.T) *tokenRegistry {
	t.Helper()
	tr := &tokenRegistry{tokens: map[string]string{}, droppedOnce: map[string]bool{}}
	tokenSrv := httptest.NewServer(http.HandlerFunc(tr.serveToken))
	t.Cleanup(tokenSrv.Close)
	tr.host = serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tr.serveRegistry(w, r, h, tokenSrv.URL)
		})
	})
	return tr
}

func (tr *tokenRegistry) serveToken(w http.ResponseWriter, r *http.Request) {
	user, pass, hasLogin := r.BasicAuth()
	if hasLogin && (user != "berth" || pass != "secret") {
		http.Error(w, "bad credentials", http.StatusUnauthorized)
		return
	}
	var granted []string
	for _, scope := range r.URL.Query()["scope"] {
		tr.mu.Lock()
		tr.tokenAsks = append(tr.tokenAsks, scope)
		tr.mu.Unlock()
		// scope is repository:NAME:ACTIONS
		parts := strings.Split(scope, ":")
		if len(parts) != 3 {
			continue
		}
		if hasLogin || (strings.HasPrefix(parts[1], "public/") && parts[2] == "pull") {
			granted = append(granted, scope)
		}
	}
	tok := fmt.Sprintf("tok-%d", time.Now().UnixNano())
	tr.mu.Lock()
	tr.tokens[tok] = strings.Join(granted, " ")
	tr.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
}

// needed is the scope a distribution API request needs, or "" for /v2/.
func needed(r *http.Request) (repo, action string) {
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	for _, sep := range []string{"/manifests/", "/blobs/", "/referrers/", "/tags/"} {
		if i := strings.Index(p, sep); i >= 0 {
			repo = p[:i]
			break
		}
	}
	action = "pull"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		action = "push"
	}
	return repo, action
}

func (tr *tokenRegistry) serveRegistry(w http.ResponseWriter, r *http.Request, next http.Handler, realm string) {
	repo, action := needed(r)
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tr.mu.Lock()
	grant, known := tr.tokens[tok]
	tr.mu.Unlock()
	ok := known && repo == ""
	for _, g := range strings.Fields(grant) {
		parts := strings.Split(g, ":")
		if parts[1] == repo && strings.Contains(parts[2], action) {
			ok = true
		}
	}
	if !ok {
		scope := ""
		if repo != "" {
			scope = fmt.Sprintf(`,scope="repository:%s:%s"`, repo, map[string]string{"pull": "pull", "push": "pull,push"}[action])
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="berth-test"%s`, realm, scope))
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
		tr.mu.Lock()
		tr.blobRanges = append(tr.blobRanges, r.Header.Get("Range"))
		first := !tr.droppedOnce[r.URL.Path]
		tr.droppedOnce[r.URL.Path] = true
		tr.mu.Unlock()
		if first {
			// Cut the first download of each blob after a few bytes: the
			// resumption must be authorised too.
			w = &cutAfter{ResponseWriter: w, left: 1000}
		}
	}
	next.ServeHTTP(w, r)
}

// cutAfter passes left bytes of the body, then closes the connection.
type cutAfter struct {
	http.ResponseWriter
	left int
}

func (c *cutAfter) Write(p []byte) (int, error) {
	if len(p) <= c.left {
		c.left -= len(p)
		return c.ResponseWriter.Write(p)
	}
	n, _ := c.ResponseWriter.Write(p[:c.left])
	c.left = 0
	c.ResponseWriter.(http.Flusher).Flush()
	if conn, _, err := c.ResponseWriter.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
	return n, http.ErrHijacked
}

// TestBearerTokenAuth: a registry answering 401 with a Bearer challenge is
// asked again with a token from its token service: anonymously for a
// public repository, with the login for a private one and for pushes; a
// blob download cut mid-way resumes with a Range request that is
// authorised as well; without a login the private repository says how to
// log in, and a wrong password is refused by the token service.
func TestBearerTokenAuth(t *testing.T) {
	tr := newTokenRegistry(t)
	ctx := context.Background()
	store, err := credentials.NewStore(filepath.Join(t.TempDir(), "auth.json"), credentials.StoreOptions{AllowPlaintextPut: true})
	if err != nil {
		t.Fatal(err)
	}
	anon := New(Options{Backoff: time.Millisecond})
	if err := anon.Login(ctx, store, tr.host, auth.Credential{Username: "berth", Password: "wrong"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("login with a wrong password: %v", err)
	}
	if err := anon.Login(ctx, store, tr.host, auth.Credential{Username: "berth", Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Credentials: store, Backoff: time.Millisecond})

	blob := bytes.Repeat([]byte("berth layer bytes "), 1<<14)
	blobDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	for _, repo := range []string{"private/app", "public/app"} {
		r, err := c.Repository(parse(t, tr.host+"/"+repo+":1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.PushBlob(ctx, blobDesc, bytes.NewReader(blob)); err != nil {
			t.Fatalf("push to %s with a token: %v", repo, err)
		}
		pushManifest(t, c, tr.host+"/"+repo+":1", "", nil)
	}

	fetch := func(c *Client, repo string) ([]byte, error) {
		r, _, err := c.Resolve(ctx, parse(t, tr.host+"/"+repo+":1"))
		if err != nil {
			return nil, err
		}
		rc := r.FetchBlob(ctx, blobDesc)
		defer rc.Close()
		return io.ReadAll(rc)
	}
	if got, err := fetch(c, "private/app"); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("private blob with a login: %d bytes, %v", len(got), err)
	}
	fresh := New(Options{Backoff: time.Millisecond}) // no credentials, no cached tokens
	if got, err := fetch(fresh, "public/app"); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("public blob anonymously: %d bytes, %v", len(got), err)
	}
	if _, err = fetch(fresh, "private/app"); err == nil || !strings.Contains(err.Error(), "berth login "+tr.host) {
		t.Fatalf("private repository without a login: %v", err)
	}

	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, want := range []string{"repository:private/app:pull,push", "repository:private/app:pull", "repository:public/app:pull"} {
		found := false
		for _, s := range tr.tokenAsks {
			found = found || s == want
		}
		if !found {
			t.Errorf("token service never asked for %q (asked: %q)", want, tr.tokenAsks)
		}
	}
	resumed := 0
	for _, r := range tr.blobRanges {
		if strings.HasPrefix(r, "bytes=1000-") {
			resumed++
		}
	}
	if resumed != 2 {
		t.Errorf("authorised blob GETs with Range %q: want two resumptions from byte 1000", tr.blobRanges)
	}
}
