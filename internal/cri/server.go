// Package cri is Berth's CRI server: RuntimeService and ImageService of
// k8s.io/cri-api v1, served by berthd for kubelet.
//
// One file per RPC group, so a reader finds an RPC by its name:
// version_status.go (Version, Status, RuntimeConfig, UpdateRuntimeConfig),
// image.go (the ImageService), sandbox.go, container.go, execsync.go,
// stream.go (Exec, Attach and PortForward, which hand out URLs of the
// streaming server in streaming.go) and stats.go. Every RPC is written
// out explicitly, including those not yet implemented, which answer codes.Unimplemented naming the RPC: nothing is
// embedded that would answer for an RPC silently.
//
// Errors are internal/errdefs sentinels inside Berth; they become gRPC
// codes here and nowhere else (see grpcError).
package cri

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/reference"
)

// Options configure a Server.
type Options struct {
	// Images is the image store; the server does not close it.
	Images *image.Service
	// Root is the store's root directory (the one Images was opened on);
	// ImageFsInfo reports the usage of Root/snapshots.
	Root string
	// CNIPluginDirs are searched for the plugins pod networks need.
	CNIPluginDirs []string
	// Version is berthd's version, reported by Version.
	Version string
	// Logger receives the server's logs (slog.Default() when nil).
	Logger *slog.Logger
	// Engine runs the pods and containers (opened on namespace "k8s.io");
	// without it the RuntimeService answers only Version and Status.
	Engine *engine.Engine
	// CNIConfDirs hold operators' CNI configurations: the first conflist
	// found (by file name) is the pod network, as containerd and CRI-O
	// choose, unless PodNetwork names one.
	CNIConfDirs []string
	// PodNetwork names the network pods join; "" chooses as above, and
	// with no conflist at all Berth's own bridge network berth-pods.
	PodNetwork string
	// PodSubnet is berth-pods' subnet until kubelet's UpdateRuntimeConfig
	// gives the node's pod CIDR (default 10.85.0.0/16).
	PodSubnet string
	// Runtimes names the runtime handlers (RuntimeClass handlers) the
	// engine has, for Status; "" is the default handler.
	Runtimes []string
	// PinnedImages are images kubelet must never remove (berthd's
	// --sandbox-image): ImageStatus reports them pinned and RemoveImage
	// refuses them.
	PinnedImages []string
	// SandboxModes maps runtime handlers to their sandbox mode
	// (SandboxModePinned, the default, or SandboxModeInfra for runsc and
	// kata: infra.go); "" is the default handler.
	SandboxModes map[string]string
	// PauseBinary is the static berth-monitor whose --pause runs in infra
	// containers; SandboxImage, if set, is run there instead.
	PauseBinary  string
	SandboxImage string
	// SeccompEmptyUnconfined runs a container whose config names no
	// seccomp profile unconfined, as the CRI's text and containerd do;
	// false (the default) gives it the runtime default, as CRI-O's
	// seccomp_use_default_when_empty. kubelet always names the profile
	// (Unconfined unless the pod or its SeccompDefault says otherwise),
	// so this decides only for other CRI clients.
	SeccompEmptyUnconfined bool
}

// Server implements runtimeapi.RuntimeServiceServer and
// runtimeapi.ImageServiceServer. Its methods are safe for concurrent use.
type Server struct {
	// The Unsafe interfaces carry only the generated marker method; unlike
	// the Unimplemented structs they answer no RPC.
	runtimeapi.UnsafeRuntimeServiceServer
	runtimeapi.UnsafeImageServiceServer

	images      *image.Service
	engine      *engine.Engine
	streaming   atomic.Pointer[streamServer] // set by StartStreaming
	cniConfDirs []string
	podNetwork  string
	runtimes    []string
	pinned      map[string]bool // normalized repo:tag of pinned images

	seccompEmptyUnconfined bool // Options.SeccompEmptyUnconfined

	sandboxModes map[string]string // handler → mode; only infra ones
	sandboxImage string
	pauseBinary  string
	pauseImage   string     // the pause image's name ("" without PauseBinary)
	pauseMu      sync.Mutex // serializes the pause image's making

	// mu guards podSubnet and the choice of the pod network.
	mu        sync.Mutex
	podSubnet string

	// userNS says once whether pod user namespaces work (sandbox.go).
	userNS func() error

	snapshotsDir  string
	cniPluginDirs []string
	version       string
	log           *slog.Logger
}

var (
	_ runtimeapi.RuntimeServiceServer = (*Server)(nil)
	_ runtimeapi.ImageServiceServer   = (*Server)(nil)
)

// New returns a server over the image store in opts.
func New(opts Options) (*Server, error) {
	if opts.Images == nil {
		return nil, errors.New("cri server: no image store")
	}
	if opts.Root == "" {
		return nil, errors.New("cri server: no root directory")
	}
	s := &Server{
		images:        opts.Images,
		engine:        opts.Engine,
		cniConfDirs:   opts.CNIConfDirs,
		podNetwork:    opts.PodNetwork,
		podSubnet:     opts.PodSubnet,
		runtimes:      opts.Runtimes,
		snapshotsDir:  filepath.Join(opts.Root, "snapshots"),
		cniPluginDirs: opts.CNIPluginDirs,
		version:       opts.Version,
		log:           opts.Logger,

		seccompEmptyUnconfined: opts.SeccompEmptyUnconfined,
	}
	s.userNS = sync.OnceValue(s.probeUserNS)
	s.pinned = map[string]bool{}
	for _, p := range opts.PinnedImages {
		ref, err := reference.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("pinned image %q: %w", p, err)
		}
		tag := ref.Tag
		if tag == "" {
			tag = "latest"
		}
		s.pinned[ref.Name()+":"+tag] = true
	}
	s.sandboxModes = map[string]string{}
	for h, m := range opts.SandboxModes {
		mode, err := ParseSandboxMode(m)
		if err != nil {
			return nil, fmt.Errorf("runtime handler %q: %w", h, err)
		}
		if h != "" && !slicesContains(opts.Runtimes, h) {
			return nil, fmt.Errorf("runtime handler %q has a sandbox mode but is not configured (have: %s)", h, strings.Join(opts.Runtimes, ", "))
		}
		if mode == SandboxModeInfra {
			s.sandboxModes[h] = mode
		}
	}
	s.sandboxImage, s.pauseBinary = opts.SandboxImage, opts.PauseBinary
	if len(s.sandboxModes) > 0 && s.sandboxImage == "" {
		if s.pauseBinary == "" {
			return nil, errors.New("cri server: an infra sandbox mode needs the pause binary (berth-monitor) or a sandbox image")
		}
		bin, err := os.ReadFile(s.pauseBinary)
		if err != nil {
			return nil, fmt.Errorf("cri server: read the pause binary: %w", err)
		}
		s.pauseImage = pauseImageName(bin)
		s.pinned[s.pauseImage] = true
	}
	if s.podSubnet == "" {
		s.podSubnet = defaultPodSubnet
	}
	if s.version == "" {
		s.version = "0.1.0-dev"
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// Register registers both services on g.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
}
