package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	orascontent "oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	orasregistry "oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/reference"
)

// MaxManifestSize bounds a manifest or index fetched from a registry.
const MaxManifestSize = 4 << 20

// Options configure a Client.
type Options struct {
	Config Config
	// Credentials resolve logins; nil means anonymous.
	Credentials credentials.Store
	// Transport carries the HTTP requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// BlobAttempts is how many times a blob download is started or resumed
	// before giving up (default 5).
	BlobAttempts int
	// Backoff is the wait before the first retry of a request or
	// resumption of a blob, doubled each time (default 200ms).
	Backoff time.Duration
}

// Client reaches registries.
type Client struct {
	opts Options
	auth *auth.Client
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.BlobAttempts <= 0 {
		opts.BlobAttempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	if opts.Config.CertsDir != "" {
		base = newCertsTransport(opts.Config.CertsDir, base)
	}
	ac := &auth.Client{
		Client: &http.Client{Transport: &retry.Transport{Base: base, Policy: func() retry.Policy {
			return &retry.GenericPolicy{Retryable: retry.DefaultPredicate, Backoff: retry.DefaultBackoff,
				MinWait: opts.Backoff, MaxWait: 15 * opts.Backoff, MaxRetry: 4}
		}}},
		Cache:  auth.NewCache(),
		Header: http.Header{"User-Agent": {"berth"}},
		// Registries on loopback (tests, local mirrors) may run their own
		// token service there too.
		BlockedRealmPrefixes: []netip.Prefix{},
	}
	if opts.Credentials != nil {
		ac.Credential = credentials.Credential(opts.Credentials)
	}
	return &Client{opts: opts, auth: ac}
}

// ResolveName resolves what a user wrote with the client's configuration
// (see Config.ResolveName).
func (c *Client) ResolveName(s string) (Resolution, error) { return c.opts.Config.ResolveName(s) }

// SearchRegistries are registries.conf's unqualified-search-registries
// and the file that set them (none: short names are Docker Hub's).
func (c *Client) SearchRegistries() (registries []string, source string) {
	return c.opts.Config.UnqualifiedSearch, c.opts.Config.UnqualifiedSearchSource
}

// Repo is one repository on one endpoint (the registry itself or a mirror).
type Repo struct {
	c      *Client
	remote *remote.Repository
	// Endpoint is the host that answered.
	Endpoint string
}

func (c *Client) repo(host, path string) (*Repo, error) {
	r, err := remote.NewRepository(host + "/" + path)
	if err != nil {
		return nil, fmt.Errorf("repository %s/%s: %w", host, path, err)
	}
	r.Client = c.auth
	r.PlainHTTP = c.opts.Config.plainHTTP(host)
	return &Repo{c: c, remote: r, Endpoint: host}, nil
}

// Repository returns ref's repository on its own registry (pushes never go
// to mirrors), at the location registries.conf rewrites it to, if any.
func (c *Client) Repository(ref reference.Reference) (*Repo, error) {
	eps, err := c.opts.Config.endpoints(ref.Name(), ref.Domain, ref.Path, false)
	if err != nil {
		return nil, err
	}
	last := eps[len(eps)-1]
	return c.repo(last.host, last.path)
}

// Resolve finds the descriptor ref names, asking ref's mirrors in order and
// then its registry; the Repo returned is the endpoint that answered.
func (c *Client) Resolve(ctx context.Context, ref reference.Reference) (*Repo, ocispec.Descriptor, error) {
	eps, err := c.opts.Config.endpoints(ref.Name(), ref.Domain, ref.Path, ref.Digest != "")
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	var errs []error
	for _, ep := range eps {
		h := ep.host
		r, err := c.repo(h, ep.path)
		if err != nil {
			return nil, ocispec.Descriptor{}, err
		}
		desc, err := r.remote.Resolve(ctx, ref.Object())
		if err == nil {
			if ref.Digest != "" && desc.Digest != ref.Digest {
				err = fmt.Errorf("answered with digest %s", desc.Digest)
			} else {
				return r, desc, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ocispec.Descriptor{}, ctx.Err()
		}
		if errors.Is(err, errdef.ErrNotFound) {
			err = errdefs.ErrNotFound
		} else {
			err = loginHint(h, err)
		}
		if len(eps) > 1 {
			err = fmt.Errorf("%s: %w", h, err)
		}
		errs = append(errs, err)
	}
	return nil, ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, errors.Join(errs...))
}

// FetchManifest fetches and verifies a manifest or index.
func (r *Repo) FetchManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > MaxManifestSize {
		return nil, fmt.Errorf("manifest %s: %d bytes is more than %d", desc.Digest, desc.Size, MaxManifestSize)
	}
	rc, err := r.remote.Manifests().Fetch(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("fetch manifest %s from %s: %w", desc.Digest, r.Endpoint, err)
	}
	defer rc.Close()
	b, err := orascontent.ReadAll(rc, desc)
	if err != nil {
		return nil, fmt.Errorf("fetch manifest %s from %s: %w", desc.Digest, r.Endpoint, err)
	}
	return b, nil
}

// Referrers lists the manifests whose subject is dgst (signatures, SBOMs…),
// through the referrers API or, on older registries, the tag schema.
func (r *Repo) Referrers(ctx context.Context, subject ocispec.Descriptor, artifactType string) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	err := r.remote.Referrers(ctx, subject, artifactType, func(page []ocispec.Descriptor) error {
		out = append(out, page...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("referrers of %s on %s: %w", subject.Digest, r.Endpoint, err)
	}
	return out, nil
}

// BlobExists reports whether the repository has the blob.
func (r *Repo) BlobExists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return r.remote.Blobs().Exists(ctx, desc)
}

// PushBlob uploads a blob; the registry verifies its digest.
func (r *Repo) PushBlob(ctx context.Context, desc ocispec.Descriptor, rd io.Reader) error {
	if err := r.remote.Blobs().Push(ctx, desc, rd); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return fmt.Errorf("push blob %s to %s: %w", desc.Digest, r.Endpoint, loginHint(r.Endpoint, err))
	}
	return nil
}

// PushManifest uploads a manifest under tag (or only by digest if tag is empty).
func (r *Repo) PushManifest(ctx context.Context, desc ocispec.Descriptor, b []byte, tag string) error {
	var err error
	if tag == "" {
		err = r.remote.Manifests().Push(ctx, desc, bytesReader(b))
	} else {
		err = r.remote.Manifests().PushReference(ctx, desc, bytesReader(b), tag)
	}
	if err != nil {
		return fmt.Errorf("push manifest %s to %s: %w", desc.Digest, r.Endpoint, loginHint(r.Endpoint, err))
	}
	return nil
}

// Login checks cred against host and stores it in store.
func (c *Client) Login(ctx context.Context, store credentials.Store, host string, cred auth.Credential) error {
	reg, err := remote.NewRegistry(host)
	if err != nil {
		return fmt.Errorf("registry %q: %w", host, err)
	}
	reg.PlainHTTP = c.opts.Config.plainHTTP(host)
	reg.Client = c.auth
	if err := credentials.Login(ctx, store, reg, cred); err != nil {
		return fmt.Errorf("login to %s: %w", host, err)
	}
	return nil
}

// blobURL is the distribution API address of a blob.
func (r *Repo) blobURL(dgst digest.Digest) string {
	scheme := "https"
	if r.remote.PlainHTTP {
		scheme = "http"
	}
	ref := r.remote.Reference
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", scheme, ref.Host(), ref.Repository, dgst)
}

func (r *Repo) scoped(ctx context.Context) context.Context {
	return auth.AppendRepositoryScope(ctx, orasregistry.Reference{Registry: r.remote.Reference.Registry, Repository: r.remote.Reference.Repository}, auth.ActionPull)
}

// loginHint says how to fix a request refused for want of credentials:
// none at all for a registry that asks for basic auth, or a bearer token
// (anonymous, or for a user) that does not grant the repository.
func loginHint(host string, err error) error {
	var resp *errcode.ErrorResponse
	switch {
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		return fmt.Errorf("%s asks for a login (berth login %s): %w", host, host, err)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusUnauthorized:
		return refused(host, err)
	}
	return err
}

func refused(host string, err error) error {
	return fmt.Errorf("%s refused access (berth login %s, as a user allowed this repository): %w", host, host, err)
}

// WithCredential returns a client that presents cred to host (a pull with
// kubelet's image pull secret) and the store's credentials elsewhere. It
// has a token cache of its own, so tokens got with cred serve only pulls
// made with it.
func (c *Client) WithCredential(host string, cred auth.Credential) *Client {
	ac := *c.auth
	ac.Cache = auth.NewCache()
	fallback := c.auth.Credential
	ac.Credential = func(ctx context.Context, hostport string) (auth.Credential, error) {
		if hostport == host || (host == "docker.io" && hostport == "registry-1.docker.io") {
			return cred, nil
		}
		if fallback != nil {
			return fallback(ctx, hostport)
		}
		return auth.EmptyCredential, nil
	}
	return &Client{opts: c.opts, auth: &ac}
}
