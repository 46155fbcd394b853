// Package image turns references into unpacked images and back: it pulls
// (resolve, platform selection, parallel verified downloads, in-order unpack
// into overlay snapshots keyed by chain ID), pushes, saves and loads image
// archives, imports root file systems, collects garbage, and gives the
// engine a container's defaults from an image config (RuntimeConfig).
//
// Invariants: an image record exists only once everything it needs is in
// the content store and unpacked; what a failed operation wrote is held by a
// lease while it runs and collected when it fails.
package image

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker schema 2 media types, accepted beside OCI's.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// IsIndex reports whether mt is an OCI index or a Docker manifest list.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsManifest reports whether mt is an OCI or Docker schema 2 image manifest.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// isLayer reports whether mt is a layer Berth can unpack.
func isLayer(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // still in the wild
		ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
		MediaTypeDockerLayer, MediaTypeDockerForeignLayer:
		return true
	}
	return false
}

// mediaTypeOf reads the mediaType field of a manifest or index.
func mediaTypeOf(b []byte) string {
	var v struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(b, &v)
	return v.MediaType
}

// DecodeManifest parses and checks an image manifest whose descriptor says
// mediaType. Errors name what is wrong.
func DecodeManifest(mediaType string, b []byte) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("malformed manifest: %w", err)
	}
	if !IsManifest(mediaType) {
		return m, fmt.Errorf("unsupported manifest media type %q", mediaType)
	}
	if m.MediaType != "" && m.MediaType != mediaType {
		return m, fmt.Errorf("malformed manifest: mediaType %q in a manifest served as %q", m.MediaType, mediaType)
	}
	if m.SchemaVersion != 2 {
		return m, fmt.Errorf("malformed manifest: schemaVersion %d, want 2", m.SchemaVersion)
	}
	if err := checkDescriptor("config", m.Config); err != nil {
		return m, err
	}
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, MediaTypeDockerConfig:
	default:
		return m, fmt.Errorf("unsupported config media type %q", m.Config.MediaType)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(fmt.Sprintf("layer %d", i), l); err != nil {
			return m, err
		}
		if !isLayer(l.MediaType) {
			return m, fmt.Errorf("layer %d (%s): unsupported media type %q", i, l.Digest, l.MediaType)
		}
	}
	return m, nil
}

// DecodeIndex parses and checks an image index or manifest list.
func DecodeIndex(mediaType string, b []byte) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("malformed index: %w", err)
	}
	if !IsIndex(mediaType) {
		return idx, fmt.Errorf("unsupported index media type %q", mediaType)
	}
	if idx.SchemaVersion != 2 {
		return idx, fmt.Errorf("malformed index: schemaVersion %d, want 2", idx.SchemaVersion)
	}
	for i, d := range idx.Manifests {
		if err := checkDescriptor(fmt.Sprintf("index entry %d", i), d); err != nil {
			return idx, err
		}
	}
	return idx, nil
}

func checkDescriptor(what string, d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("malformed manifest: %s digest %q: %w", what, d.Digest, err)
	}
	if d.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("malformed manifest: %s digest %q: only sha256 is supported", what, d.Digest)
	}
	if d.Size < 0 {
		return fmt.Errorf("malformed manifest: %s size %d", what, d.Size)
	}
	return nil
}

// ParsePlatform parses "os/arch[/variant]"; empty means this machine's.
func ParsePlatform(s string) (ocispec.Platform, error) {
	if s == "" {
		p := ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
		if p.Architecture == "arm64" {
			p.Variant = "v8"
		}
		return p, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// FormatPlatform prints p as os/arch[/variant].
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// matches reports whether an index entry for have can run as want. An entry
// without a variant matches any wanted variant except where arm64's default
// v8 is implied.
func matches(want, have ocispec.Platform) bool {
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return false
	}
	return want.Variant == "" || have.Variant == "" || want.Variant == have.Variant
}

// SelectManifest picks the manifest for p from idx; the error lists what the
// index offers.
func SelectManifest(idx ocispec.Index, p ocispec.Platform) (ocispec.Descriptor, error) {
	var offered []string
	for _, d := range idx.Manifests {
		if d.Platform == nil || !IsManifest(d.MediaType) {
			continue
		}
		if matches(p, *d.Platform) {
			return d, nil
		}
		offered = append(offered, FormatPlatform(*d.Platform))
	}
	return ocispec.Descriptor{}, fmt.Errorf("no image for platform %s (the index has: %s)", FormatPlatform(p), strings.Join(offered, ", "))
}

// ChainIDs returns the chain ID of each layer: the snapshot key of the file
// system made by that layer and all below it (OCI image-spec, config.md).
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// DecodeConfig parses an image config.
func DecodeConfig(b []byte) (ocispec.Image, error) {
	var img ocispec.Image
	if err := json.Unmarshal(b, &img); err != nil {
		return img, fmt.Errorf("malformed image config: %w", err)
	}
	if img.RootFS.Type != "layers" {
		return img, fmt.Errorf("malformed image config: rootfs type %q, want \"layers\"", img.RootFS.Type)
	}
	for i, d := range img.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return img, fmt.Errorf("malformed image config: diff_ids[%d] %q: %w", i, d, err)
		}
	}
	return img, nil
}

func chainStrings(diffIDs []digest.Digest) []string {
	var out []string
	for _, c := range ChainIDs(diffIDs) {
		out = append(out, c.String())
	}
	return out
}
