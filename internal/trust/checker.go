// Package trust decides whether an image may be pulled and run: the
// signature policy (containers-policy.json, internal/trust/policy) checked
// with sigstore attachments (internal/trust/sigstore), then the admission
// rules (internal/trust/admission) over the image's facts, SBOM and
// vulnerabilities. It is enforced twice: at pull, on the manifest digest
// before any blob is stored (VerifyPull, image.Service's Verify hook), and
// at every create and start (Check), against the policy and rules as they
// are at that moment.
//
// A start must not pay a network round trip when nothing changed: an
// allow is cached on disk (ROOT/trust/cache) under the image reference,
// its digest and the hashes of the policy (key files included) and rules;
// any change of either content misses the cache. A refusal is not cached:
// the image may be signed or attested since. Every decision
// is appended to the audit log ROOT/trust-audit.jsonl and handed to
// OnDecision (the engine's events).
package trust

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/trust/policy"
	"github.com/berth-project/berth/internal/trust/registriesd"
)

// ErrRefused is wrapped by every refusal.
var ErrRefused = errors.New("refused")

// Images is what the Checker needs of the image store.
type Images interface {
	Inspect(ctx context.Context, nameOrID string) (image.Details, error)
}

// Options configure a Checker.
type Options struct {
	// Root holds the audit log and the decision cache.
	Root string
	// PolicyPaths are tried in order; the first that exists is the
	// policy. None existing means every image is accepted.
	PolicyPaths []string
	// AdmissionPath is the rules file; missing means no rules.
	AdmissionPath string
	// RegistriesDirs are containers-registries.d directories; the first
	// that exists is read (at each verification, not on a cached start).
	// Its use-sigstore-attachments is shown in every decision's steps;
	// attachments are read for every sigstoreSigned scope whatever it
	// says (see evaluatePolicy).
	RegistriesDirs []string
	Registry       *registry.Client
	Images         Images
	// OnDecision, if set, is told of every decision (events).
	OnDecision func(Decision)
}

// Request names what is checked.
type Request struct {
	// Reference is the image's name as stored ("127.0.0.1:5000/app:1").
	Reference string
	// Digest is what the name pointed at when pulled (manifest or index).
	Digest    digest.Digest
	Container string
	Pod       string
}

// Decision is a verdict and why.
type Decision struct {
	Time      time.Time     `json:"time"`
	Allowed   bool          `json:"allowed"`
	Stage     string        `json:"stage"` // pull, create, start or verify
	Reference string        `json:"reference"`
	Digest    digest.Digest `json:"digest"`
	Container string        `json:"container,omitempty"`
	Pod       string        `json:"pod,omitempty"`
	Policy    string        `json:"policy"` // the file, or "none"
	Scope     string        `json:"scope,omitempty"`
	// Requirement or Rule names what refused (empty when allowed).
	Requirement string `json:"requirement,omitempty"`
	Rule        string `json:"rule,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Cached      bool   `json:"cached,omitempty"`
	Steps       []Step `json:"steps,omitempty"`
	PolicyHash  string `json:"policyHash"`
	RulesHash   string `json:"rulesHash,omitempty"`
}

// Err is the refusal as an error (nil when allowed).
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	return &RefusedError{Decision: d}
}

// RefusedError is a refusal.
type RefusedError struct{ Decision Decision }

func (e *RefusedError) Error() string {
	d := e.Decision
	if d.Rule != "" {
		return fmt.Sprintf("image %s refused by rule %s: %s", d.Reference, d.Rule, d.Reason)
	}
	scope := d.Scope
	if scope == "" {
		scope = `the docker transport's ""`
	}
	return fmt.Sprintf("image %s refused by policy: %s (scope %s)", d.Reference, d.Reason, scope)
}

func (e *RefusedError) Is(target error) bool {
	return target == ErrRefused || target == errdefs.ErrFailedPrecondition
}

// Checker evaluates images against the policy and rules in force.
type Checker struct {
	opts Options

	mu sync.Mutex // guards the fields below
	// pol is the last policy loaded and what it was loaded from; it is
	// reused while the file's content and its key files are unchanged.
	pol      *policy.Policy
	polStamp string
	rules    ruleSet
	rulStamp string
}

// RegistriesDirs is where registries.d is looked for: dir if given (the
// --registries-d flag), else ROOT/registries.d, then
// /etc/containers/registries.d (the first that exists is read).
func RegistriesDirs(root, dir string) []string {
	if dir != "" {
		return []string{dir}
	}
	return []string{filepath.Join(root, "registries.d"), "/etc/containers/registries.d"}
}

// New returns a Checker.
func New(o Options) *Checker { return &Checker{opts: o} }

// Policy returns the policy in force (reloaded if a file changed).
func (c *Checker) Policy() (*policy.Policy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadPolicy()
}

func (c *Checker) loadPolicy() (*policy.Policy, error) {
	for _, p := range c.opts.PolicyPaths {
		stamp, err := fileStamp(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("policy %s: %w", p, err)
		}
		if c.pol != nil && c.pol.Source == p && stamp == c.polStamp && c.keysUnchanged() {
			return c.pol, nil
		}
		pol, err := policy.Load(p)
		if err != nil {
			return nil, err
		}
		c.pol, c.polStamp = pol, stamp
		return pol, nil
	}
	c.pol, c.polStamp = policy.AcceptAll(), ""
	return c.pol, nil
}

// keysUnchanged: the policy file's stamp covers its own content; the key
// files it names are checked by their stamps too (a rotated key).
func (c *Checker) keysUnchanged() bool {
	return c.pol.FilesStamp() == c.pol.CurrentFilesStamp()
}

// fileStamp identifies a file's content cheaply: a hash of its bytes
// (policy and rules files are small; a size and mtime could miss an edit
// within one timestamp tick).
func fileStamp(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// VerifyPull is image.Service's Verify hook: ref resolved to desc is
// checked against the policy (signatures only: the rules need the image's
// configuration, checked at create and start).
func (c *Checker) VerifyPull(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor) error {
	pol, err := c.Policy()
	if err != nil {
		return err
	}
	d := Decision{Stage: "pull", Reference: ref.String(), Digest: desc.Digest}
	if ref.Digest != "" && ref.Tag != "" {
		d.Reference = ref.Name() + ":" + ref.Tag
	}
	c.fill(&d, pol, "")
	rd, err := registriesd.Load(c.opts.RegistriesDirs...)
	if err != nil {
		return err
	}
	res := evaluatePolicy(ctx, c.opts.Registry, pol, rd, ref, desc, false, false)
	c.applyPolicy(&d, res)
	c.record(d)
	return d.Err()
}

func (c *Checker) fill(d *Decision, pol *policy.Policy, rulesHash string) {
	d.Time = time.Now().UTC()
	d.Policy = pol.Source
	if pol.AcceptAll {
		d.Policy = "none"
	}
	d.PolicyHash, d.RulesHash = pol.Hash(), rulesHash
}

func (c *Checker) applyPolicy(d *Decision, res policyResult) {
	d.Scope, d.Allowed, d.Steps = res.Scope, res.Allowed, res.Steps
	if !res.Allowed {
		for _, s := range res.Steps {
			if s.Kind == "requirement" && !s.Allowed {
				d.Requirement, d.Reason = s.Name, s.Message
				break
			}
		}
	}
}

// Check decides whether the image may run now: the policy and rules are
// re-read if their files changed, and a decision cached for the same
// image, digest, policy and rules is reused without a network round trip.
func (c *Checker) Check(ctx context.Context, req Request) (Decision, error) {
	return c.check(ctx, req, "start", true)
}

// Explain is Check without the cache: every requirement and rule, for
// `berth image verify`.
func (c *Checker) Explain(ctx context.Context, req Request) (Decision, error) {
	return c.check(ctx, req, "verify", false)
}

func (c *Checker) check(ctx context.Context, req Request, stage string, useCache bool) (Decision, error) {
	c.mu.Lock()
	pol, err := c.loadPolicy()
	var rulesHash string
	if err == nil {
		rulesHash, err = c.rulesStamp()
	}
	c.mu.Unlock()
	if err != nil {
		return Decision{}, err
	}
	ref, err := reference.Parse(req.Reference)
	if err != nil {
		return Decision{}, fmt.Errorf("image %q: %w", req.Reference, err)
	}
	if req.Digest == "" {
		return Decision{}, fmt.Errorf("image %s: no digest to verify", req.Reference)
	}
	d := Decision{Stage: stage, Reference: req.Reference, Digest: req.Digest, Container: req.Container, Pod: req.Pod}
	c.fill(&d, pol, rulesHash)
	key := cacheKey(ref.Name(), req.Digest, d.PolicyHash, d.RulesHash)
	if useCache {
		if cached, ok := c.cached(key); ok {
			d.Allowed, d.Scope, d.Requirement, d.Rule, d.Reason = cached.Allowed, cached.Scope, cached.Requirement, cached.Rule, cached.Reason
			d.Cached = true
			c.record(d)
			return d, nil
		}
	}
	c.mu.Lock()
	rules, err := c.loadRules(rulesHash)
	c.mu.Unlock()
	if err != nil {
		return Decision{}, err
	}
	// The signature was made over what the name pointed at when pulled
	// (an index, for a multi-platform image): verify that digest, by
	// itself, in the image's repository.
	pinned := ref
	pinned.Digest = req.Digest
	rd, err := registriesd.Load(c.opts.RegistriesDirs...)
	if err != nil {
		return Decision{}, err
	}
	res := evaluatePolicy(ctx, c.opts.Registry, pol, rd, pinned, ocispec.Descriptor{Digest: req.Digest}, rules != nil, stage == "verify")
	c.applyPolicy(&d, res)
	if d.Allowed && rules != nil {
		if err := c.evaluateRules(ctx, &d, rules, req, res); err != nil {
			return Decision{}, err
		}
	}
	// Only an allow is cached: a refusal may end without any file
	// changing (the image gets signed, its SBOM attested), so it is
	// verified again at the next start.
	if useCache && d.Allowed && !res.Transient {
		c.store(key, d)
	}
	c.record(d)
	return d, nil
}

// CheckImage is the engine's hook: the stored image name is checked for
// the container (and pod) about to be created or started.
func (c *Checker) CheckImage(ctx context.Context, imageName, stage, container, pod string) error {
	det, err := c.opts.Images.Inspect(ctx, imageName)
	if err != nil {
		return fmt.Errorf("verify image %s: %w", imageName, err)
	}
	d, err := c.check(ctx, Request{Reference: det.Name, Digest: det.Digest, Container: container, Pod: pod}, stage, true)
	if err != nil {
		return fmt.Errorf("verify image %s: %w", imageName, err)
	}
	return d.Err()
}

func cacheKey(name string, d digest.Digest, policyHash, rulesHash string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{name, d.String(), policyHash, rulesHash}, "\x00")))
	return hex.EncodeToString(sum[:])
}

func (c *Checker) cacheDir() string { return filepath.Join(c.opts.Root, "trust", "cache") }

func (c *Checker) cached(key string) (Decision, bool) {
	b, err := os.ReadFile(filepath.Join(c.cacheDir(), key))
	if err != nil {
		return Decision{}, false
	}
	var d Decision
	if json.Unmarshal(b, &d) != nil {
		return Decision{}, false
	}
	return d, true
}

// store writes the decision atomically; a failure only costs the next
// start a verification.
func (c *Checker) store(key string, d Decision) {
	if err := os.MkdirAll(c.cacheDir(), 0o700); err != nil {
		return
	}
	d.Steps = nil
	b, err := json.Marshal(d)
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(c.cacheDir(), ".tmp-")
	if err != nil {
		return
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil && cerr == nil {
		err = os.Rename(tmp.Name(), filepath.Join(c.cacheDir(), key))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}

// AuditPath is the audit log of a root.
func AuditPath(root string) string { return filepath.Join(root, "trust-audit.jsonl") }

// record appends d to the audit log (one JSON line, under an flock so
// lines of concurrent berth processes never interleave) and tells OnDecision.
func (c *Checker) record(d Decision) {
	if c.opts.OnDecision != nil {
		c.opts.OnDecision(d)
	}
	if c.opts.Root == "" {
		return
	}
	if d.Stage == "verify" {
		return // an explanation decides nothing
	}
	line := d
	line.Steps = nil
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	f, err := os.OpenFile(AuditPath(c.opts.Root), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX) == nil {
		f.Write(append(b, '\n'))
	}
}

// DescribeRegistriesD says which registries.d is read, for `berth system
// info`.
func (c *Checker) DescribeRegistriesD() string {
	rd, err := registriesd.Load(c.opts.RegistriesDirs...)
	switch {
	case err != nil:
		return "error: " + err.Error()
	case rd.Dir == "":
		return "none (looked for " + strings.Join(c.opts.RegistriesDirs, ", ") + ")"
	}
	n := len(rd.Docker)
	if rd.Default != nil {
		n++
	}
	return fmt.Sprintf("%s (%d scopes)", rd.Dir, n)
}

// Describe says which policy is in force, for `berth system info`.
func (c *Checker) Describe() string {
	pol, err := c.Policy()
	if err != nil {
		return "error: " + err.Error()
	}
	if pol.AcceptAll {
		return "none (every image is accepted; looked for " + strings.Join(c.opts.PolicyPaths, ", ") + ")"
	}
	return pol.Source
}
