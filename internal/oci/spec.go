// Package oci loads, validates and generates OCI runtime-spec configurations.
//
// Everything the runtime later relies on is checked here, before any process,
// mount or cgroup exists, so that bad input fails with one error that names
// the field at fault and leaves nothing behind.
package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ConfigName is the file name of a bundle's configuration.
const ConfigName = "config.json"

// LoadBundle reads and validates the config.json of the bundle directory.
// The returned spec has its root path made absolute.
func LoadBundle(bundle string) (*specs.Spec, error) {
	f, err := os.Open(filepath.Join(bundle, ConfigName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bundle %s: no %s", bundle, ConfigName)
		}
		return nil, fmt.Errorf("bundle %s: %w", bundle, err)
	}
	defer f.Close()
	spec, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(bundle, ConfigName), err)
	}
	if spec.Root != nil && !filepath.IsAbs(spec.Root.Path) {
		spec.Root.Path = filepath.Join(bundle, spec.Root.Path)
	}
	// The spec: on Linux a mount destination MAY be relative, for old
	// configs, and then MUST be taken from "/" (deprecated). runc does so.
	for i, m := range spec.Mounts {
		if m.Destination != "" && !filepath.IsAbs(m.Destination) {
			spec.Mounts[i].Destination = filepath.Join("/", m.Destination)
		}
	}
	if err := Validate(spec); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(bundle, ConfigName), err)
	}
	return spec, nil
}

// Decode parses a config.json, reporting the line and column of a syntax
// error and the field of a type error.
func Decode(r io.Reader) (*specs.Spec, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, describeJSONError(data, err)
	}
	return &spec, nil
}

func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line, col := position(data, syn.Offset)
		return fmt.Errorf("invalid JSON at line %d column %d: %v", line, col, syn)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		line, col := position(data, typ.Offset)
		return fmt.Errorf("field %q: cannot use JSON %s as %s (line %d column %d)", typ.Field, typ.Value, typ.Type, line, col)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func position(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}
