package cri

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
)

// Images are shared by every engine namespace: the CRI sees the same store
// as `berth images`.

// ListImages lists every image once, by ID, with all the names it has.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	sums, err := s.images.List(ctx)
	if err != nil {
		return nil, grpcError(fmt.Errorf("list images: %w", err))
	}
	imgs := s.criImages(sums)
	if f := req.GetFilter().GetImage().GetImage(); f != "" {
		sum, err := s.images.Inspect(ctx, f)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return &runtimeapi.ListImagesResponse{}, nil
			}
			return nil, grpcError(fmt.Errorf("list images: filter %q: %w", f, err))
		}
		var kept []*runtimeapi.Image
		for _, img := range imgs {
			if img.Id == sum.ID.String() {
				kept = append(kept, img)
			}
		}
		imgs = kept
	}
	return &runtimeapi.ListImagesResponse{Images: imgs}, nil
}

// criImages groups the store's names by image ID (the config digest, as
// containerd and CRI-O report it): a tagged name is a repo tag, and every
// name's repository with the digest it was pulled by is a repo digest.
func (s *Server) criImages(sums []image.Summary) []*runtimeapi.Image {
	byID := map[string]*runtimeapi.Image{}
	var order []string
	for _, sum := range sums {
		id := sum.ID.String()
		img, ok := byID[id]
		if !ok {
			img = &runtimeapi.Image{Id: id, Size: uint64(max(sum.Size, 0))}
			byID[id] = img
			order = append(order, id)
		}
		ref, err := reference.Parse(sum.Name)
		if err != nil {
			continue // a stored name always parses; skip rather than fail the list
		}
		if ref.Tag != "" {
			img.RepoTags = appendUnique(img.RepoTags, ref.Name()+":"+ref.Tag)
		}
		if sum.Digest != "" {
			img.RepoDigests = appendUnique(img.RepoDigests, ref.Name()+"@"+sum.Digest.String())
		}
	}
	sort.Strings(order)
	out := make([]*runtimeapi.Image, 0, len(order))
	for _, id := range order {
		img := byID[id]
		sort.Strings(img.RepoTags)
		sort.Strings(img.RepoDigests)
		for _, t := range img.RepoTags {
			if s.pinned[t] {
				img.Pinned = true
			}
		}
		out = append(out, img)
	}
	return out
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// ImageStatus describes one image; a missing image is an empty answer,
// not an error, as the CRI requires (kubelet pulls on it).
func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	name := req.GetImage().GetImage()
	if name == "" {
		return nil, grpcError(fmt.Errorf("image status: image.image is empty: %w", errdefs.ErrInvalidArgument))
	}
	img, err := s.imageByName(ctx, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(fmt.Errorf("image status %q: %w", name, err))
	}
	resp := &runtimeapi.ImageStatusResponse{Image: img}
	if req.Verbose {
		// containerd's shape: "info" holds the image's config and
		// where it is stored, as JSON.
		if d, err := s.images.Inspect(ctx, img.Id); err == nil {
			b, _ := json.Marshal(map[string]any{"imageSpec": d.Config, "manifest": d.Manifest, "snapshot": d.Snapshot, "name": d.Name})
			resp.Info = map[string]string{"info": string(b)}
		}
	}
	return resp, nil
}

// imageByName is the CRI image name resolves to, with every name of its ID.
func (s *Server) imageByName(ctx context.Context, name string) (*runtimeapi.Image, error) {
	sums, err := s.images.List(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.images.Inspect(ctx, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		d, err = s.inspectShortName(ctx, name)
	}
	if errors.Is(err, errdefs.ErrNotFound) {
		d, err = s.inspectRepoDigest(ctx, name, sums)
	}
	if err != nil {
		return nil, err
	}
	for _, img := range s.criImages(sums) {
		if img.Id == d.ID.String() {
			img.Spec = &runtimeapi.ImageSpec{Image: img.Id}
			if u := d.Config.Config.User; u != "" {
				setUser(img, u)
			}
			return img, nil
		}
	}
	// Removed between Inspect and List.
	return nil, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
}

// inspectShortName finds an image kubelet names by a short name
// ("busybox") among the candidates registries.conf's aliases and
// unqualified-search-registries give, in their order, as CRI-O does;
// without those settings a short name is Docker Hub's and Inspect has
// already looked.
func (s *Server) inspectShortName(ctx context.Context, name string) (image.Details, error) {
	res, err := s.images.Registry.ResolveName(name)
	if err != nil || len(res.Candidates) < 1 || !registry.IsShortName(name) {
		return image.Details{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	for _, cand := range res.Candidates {
		if d, err := s.images.Inspect(ctx, image.NameOf(cand)); err == nil {
			return d, nil
		}
	}
	return image.Details{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
}

// inspectRepoDigest finds an image by a repo digest it was reported with
// (repository@digest) though it was pulled by tag: the store keeps the
// tagged name only, kubelet may ask by either.
func (s *Server) inspectRepoDigest(ctx context.Context, name string, sums []image.Summary) (image.Details, error) {
	ref, err := reference.Parse(name)
	if err != nil || ref.Digest == "" {
		return image.Details{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	for _, sum := range sums {
		if r, err := reference.Parse(sum.Name); err == nil && r.Name() == ref.Name() && sum.Digest == ref.Digest {
			return s.images.Inspect(ctx, sum.Name)
		}
	}
	return image.Details{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
}

// setUser fills the image's user the way kubelet checks runAsNonRoot: a
// numeric UID, or a name kubelet cannot verify.
func setUser(img *runtimeapi.Image, user string) {
	u, _, _ := strings.Cut(user, ":")
	var uid int64
	if _, err := fmt.Sscanf(u, "%d", &uid); err == nil && fmt.Sprint(uid) == u {
		img.Uid = &runtimeapi.Int64Value{Value: uid}
		return
	}
	img.Username = u
}

// PullImage pulls an image for this machine's platform and answers with
// its ID.
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	name := req.GetImage().GetImage()
	// A short name goes through registries.conf's aliases and search
	// registries when it has them (CRI-O's behaviour); else it is Docker
	// Hub's, as containerd makes it.
	res, err := s.images.Registry.ResolveName(name)
	if err != nil {
		return nil, grpcError(fmt.Errorf("pull image: image.image %q: %w: %w", name, err, errdefs.ErrInvalidArgument))
	}
	ref := res.Candidates[0]
	opts := image.PullOptions{}
	client := s.images.Registry
	if a := req.GetAuth(); a != nil {
		cred, err := credentialOf(a)
		if err != nil {
			return nil, grpcError(fmt.Errorf("pull image %s: auth: %w", name, err))
		}
		host := ref.Domain
		if a.ServerAddress != "" {
			host = strings.TrimPrefix(strings.TrimPrefix(a.ServerAddress, "https://"), "http://")
			host, _, _ = strings.Cut(host, "/")
		}
		client = s.images.Registry.WithCredential(host, cred)
		opts.Registry = client
	}
	start := time.Now()
	ref, err = res.PullFirst(ctx, client, func(ctx context.Context, cand reference.Reference) error {
		_, err := s.images.Pull(ctx, cand, opts)
		return err
	})
	if err != nil {
		return nil, grpcError(err)
	}
	d, err := s.images.Inspect(ctx, image.NameOf(ref))
	if err != nil {
		return nil, grpcError(fmt.Errorf("pull image %s: %w", ref, err))
	}
	s.log.InfoContext(ctx, "pulled image", "image", ref.String(), "id", d.ID.String(), "duration", time.Since(start))
	return &runtimeapi.PullImageResponse{ImageRef: d.ID.String()}, nil
}

// RemoveImage removes an image with every name it has, as the CRI
// requires; removing a missing image succeeds.
func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	name := req.GetImage().GetImage()
	if name == "" {
		return nil, grpcError(fmt.Errorf("remove image: image.image is empty: %w", errdefs.ErrInvalidArgument))
	}
	img, err := s.imageByName(ctx, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(fmt.Errorf("remove image %q: %w", name, err))
	}
	if img.Pinned {
		return nil, status.Errorf(codes.FailedPrecondition, "remove image %q: the image is pinned (berthd --sandbox-image)", name)
	}
	// Each name is removed on its own: by ID, Remove would take one name
	// only. A name pulled by digest alone is a repo digest, not a tag.
	names := append([]string{}, img.RepoTags...)
	names = append(names, img.RepoDigests...)
	for _, n := range names {
		if _, err := s.images.Remove(ctx, n); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return nil, grpcError(fmt.Errorf("remove image %q: %w", n, err))
		}
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the space and inodes the snapshots directory uses,
// counted by walking it: the store may share its file system with other
// data, so the file system's own figures would overstate it. Hard links
// are counted once; the walk stops when ctx is done.
func (s *Server) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	bytes, inodes, err := diskUsage(ctx, s.snapshotsDir)
	if err != nil {
		return nil, grpcError(fmt.Errorf("image fs info: %w", err))
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: s.snapshotsDir},
		UsedBytes:  &runtimeapi.UInt64Value{Value: bytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
	}}}, nil
}

// diskUsage is the allocated bytes and the inodes under dir, without
// following symbolic links. Files that vanish during the walk (a snapshot
// removed meanwhile) are skipped.
func diskUsage(ctx context.Context, dir string) (bytes, inodes uint64, err error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		k := inode{uint64(st.Dev), st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		inodes++
		bytes += uint64(st.Blocks) * 512
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("disk usage of %s: %w", dir, err)
	}
	return bytes, inodes, nil
}

// StreamImages is ListImages as a stream; not implemented yet.
func (s *Server) StreamImages(req *runtimeapi.StreamImagesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamImagesResponse]) error {
	return notImplemented("StreamImages")
}

// credentialOf reads kubelet's AuthConfig: a username and password, the
// same base64-encoded in auth, or a token.
func credentialOf(a *runtimeapi.AuthConfig) (auth.Credential, error) {
	c := auth.Credential{Username: a.Username, Password: a.Password, RefreshToken: a.IdentityToken, AccessToken: a.RegistryToken}
	if a.Auth != "" && c.Username == "" {
		b, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return auth.Credential{}, fmt.Errorf("auth is not base64: %w", errdefs.ErrInvalidArgument)
		}
		u, p, ok := strings.Cut(string(b), ":")
		if !ok {
			return auth.Credential{}, fmt.Errorf("auth is not USER:PASSWORD in base64: %w", errdefs.ErrInvalidArgument)
		}
		c.Username, c.Password = u, p
	}
	return c, nil
}
