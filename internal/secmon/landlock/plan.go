// Package landlock is the contract between the monitor's rule compiler
// (internal/secmon, in the engine) and berth-runtime, which applies it
// with Landlock to the container's processes just before they exec: which
// paths, as the container sees them, may not be executed or written.
//
// It has no dependencies beyond the standard library, so that
// berth-runtime stays lean: the rules and CEL stay on the engine's side;
// the runtime receives only paths, in the OCI annotation Annotation.
//
// A Path denies the file or directory it names (and everything beneath a
// directory); a Prefix path denies every entry whose path starts with it:
// "/etc/" is everything beneath /etc, "/usr/bin/py" every entry of
// /usr/bin whose name starts with "py". Landlock rules attach to files,
// not names: see internal/runtime/landlock_linux.go for what that means
// for symbolic and hard links.
package landlock

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
)

// Annotation carries a container's Plan (JSON) in its OCI config.
const Annotation = "dev.berth.landlock"

// FeatureValue is what berth-runtime's `features` document gives for
// Annotation: the kinds of denial it applies. The engine refuses a
// container with a plan whose runtime does not announce it.
const FeatureValue = "exec,write"

// Limits against a hostile or mistaken annotation.
const (
	maxPaths    = 1024
	maxPathSize = 4096
)

// Plan lists what a container may not execute or write.
type Plan struct {
	Exec  []Path `json:"exec,omitempty"`
	Write []Path `json:"write,omitempty"`
}

// Path is one denied path.
type Path struct {
	Path   string `json:"path"`
	Prefix bool   `json:"prefix,omitempty"`
	// Rule names the rule that asked for it, for error messages.
	Rule string `json:"rule,omitempty"`
}

// Empty says whether the plan denies nothing.
func (p *Plan) Empty() bool { return p == nil || len(p.Exec)+len(p.Write) == 0 }

// Encode is the annotation's value.
func (p *Plan) Encode() (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(p)
	return string(b), err
}

// Parse reads and validates an annotation's value.
func Parse(s string) (*Plan, error) {
	if len(s) > maxPaths*(maxPathSize+256) {
		return nil, fmt.Errorf("annotation %s: %d bytes, too large", Annotation, len(s))
	}
	var p Plan
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("annotation %s: text after the JSON object", Annotation)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks every path: absolute, clean (a prefix may end in "/"),
// no NUL, within the limits.
func (p *Plan) Validate() error {
	if len(p.Exec)+len(p.Write) > maxPaths {
		return fmt.Errorf("annotation %s: %d paths, at most %d", Annotation, len(p.Exec)+len(p.Write), maxPaths)
	}
	for _, list := range [][]Path{p.Exec, p.Write} {
		for _, x := range list {
			if err := checkPath(x); err != nil {
				return fmt.Errorf("annotation %s: %w", Annotation, err)
			}
		}
	}
	return nil
}

func checkPath(x Path) error {
	s := x.Path
	switch {
	case s == "":
		return errors.New("an empty path")
	case len(s) > maxPathSize:
		return fmt.Errorf("path %.40q...: longer than %d bytes", s, maxPathSize)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("path %q has a NUL byte", s)
	case !strings.HasPrefix(s, "/"):
		return fmt.Errorf("path %q is not absolute", s)
	case s == "/":
		return errors.New(`path "/" would deny the whole container`)
	}
	clean := path.Clean(s)
	if clean != s && !(x.Prefix && clean+"/" == s) {
		return fmt.Errorf("path %q is not clean (%q): no //, . or .. components", s, clean)
	}
	if x.Prefix && clean == "/" {
		return errors.New(`prefix "/" would deny the whole container`)
	}
	return nil
}
