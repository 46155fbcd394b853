// Command berthd is Berth's CRI daemon: it serves k8s.io/cri-api v1's
// RuntimeService and ImageService on a unix socket for kubelet. It only
// parses flags, opens the store and wires internal/cri to a gRPC server.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v3"
	"google.golang.org/grpc"

	"github.com/berth-project/berth/internal/cri"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/trust"
)

var version = "0.1.0-dev"

// stopTimeout bounds the graceful stop: RPCs still running after it (a
// long pull) are cut off.
const stopTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app().Run(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		stop()
		os.Exit(1)
	}
}

func app() *cli.Command {
	return &cli.Command{
		Name:    "berthd",
		Usage:   "Berth's CRI server for kubelet",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: "/var/lib/berth", Usage: "directory for Berth's state (the image store)"},
			&cli.StringFlag{Name: "runroot", Value: "/run/berth", Usage: "directory for volatile state"},
			&cli.StringFlag{Name: "socket", Value: "/run/berth/berth.sock", Usage: "unix socket kubelet connects to"},
			&cli.StringFlag{Name: "cni-conf-dir", Value: "/etc/cni/net.d", Usage: "directory of CNI network configurations"},
			&cli.StringFlag{Name: "cni-bin-dir", Value: "/usr/lib/cni", Usage: "comma-separated directories of CNI plugins"},
			&cli.StringFlag{Name: "registries-config", Usage: "registries file (default ROOT/registries.json, then /etc/berth/registries.json)"},
			&cli.StringFlag{Name: "policy", Usage: "signature policy, containers-policy.json (default ROOT/policy.json, then /etc/containers/policy.json)"},
			&cli.StringFlag{Name: "admission", Usage: "admission rules, YAML (default ROOT/admission.yaml)"},
			&cli.StringFlag{Name: "registries-conf", Usage: "containers-registries.conf v2 file (default ROOT/registries.conf, then /etc/containers/registries.conf)"},
			&cli.StringFlag{Name: "certs-dir", Value: "/etc/containers/certs.d", Usage: "per-registry TLS: DIR/HOST[:PORT]/ca.crt, *.cert and *.key"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		HideHelpCommand: true,
		Action:          serve,
	}
}

func serve(ctx context.Context, cmd *cli.Command) error {
	if cmd.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", cmd.Args().First())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cmd.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", cmd.String("log-level"))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	root, err := filepath.Abs(cmd.String("root"))
	if err != nil {
		return err
	}
	cfgPaths := []string{filepath.Join(root, "registries.json"), "/etc/berth/registries.json"}
	if p := cmd.String("registries-config"); p != "" {
		cfgPaths = []string{p}
	}
	regCfg, err := registry.LoadConfig(cfgPaths...)
	if err != nil {
		return err
	}
	confPaths := []string{filepath.Join(root, "registries.conf"), "/etc/containers/registries.conf"}
	if p := cmd.String("registries-conf"); p != "" {
		confPaths = []string{p}
	}
	regCfg.CertsDir = cmd.String("certs-dir")
	if err := regCfg.LoadRegistriesConf(confPaths...); err != nil {
		return err
	}
	// The socket first: a second berthd is refused before it opens (and
	// perhaps cleans up) the store the first one serves.
	l, err := cri.Listen(ctx, cmd.String("socket"))
	if err != nil {
		return err
	}
	defer l.Close()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("create --root %s: %w", root, err)
	}
	images, err := image.Open(root, registry.New(registry.Options{Config: regCfg}))
	if err != nil {
		return fmt.Errorf("open the image store in %s: %w", root, err)
	}
	defer images.Close()
	images.Waiting = func(msg string) { log.Info(msg) }
	// Every pull (PullImage) is checked against the signature policy
	// before anything is stored; decisions go to ROOT/trust-audit.jsonl.
	policies := []string{filepath.Join(root, "policy.json"), "/etc/containers/policy.json"}
	if p := cmd.String("policy"); p != "" {
		policies = []string{p}
	}
	admission := cmd.String("admission")
	if admission == "" {
		admission = filepath.Join(root, "admission.yaml")
	}
	checker := trust.New(trust.Options{Root: root, PolicyPaths: policies, AdmissionPath: admission, Registry: images.Registry, Images: images,
		OnDecision: func(d trust.Decision) {
			if !d.Allowed {
				log.Warn("image refused", "image", d.Reference, "digest", d.Digest, "stage", d.Stage, "reason", d.Reason)
			}
		}})
	images.Verify = checker.VerifyPull

	srv, err := cri.New(cri.Options{
		Images:        images,
		Root:          root,
		CNIPluginDirs: splitList(cmd.String("cni-bin-dir")),
		Version:       version,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	g := grpc.NewServer()
	srv.Register(g)
	log.Info("serving the CRI", "socket", cmd.String("socket"), "root", root, "version", version)
	return serveUntilDone(ctx, log, g, l)
}

// serveUntilDone serves g on l until ctx is done (SIGTERM, SIGINT), then
// stops gracefully, cutting off what still runs after stopTimeout.
func serveUntilDone(ctx context.Context, log *slog.Logger, g *grpc.Server, l net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- g.Serve(l) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("stopping")
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(stopTimeout):
		log.Warn("RPCs still running after the stop timeout: cutting them off", "timeout", stopTimeout)
		g.Stop()
	}
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
