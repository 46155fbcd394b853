package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/reference"
)

// short-name-mode values (containers-registries.conf(5)).
const (
	ShortNameEnforcing  = "enforcing"
	ShortNamePermissive = "permissive"
	ShortNameDisabled   = "disabled"
)

// Alias is an [aliases] entry: a short name stands for Target (a
// repository without tag or digest).
type Alias struct {
	Target string
	// Source is the file that set it.
	Source string
}

// Resolution is where a name may be pulled from, in order.
type Resolution struct {
	// Name is what the user wrote.
	Name       string
	Candidates []reference.Reference
	// Rationale says why these candidates ("" for a qualified name or
	// Docker Hub's normalisation).
	Rationale string
}

// IsShortName reports whether s names no registry ("busybox", "app/x:1"),
// as containers/image decides: the first of several components is a
// registry if it has a dot or a port or is localhost.
func IsShortName(s string) bool {
	name, _, _ := strings.Cut(s, "@")
	first, _, multi := strings.Cut(name, "/")
	if !multi {
		return true
	}
	return !(first == "localhost" || strings.ContainsAny(first, ".:[") || strings.ToLower(first) != first)
}

// splitShort separates a short name from its ":tag" and "@digest".
func splitShort(s string) (name, suffix string) {
	name, digest, hasDigest := strings.Cut(s, "@")
	if hasDigest {
		suffix = "@" + digest
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 && i > strings.LastIndexByte(name, '/') {
		suffix = name[i:] + suffix
		name = name[:i]
	}
	return name, suffix
}

// ResolveName turns what a user wrote into the references to pull, in
// order, as containers-registries.conf(5) says:
//
//   - a fully qualified name is itself;
//   - without unqualified-search-registries in the configuration, a short
//     name is Docker Hub's, as Docker has it (Berth's behaviour before
//     registries.conf, kept so a host's stock files change nothing);
//   - otherwise an [aliases] entry for the name (its tag or digest
//     stripped, then appended to the alias) is the one candidate;
//   - otherwise each search registry in order. With more than one and
//     short-name-mode enforcing there is no terminal to ask which (Berth
//     never prompts), so the name is refused, as Podman refuses it
//     without a TTY; permissive (the default) and disabled try them all.
func (c Config) ResolveName(s string) (Resolution, error) {
	res := Resolution{Name: s}
	if !IsShortName(s) || c.UnqualifiedSearchSource == "" {
		ref, err := reference.Parse(s)
		if err != nil {
			return Resolution{}, err
		}
		res.Candidates = []reference.Reference{ref}
		return res, nil
	}
	// Check the whole name first: the error names what the user wrote.
	if _, err := reference.Parse(s); err != nil {
		return Resolution{}, err
	}
	name, suffix := splitShort(s)
	if a, ok := c.Aliases[name]; ok {
		ref, err := reference.Parse(a.Target + suffix)
		if err != nil {
			return Resolution{}, fmt.Errorf("short name %q: alias %q (%s): %w", s, a.Target, a.Source, err)
		}
		res.Candidates = []reference.Reference{ref}
		res.Rationale = fmt.Sprintf("alias %s = %s in %s", name, a.Target, a.Source)
		return res, nil
	}
	search := c.UnqualifiedSearch
	if len(search) == 0 {
		return Resolution{}, fmt.Errorf("short name %q has no alias and %s sets no unqualified-search-registries; use a fully qualified name: %w",
			s, c.UnqualifiedSearchSource, errdefs.ErrInvalidArgument)
	}
	if len(search) > 1 && c.ShortNameMode == ShortNameEnforcing {
		return Resolution{}, fmt.Errorf("short name %q is ambiguous: short-name-mode is enforcing, it has no alias, and the unqualified-search-registries of %s are %s; "+
			"Berth cannot ask which, so use a fully qualified name (such as %s/%s) or add an alias: %w",
			s, c.UnqualifiedSearchSource, strings.Join(search, ", "), search[0], s, errdefs.ErrInvalidArgument)
	}
	for _, r := range search {
		ref, err := reference.Parse(r + "/" + name + suffix)
		if err != nil {
			return Resolution{}, fmt.Errorf("short name %q on search registry %s: %w", s, r, err)
		}
		res.Candidates = append(res.Candidates, ref)
	}
	res.Rationale = "unqualified-search-registries of " + c.UnqualifiedSearchSource
	return res, nil
}

// PullFirst pulls the first candidate whose registry has it and returns
// that candidate: each is looked up with c (a manifest request) in order;
// one that is not there (errdefs.ErrNotFound) moves on to the next, any
// other failure (unreachable, refused) stops there, and so does anything
// that goes wrong in pull once a registry has the name (a missing blob, a
// trust refusal): a registry later in the list must not serve a name
// because an earlier one, perhaps the intended one, failed. The error
// names every registry tried.
func (r Resolution) PullFirst(ctx context.Context, c *Client, pull func(context.Context, reference.Reference) error) (reference.Reference, error) {
	if len(r.Candidates) == 1 {
		return r.Candidates[0], pull(ctx, r.Candidates[0])
	}
	var errs []error
	var tried []string
	for _, cand := range r.Candidates {
		tried = append(tried, cand.Domain)
		_, _, err := c.Resolve(ctx, cand)
		if err == nil {
			if err := pull(ctx, cand); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", cand, err))
				break
			}
			return cand, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", cand, err))
		if !errors.Is(err, errdefs.ErrNotFound) || ctx.Err() != nil {
			break
		}
	}
	return reference.Reference{}, fmt.Errorf("pull %s (%s; tried %s): %w", r.Name, r.Rationale, strings.Join(tried, ", "), errors.Join(errs...))
}

// checkSearchRegistry accepts host[:port].
func checkSearchRegistry(r string) error {
	if err := checkLocation(r); err != nil {
		return err
	}
	if strings.Contains(r, "/") {
		return fmt.Errorf("%q: a search registry is host[:port], without a path", r)
	}
	if _, err := reference.Parse(r + "/x"); err != nil {
		return fmt.Errorf("%q is not host[:port]", r)
	}
	return nil
}

// checkAlias accepts a short name without tag or digest standing for a
// fully qualified repository without tag or digest ("" erases the alias).
func checkAlias(name, target string) error {
	if !IsShortName(name) {
		return errors.New("an alias is a short name, without a registry")
	}
	if n, suffix := splitShort(name); suffix != "" || n != name {
		return errors.New("an alias has no tag or digest")
	}
	if _, err := reference.Parse(name); err != nil {
		return err
	}
	if target == "" {
		return nil
	}
	if IsShortName(target) {
		return fmt.Errorf("target %q is not fully qualified", target)
	}
	if _, suffix := splitShort(target); suffix != "" {
		return fmt.Errorf("target %q has a tag or digest", target)
	}
	if _, err := reference.Parse(target); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	return nil
}
