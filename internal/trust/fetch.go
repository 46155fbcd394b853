package trust

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/trust/sigstore"
)

// maxAttachmentManifest bounds a .sig/.att manifest or a referrer's.
const maxAttachmentManifest = 1 << 20

// attachment is one signature or attestation layer as fetched.
type attachment struct {
	// Blob is the layer: a simple-signing payload or a DSSE envelope.
	Blob        []byte
	MediaType   string
	Annotations map[string]string
	// From says where it was found, for messages ("tag sha256-….sig").
	From string
}

// attachmentTag is cosign's tag for an image's signatures (suffix "sig")
// or attestations ("att").
func attachmentTag(d digest.Digest, suffix string) string {
	return d.Algorithm().String() + "-" + d.Encoded() + "." + suffix
}

// fetchTagged reads the layers of the manifest tagged after d in ref's
// repository; a missing tag is no attachments.
func fetchTagged(ctx context.Context, rc *registry.Client, ref reference.Reference, d digest.Digest, suffix string, maxBlob int64) ([]attachment, error) {
	tagged, err := ref.WithTag(attachmentTag(d, suffix))
	if err != nil {
		return nil, err
	}
	repo, desc, err := rc.Resolve(ctx, tagged)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return fetchLayers(ctx, repo, desc, "tag "+tagged.Tag, maxBlob)
}

func fetchLayers(ctx context.Context, repo *registry.Repo, desc ocispec.Descriptor, from string, maxBlob int64) ([]attachment, error) {
	if desc.Size > maxAttachmentManifest {
		return nil, fmt.Errorf("%s: manifest of %d bytes is more than %d", from, desc.Size, maxAttachmentManifest)
	}
	b, err := repo.FetchManifest(ctx, desc)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", from, err)
	}
	if len(m.Layers) > sigstore.MaxLayers {
		return nil, fmt.Errorf("%s: %d layers, more than %d", from, len(m.Layers), sigstore.MaxLayers)
	}
	var out []attachment
	for _, l := range m.Layers {
		if l.Size > maxBlob || l.Size < 0 {
			return nil, fmt.Errorf("%s: layer %s of %d bytes is more than %d", from, l.Digest, l.Size, maxBlob)
		}
		if err := l.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("%s: layer digest: %w", from, err)
		}
		blob, err := readBlob(ctx, repo, l)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		out = append(out, attachment{Blob: blob, MediaType: l.MediaType, Annotations: l.Annotations, From: from})
	}
	return out, nil
}

// readBlob reads a small blob whole and checks its digest: FetchBlob
// leaves verification to the caller.
func readBlob(ctx context.Context, repo *registry.Repo, desc ocispec.Descriptor) ([]byte, error) {
	rc := repo.FetchBlob(ctx, desc)
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if int64(len(b)) != desc.Size || desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, fmt.Errorf("blob %s: content does not match its digest", desc.Digest)
	}
	return b, nil
}

// fetchReferrers reads the DSSE layers of the image's referrers (OCI 1.1:
// the referrers API, or its tag fallback) whose artifact type or layers
// are in-toto attestations.
func fetchReferrers(ctx context.Context, rc *registry.Client, ref reference.Reference, subject ocispec.Descriptor) ([]attachment, error) {
	repo, err := rc.Repository(ref)
	if err != nil {
		return nil, err
	}
	refs, err := repo.Referrers(ctx, subject, "")
	if err != nil {
		return nil, err
	}
	var out []attachment
	for i, d := range refs {
		if i >= sigstore.MaxLayers {
			break
		}
		if d.MediaType != ocispec.MediaTypeImageManifest {
			continue
		}
		atts, err := fetchLayers(ctx, repo, d, "referrer "+d.Digest.String(), sigstore.MaxEnvelope)
		if err != nil {
			return nil, err
		}
		for _, a := range atts {
			if a.MediaType == sigstore.MediaTypeDSSE || bytes.HasPrefix(bytes.TrimSpace(a.Blob), []byte(`{"payloadType"`)) {
				out = append(out, a)
			}
		}
	}
	return out, nil
}
