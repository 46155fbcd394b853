// Command berth is Berth's user CLI: images now, containers later. It only
// parses arguments and wires the internal packages together.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v3"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/berth-project/berth/internal/content"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/registry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app().Run(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(1)
	}
}

func app() *cli.Command {
	return &cli.Command{
		Name:  "berth",
		Usage: "images and containers",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: "/var/lib/berth", Usage: "directory for Berth's state"},
			&cli.StringFlag{Name: "registries-config", Usage: "registries file (default ROOT/registries.json, then /etc/berth/registries.json)"},
			&cli.StringFlag{Name: "authfile", Usage: "credentials file (default ROOT/auth.json; ~/.docker/config.json is also read)"},
			&cli.DurationFlag{Name: "lock-timeout", Value: 10 * time.Minute, Usage: "how long to wait for other berth processes using ROOT (a collection waits for pulls in progress, and they for it)"},
		},
		Commands: []*cli.Command{
			pullCommand(), imagesCommand(), imageCommand(), tagCommand(), rmiCommand(), pushCommand(),
			saveCommand(), loadCommand(), importCommand(), loginCommand(), logoutCommand(),
		},
	}
}

// env is what a command needs, built from the global flags.
type env struct {
	root     string
	authFile string
	registry *registry.Client
	creds    credentials.Store
}

func newEnv(cmd *cli.Command) (*env, error) {
	root, err := filepath.Abs(cmd.String("root"))
	if err != nil {
		return nil, err
	}
	e := &env{root: root, authFile: cmd.String("authfile")}
	if e.authFile == "" {
		e.authFile = filepath.Join(root, "auth.json")
	}
	cfgPaths := []string{filepath.Join(root, "registries.json"), "/etc/berth/registries.json"}
	if p := cmd.String("registries-config"); p != "" {
		cfgPaths = []string{p}
	}
	cfg, err := registry.LoadConfig(cfgPaths...)
	if err != nil {
		return nil, err
	}
	primary, err := credentials.NewStore(e.authFile, credentials.StoreOptions{AllowPlaintextPut: true})
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", e.authFile, err)
	}
	e.creds = primary
	if docker, err := credentials.NewStoreFromDocker(credentials.StoreOptions{}); err == nil {
		e.creds = credentials.NewStoreWithFallbacks(primary, docker)
	}
	e.registry = registry.New(registry.Options{Config: cfg, Credentials: e.creds})
	return e, nil
}

// withStore runs fn with the image store opened.
func withStore(ctx context.Context, cmd *cli.Command, fn func(*env, *image.Service) error) error {
	return openStore(ctx, cmd, image.Open, fn)
}

// withContent runs fn with the image store opened without snapshots, for
// commands that only read images, so they do not wait for a running pull.
func withContent(ctx context.Context, cmd *cli.Command, fn func(*env, *image.Service) error) error {
	return openStore(ctx, cmd, image.OpenWithoutSnapshots, fn)
}

func openStore(ctx context.Context, cmd *cli.Command, open func(string, *registry.Client) (*image.Service, error), fn func(*env, *image.Service) error) error {
	e, err := newEnv(cmd)
	if err != nil {
		return err
	}
	svc, err := open(e.root, e.registry)
	if err != nil {
		return err
	}
	defer svc.Close()
	// Another berth process on the same root can make this one wait: say
	// so on stderr, so that a wait does not look like a hang.
	waiting := func(msg string) { fmt.Fprintln(os.Stderr, "berth:", msg) }
	svc.LockTimeout = cmd.Duration("lock-timeout")
	svc.Waiting = waiting
	if l, ok := svc.Content.(*content.Local); ok {
		l.Waiting = waiting
		l.StallTimeout = svc.LockTimeout
	}
	return fn(e, svc)
}
