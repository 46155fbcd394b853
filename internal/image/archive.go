package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/archive"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/metadata"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
)

// annotationImageName is where containerd's and Berth's archives keep an
// image's full name in index.json.
const annotationImageName = "io.containerd.image.name"

// dockerManifestEntry is one image of a docker-archive's manifest.json.
type dockerManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// Save writes the named images to w as one tar that is both an OCI image
// layout (oci-layout, index.json, blobs/) and a docker-archive
// (manifest.json pointing into blobs/), as Docker 25 does, so `docker load`,
// `ctr import`, skopeo and Berth can all read it. With ociOnly the
// manifest.json is left out.
func (s *Service) Save(ctx context.Context, w io.Writer, names []string, ociOnly bool) error {
	tw := tar.NewWriter(w)
	written := map[digest.Digest]bool{}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	var dm []dockerManifestEntry
	for _, n := range names {
		img, err := s.Resolve(ctx, n)
		if err != nil {
			return err
		}
		m, _, err := s.readManifest(ctx, img)
		if err != nil {
			return err
		}
		entry := dockerManifestEntry{Config: blobPath(m.Config.Digest)}
		if ref, err := reference.Parse(img.Name); err == nil && ref.Tag != "" {
			entry.RepoTags = []string{ref.Familiar()}
		}
		for _, d := range append([]ocispec.Descriptor{img.Manifest, m.Config}, m.Layers...) {
			if written[d.Digest] {
				continue
			}
			written[d.Digest] = true
			if err := s.writeBlobToTar(ctx, tw, d); err != nil {
				return err
			}
		}
		for _, l := range m.Layers {
			entry.Layers = append(entry.Layers, blobPath(l.Digest))
		}
		desc := img.Manifest
		desc.Annotations = map[string]string{annotationImageName: img.Name}
		if ref, err := reference.Parse(img.Name); err == nil && ref.Tag != "" {
			desc.Annotations[ocispec.AnnotationRefName] = ref.Tag
		}
		idx.Manifests = append(idx.Manifests, desc)
		dm = append(dm, entry)
	}
	ib, _ := json.Marshal(idx)
	files := []struct {
		name string
		b    []byte
	}{{ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {ocispec.ImageIndexFile, ib}}
	if !ociOnly {
		mb, _ := json.Marshal(dm)
		files = append(files, struct {
			name string
			b    []byte
		}{"manifest.json", mb})
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.b)), ModTime: time.Unix(0, 0)}); err != nil {
			return fmt.Errorf("save: %w", err)
		}
		if _, err := tw.Write(f.b); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	return tw.Close()
}

func blobPath(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }

func (s *Service) writeBlobToTar(ctx context.Context, tw *tar.Writer, d ocispec.Descriptor) error {
	r, err := s.Content.Open(ctx, d.Digest)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := tw.WriteHeader(&tar.Header{Name: blobPath(d.Digest), Mode: 0o644, Size: r.Size(), ModTime: time.Unix(0, 0)}); err != nil {
		return fmt.Errorf("save blob %s: %w", d.Digest, err)
	}
	if _, err := io.Copy(tw, r); err != nil {
		return fmt.Errorf("save blob %s: %w", d.Digest, err)
	}
	return nil
}

// Load reads an OCI image layout tar or a docker-archive tar (old or new
// style), stores and unpacks its images and returns their names. Blobs are
// verified against the digests the archive names them by.
func (s *Service) Load(ctx context.Context, r io.Reader) ([]string, error) {
	var names []string
	err := s.withLease(ctx, "load", func(leaseID string, add func([]digest.Digest, []string) error) error {
		var err error
		names, err = s.load(ctx, leaseID, r, add)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return names, nil
}

func (s *Service) load(ctx context.Context, leaseID string, r io.Reader, add func([]digest.Digest, []string) error) ([]string, error) {
	tr := tar.NewReader(r)
	files := map[string]ocispec.Descriptor{} // path in the archive → stored blob
	small := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		switch name {
		case ocispec.ImageIndexFile, "manifest.json", ocispec.ImageLayoutFile, "repositories":
			b, err := io.ReadAll(io.LimitReader(tr, registry.MaxManifestSize+1))
			if err != nil || len(b) > registry.MaxManifestSize {
				return nil, fmt.Errorf("archive entry %s: too large or unreadable: %v", name, err)
			}
			small[name] = b
			continue
		}
		var desc ocispec.Descriptor
		if d, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			desc = ocispec.Descriptor{Digest: digest.NewDigestFromEncoded(digest.SHA256, d), Size: h.Size}
			if err := desc.Digest.Validate(); err != nil {
				return nil, fmt.Errorf("archive entry %s: %w", name, err)
			}
			if err := add([]digest.Digest{desc.Digest}, nil); err != nil {
				return nil, err
			}
			if err := s.writeBlob(ctx, desc, tr); err != nil {
				return nil, fmt.Errorf("archive entry %s: %w", name, err)
			}
		} else {
			if desc, err = s.Content.Ingest(ctx, tr); err != nil {
				return nil, fmt.Errorf("archive entry %s: %w", name, err)
			}
			if err := add([]digest.Digest{desc.Digest}, nil); err != nil {
				return nil, err
			}
		}
		files[name] = desc
	}
	type loaded struct {
		names    []string
		manifest ocispec.Descriptor
	}
	var imgs []loaded
	if b, ok := small[ocispec.ImageIndexFile]; ok {
		idx, err := DecodeIndex(ocispec.MediaTypeImageIndex, b)
		if err != nil {
			return nil, fmt.Errorf("index.json: %w", err)
		}
		for _, d := range idx.Manifests {
			if !IsManifest(d.MediaType) {
				return nil, fmt.Errorf("index.json: entry %s has media type %q: only image manifests are loaded", d.Digest, d.MediaType)
			}
			var names []string
			if n := d.Annotations[annotationImageName]; n != "" {
				if ref, err := reference.Parse(n); err == nil {
					names = append(names, NameOf(ref))
				}
			}
			imgs = append(imgs, loaded{names: names, manifest: ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}})
		}
	} else if b, ok := small["manifest.json"]; ok {
		var dm []dockerManifestEntry
		if err := json.Unmarshal(b, &dm); err != nil {
			return nil, fmt.Errorf("manifest.json: %w", err)
		}
		for i, e := range dm {
			desc, err := s.dockerArchiveManifest(ctx, files, e)
			if err != nil {
				return nil, fmt.Errorf("manifest.json entry %d: %w", i, err)
			}
			if err := add([]digest.Digest{desc.Digest}, nil); err != nil {
				return nil, err
			}
			var names []string
			for _, t := range e.RepoTags {
				ref, err := reference.Parse(t)
				if err != nil {
					return nil, fmt.Errorf("manifest.json entry %d: %w", i, err)
				}
				names = append(names, NameOf(ref))
			}
			imgs = append(imgs, loaded{names: names, manifest: desc})
		}
	} else {
		return nil, fmt.Errorf("archive has neither index.json nor manifest.json: %w", errdefs.ErrInvalidArgument)
	}
	var out []string
	for _, l := range imgs {
		img := metadata.Image{Target: l.manifest, Manifest: l.manifest}
		m, cfg, err := s.readManifest(ctx, img)
		if err != nil {
			return nil, err
		}
		if err := add(nil, chainStrings(cfg.RootFS.DiffIDs)); err != nil {
			return nil, err
		}
		top, err := s.unpack(ctx, leaseID, m.Layers, cfg.RootFS.DiffIDs, func(i int) layerSource { return storedLayer{s, m.Layers[i]} }, func(ProgressEvent) {})
		if err != nil {
			return nil, err
		}
		img.Snapshot = top
		if len(l.names) == 0 {
			// An unnamed image is kept under its digest, as Docker keeps it under its ID.
			l.names = []string{"berth.local/loaded@" + l.manifest.Digest.String()}
		}
		for _, n := range l.names {
			img.Name = n
			if err := s.DB.PutImage(img); err != nil {
				return nil, err
			}
			out = append(out, n)
		}
	}
	return out, nil
}

func (s *Service) writeBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	w, err := s.Content.Writer(ctx, desc)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return nil
	} else if err != nil {
		return err
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return w.Commit(ctx)
}

// dockerArchiveManifest makes an OCI manifest for one docker-archive image.
func (s *Service) dockerArchiveManifest(ctx context.Context, files map[string]ocispec.Descriptor, e dockerManifestEntry) (ocispec.Descriptor, error) {
	cfg, ok := files[path.Clean(e.Config)]
	if !ok {
		return ocispec.Descriptor{}, fmt.Errorf("config %q is not in the archive", e.Config)
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cfg.Digest, Size: cfg.Size}}
	for _, lp := range e.Layers {
		l, ok := files[path.Clean(lp)]
		if !ok {
			return ocispec.Descriptor{}, fmt.Errorf("layer %q is not in the archive", lp)
		}
		mt, err := s.layerMediaType(ctx, l.Digest)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("layer %q: %w", lp, err)
		}
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mt, Digest: l.Digest, Size: l.Size})
	}
	b, _ := json.Marshal(m)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}
	return desc, s.storeBytes(ctx, desc, b)
}

// layerMediaType tells a gzip, zstd or plain tar layer apart by its magic.
func (s *Service) layerMediaType(ctx context.Context, d digest.Digest) (string, error) {
	r, err := s.Content.Open(ctx, d)
	if err != nil {
		return "", err
	}
	defer r.Close()
	head := make([]byte, 4)
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return ocispec.MediaTypeImageLayerGzip, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return ocispec.MediaTypeImageLayer, nil
}

// ImportOptions describe the image Import makes.
type ImportOptions struct {
	Name     string // reference to store it under
	Platform ocispec.Platform
	Config   ocispec.ImageConfig
}

// Import makes a one-layer image from a root file system tarball (plain,
// gzip or zstd), stores it gzip-compressed and unpacks it.
func (s *Service) Import(ctx context.Context, r io.Reader, opts ImportOptions) (metadata.Image, error) {
	ref, err := reference.Parse(opts.Name)
	if err != nil {
		return metadata.Image{}, err
	}
	if opts.Platform.OS == "" {
		opts.Platform, _ = ParsePlatform("")
	}
	var img metadata.Image
	err = s.withLease(ctx, "import", func(leaseID string, add func([]digest.Digest, []string) error) error {
		tarStream, err := archive.Decompress(r)
		if err != nil {
			return err
		}
		defer tarStream.Close()
		diff := sha256.New()
		pr, pw := io.Pipe()
		go func() {
			zw := gzip.NewWriter(pw)
			_, err := io.Copy(zw, io.TeeReader(tarStream, diff))
			if err == nil {
				err = zw.Close()
			}
			pw.CloseWithError(err)
		}()
		layer, err := s.Content.Ingest(ctx, pr)
		pr.CloseWithError(err)
		if err != nil {
			return fmt.Errorf("import rootfs: %w", err)
		}
		layer.MediaType = ocispec.MediaTypeImageLayerGzip
		if err := add([]digest.Digest{layer.Digest}, nil); err != nil {
			return err
		}
		now := time.Now().UTC()
		cfg := ocispec.Image{Created: &now, Platform: opts.Platform, Config: opts.Config,
			RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.NewDigest(digest.SHA256, diff)}}}
		cb, _ := json.Marshal(cfg)
		cdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
		m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cdesc, Layers: []ocispec.Descriptor{layer}}
		mb, _ := json.Marshal(m)
		mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
		if err := add([]digest.Digest{cdesc.Digest, mdesc.Digest}, nil); err != nil {
			return err
		}
		if err := s.storeBytes(ctx, cdesc, cb); err != nil {
			return err
		}
		if err := s.storeBytes(ctx, mdesc, mb); err != nil {
			return err
		}
		if err := add(nil, chainStrings(cfg.RootFS.DiffIDs)); err != nil {
			return err
		}
		top, err := s.unpack(ctx, leaseID, m.Layers, cfg.RootFS.DiffIDs, func(int) layerSource { return storedLayer{s, layer} }, func(ProgressEvent) {})
		if err != nil {
			return err
		}
		img = metadata.Image{Name: NameOf(ref), Target: mdesc, Manifest: mdesc, Snapshot: top}
		return s.DB.PutImage(img)
	})
	if err != nil {
		return metadata.Image{}, fmt.Errorf("import %s: %w", ref, err)
	}
	return s.DB.GetImage(img.Name)
}
