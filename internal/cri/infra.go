package cri

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
)

// Infra sandboxes. Berth's pods hold their namespaces without a process
// (sandbox.go), which suits runtimes that make one container at a time
// (berth-runtime, runc, crun). Sandboxed runtimes — gVisor's runsc, Kata —
// make the pod's sandbox (a user-space kernel, a VM) when they create its
// first container, which must say it is the sandbox
// (io.kubernetes.cri.container-type=sandbox), and run every later
// container of the pod inside it (container-type=container and
// io.kubernetes.cri.sandbox-id naming the first one), as containerd and
// CRI-O drive them. A handler configured with SandboxModeInfra therefore
// gets, at RunPodSandbox, an infra container under that handler in the
// pod's pinned network namespace: `berth-monitor --pause` from a one-file
// image berthd makes (or the operator's --sandbox-image), which is the
// pod's sandbox until StopPodSandbox stops it, after the pod's
// containers.

// Sandbox modes of a runtime handler.
const (
	// SandboxModePinned (the default): pinned namespaces, no process.
	SandboxModePinned = "pinned"
	// SandboxModeInfra: an infra container under the handler as well.
	SandboxModeInfra = "infra"
)

// CRI-O's names of the same annotations (runsc and kata read either).
const (
	annotationCRIOContainerType = "io.kubernetes.cri-o.ContainerType"
	annotationCRIOSandboxID     = "io.kubernetes.cri-o.SandboxID"
)

// infraLabel marks an infra container (its value is the pod's ID), for
// the lists that see the engine's containers but not kubelet's: metrics.
const infraLabel = "io.berth.cri.infra"

// infraStopTimeout is how long the infra container gets to exit on
// SIGTERM (a pause process exits at once).
const infraStopTimeout = 10 * time.Second

// ParseSandboxMode checks a handler's sandbox mode ("" is pinned).
func ParseSandboxMode(mode string) (string, error) {
	switch mode {
	case "", SandboxModePinned:
		return SandboxModePinned, nil
	case SandboxModeInfra:
		return SandboxModeInfra, nil
	}
	return "", fmt.Errorf("sandbox mode %q: want %s or %s", mode, SandboxModePinned, SandboxModeInfra)
}

// infraMode says whether pods of handler h get an infra container.
func (s *Server) infraMode(h string) bool {
	return s.sandboxModes[h] == SandboxModeInfra
}

// infraName is the engine name of a pod's infra container.
func infraName(sandboxID string) string { return "berth-infra-" + sandboxID }

// pauseImageName is the reference of the image made from the pause binary:
// its tag is the binary's digest, so an upgraded berth-monitor makes a new
// image and pods never run a stale one.
func pauseImageName(bin []byte) string {
	sum := sha256.Sum256(bin)
	return "localhost/berth/pause:" + hex.EncodeToString(sum[:])[:16]
}

// startInfra creates and starts the infra container of a ready pod; on
// error nothing of it is left (the caller removes the pod).
func (s *Server) startInfra(ctx context.Context, sb engine.Sandbox, x sandboxExtra) error {
	img, args, err := s.infraImage(ctx)
	if err != nil {
		return err
	}
	o := engine.CreateOptions{
		Name:      infraName(sb.ID),
		SandboxID: sb.ID,
		Pull:      "missing", // the operator's --sandbox-image
	}
	o.Config.Image = img
	o.Config.Labels = map[string]string{infraLabel: sb.ID}
	if args != nil {
		// Berth's own: never pulled (a registry could answer for it).
		o.Pull = "never"
		o.Config.Entrypoint, o.Config.Cmd = args, []string{}
	}
	o.HostConfig.Runtime = sb.Config.Runtime
	o.HostConfig.Annotations = map[string]string{
		engine.AnnotationContainerType: engine.ContainerTypeSandbox,
		engine.AnnotationSandboxID:     sb.ID,
		annotationCRIOContainerType:    engine.ContainerTypeSandbox,
		annotationCRIOSandboxID:        sb.ID,
	}
	addPodAnnotations(o.HostConfig.Annotations, x)
	ctr, err := s.engine.Create(ctx, o)
	if err != nil {
		return fmt.Errorf("create the infra container (handler %s, image %s): %w", x.RuntimeHandler, img, err)
	}
	if _, err := s.engine.Start(ctx, ctr.ID); err != nil {
		s.engine.Remove(context.WithoutCancel(ctx), ctr.ID, engine.RemoveOptions{Force: true})
		return fmt.Errorf("start the infra container (handler %s): %w", x.RuntimeHandler, err)
	}
	return nil
}

// addPodAnnotations adds containerd's annotations naming the pod.
func addPodAnnotations(a map[string]string, x sandboxExtra) {
	if m := x.Metadata; m != nil {
		a["io.kubernetes.cri.sandbox-name"] = m.Name
		a["io.kubernetes.cri.sandbox-namespace"] = m.Namespace
		a["io.kubernetes.cri.sandbox-uid"] = m.Uid
	}
	if x.LogDirectory != "" {
		a["io.kubernetes.cri.sandbox-log-directory"] = x.LogDirectory
	}
}

// infraImage is the image the infra container runs and, for Berth's own
// pause image, its command: the operator's --sandbox-image as it is, else
// berth-monitor --pause from an image made on first use.
func (s *Server) infraImage(ctx context.Context) (string, []string, error) {
	if s.sandboxImage != "" {
		return s.sandboxImage, nil, nil
	}
	if s.pauseImage == "" {
		return "", nil, status.Error(codes.FailedPrecondition, "an infra sandbox needs berth-monitor (the pause process) or --sandbox-image, and berthd has neither")
	}
	args := []string{"/pause", "--pause", "infra"}
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	bin, err := os.ReadFile(s.pauseBinary)
	if err != nil {
		return "", nil, fmt.Errorf("read the pause binary: %w", err)
	}
	if pauseImageName(bin) != s.pauseImage {
		return "", nil, fmt.Errorf("the pause binary %s changed since berthd started: restart berthd: %w", s.pauseBinary, errdefs.ErrFailedPrecondition)
	}
	layer, err := pauseLayer(bin)
	if err != nil {
		return "", nil, err
	}
	// The name alone proves nothing: an image of that name pulled from a
	// registry on localhost would run in every infra pod's sandbox. Only
	// an image whose one layer is this binary's is used; another is
	// replaced.
	diffID := digest.FromBytes(layer)
	if d, err := s.images.Inspect(ctx, s.pauseImage); err == nil {
		if ids := d.Config.RootFS.DiffIDs; len(ids) == 1 && ids[0] == diffID {
			return s.pauseImage, args, nil
		}
		s.log.Warn("an image named like the pause image is not berthd's: replacing it", "image", s.pauseImage)
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return "", nil, fmt.Errorf("pause image %s: %w", s.pauseImage, err)
	}
	plat, _ := image.ParsePlatform("")
	_, err = s.images.Import(ctx, bytes.NewReader(layer), image.ImportOptions{
		Name: s.pauseImage, Platform: plat,
		Config: ocispec.ImageConfig{Entrypoint: args[:2], Labels: map[string]string{"io.berth.cri": "pause"}},
	})
	if err != nil {
		return "", nil, fmt.Errorf("make the pause image %s: %w", s.pauseImage, err)
	}
	return s.pauseImage, args, nil
}

// pauseLayer is the pause image's root file system: the static pause
// binary and the directories the runtime mounts over.
func pauseLayer(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	for _, d := range []string{"dev/", "etc/", "proc/", "sys/", "tmp/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pause", Mode: 0o755, Size: int64(len(bin)), ModTime: mtime}); err != nil {
		return nil, err
	}
	if _, err := io.Copy(tw, bytes.NewReader(bin)); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// podContainers splits the engine's containers of pod id into its infra
// container (nil for a pinned pod) and the others.
func (s *Server) podContainers(ctx context.Context, id string) (*engine.Container, []engine.Container, error) {
	all, err := s.engine.InspectAll(ctx)
	if err != nil {
		return nil, nil, err
	}
	var infra *engine.Container
	var apps []engine.Container
	for i, c := range all {
		if c.SandboxID != id {
			continue
		}
		if c.HostConfig.Annotations[engine.AnnotationContainerType] == engine.ContainerTypeSandbox {
			infra = &all[i]
			continue
		}
		apps = append(apps, c)
	}
	return infra, apps, nil
}

// infraOf is the ID of the running infra container of pod sb, for its
// containers' io.kubernetes.cri.sandbox-id.
func (s *Server) infraOf(ctx context.Context, sb engine.Sandbox) (string, error) {
	infra, _, err := s.podContainers(ctx, sb.ID)
	if err != nil {
		return "", err
	}
	if infra == nil || !infra.State.Running {
		return "", status.Errorf(codes.FailedPrecondition, "pod sandbox %s: its infra container is not running", sb.ID)
	}
	return infra.ID, nil
}

// joinInfra makes o a container of the pod's infra sandbox.
func joinInfra(o *engine.CreateOptions, infraID string, x sandboxExtra, name, img string) {
	a := map[string]string{
		engine.AnnotationContainerType:     engine.ContainerTypeContainer,
		engine.AnnotationSandboxID:         infraID,
		annotationCRIOContainerType:        engine.ContainerTypeContainer,
		annotationCRIOSandboxID:            infraID,
		"io.kubernetes.cri.container-name": name,
		"io.kubernetes.cri.image-name":     img,
	}
	addPodAnnotations(a, x)
	o.HostConfig.Annotations = a
}

// stopInfraPod stops an infra pod's containers first and its infra
// container last: stopping the sandbox ends every container in it, which
// would lose their exit codes. With remove, it removes them in the same
// order. A pinned pod has nothing to do here.
func (s *Server) stopInfraPod(ctx context.Context, id string, remove bool) error {
	infra, apps, err := s.podContainers(ctx, id)
	if err != nil || infra == nil {
		return err
	}
	var zero time.Duration
	for _, c := range apps {
		if err := s.engine.Stop(ctx, c.ID, &zero); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("container %s: %w", c.ID, err)
		}
	}
	timeout := infraStopTimeout
	if err := s.engine.Stop(ctx, infra.ID, &timeout); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("infra container %s: %w", infra.ID, err)
	}
	if !remove {
		return nil
	}
	for _, c := range append(apps, *infra) {
		if err := s.engine.Remove(ctx, c.ID, engine.RemoveOptions{Force: true, Volumes: true}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("container %s: %w", c.ID, err)
		}
	}
	return nil
}

// stopInfra is stopInfraPod for pod id if it is an infra pod; a pod that
// is gone or pinned is left to the engine.
func (s *Server) stopInfra(ctx context.Context, id string, remove bool) error {
	sb, err := s.engine.InspectSandbox(ctx, id)
	if err != nil {
		return nil // the engine's call answers for an unknown pod
	}
	if x, ok := extraOf(sb); !ok || x.SandboxMode != SandboxModeInfra {
		return nil
	}
	return s.stopInfraPod(ctx, sb.ID, remove)
}

// infraStates caches, for one ListPodSandbox, which pods' infra
// containers run: one read of the engine's containers for all pods.
type infraStates struct {
	running map[string]bool // pod ID → its infra container runs
}

// podState is a pod's CRI state: an infra pod whose infra container has
// exited (its sandbox died: the runtime crashed or was killed) is not
// ready, so kubelet makes it anew instead of creating containers in a
// sandbox that is gone. cache may be nil (one pod).
func (s *Server) podState(ctx context.Context, sb engine.Sandbox, x sandboxExtra, cache *infraStates) runtimeapi.PodSandboxState {
	st := sandboxState(sb)
	if st != runtimeapi.PodSandboxState_SANDBOX_READY || x.SandboxMode != SandboxModeInfra {
		return st
	}
	if cache == nil {
		cache = &infraStates{}
	}
	if cache.running == nil {
		cache.running = map[string]bool{}
		all, err := s.engine.InspectAll(ctx)
		if err != nil {
			return st // unknown: keep the engine's answer
		}
		for _, c := range all {
			if c.HostConfig.Annotations[engine.AnnotationContainerType] == engine.ContainerTypeSandbox && c.State.Running {
				cache.running[c.SandboxID] = true
			}
		}
	}
	if !cache.running[sb.ID] {
		return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	}
	return st
}
