// Command berth is Berth's user CLI: images, containers, networks, volumes,
// Docker's commands and flags. It only parses arguments and wires the
// internal packages together.
//
// Exit codes are Docker's: 125 when berth itself fails (a bad flag, an
// unknown image, an engine error in run/create), 126 when the container's
// command cannot be invoked, 127 when it is not found, the container's own
// code when it ran, and 1 for other failures.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v3"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/berth-project/berth/internal/content"
	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/trust"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, msg := exitStatus(app().Run(ctx, os.Args))
	if msg != "" {
		fmt.Fprintln(os.Stderr, "berth:", msg)
	}
	stop()
	os.Exit(code)
}

// statusError makes berth exit with code after printing err (nothing if
// nil: the messages were printed already).
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *statusError) Unwrap() error { return e.err }

// exitStatus is the exit code for err and the message to print.
func exitStatus(err error) (int, string) {
	if err == nil {
		return 0, ""
	}
	var se *statusError
	if errors.As(err, &se) {
		if se.err == nil {
			return se.code, ""
		}
		return se.code, se.err.Error()
	}
	if errors.Is(err, trust.ErrRefused) {
		return 125, err.Error()
	}
	var ee *engine.ExitError
	if errors.As(err, &ee) {
		if ee.Err == nil {
			return ee.Code, ""
		}
		return ee.Code, err.Error()
	}
	return 1, err.Error()
}

// usageError is Docker's answer to a bad flag or argument: exit 125.
func usageError(_ context.Context, cmd *cli.Command, err error, _ bool) error {
	return &statusError{code: 125, err: fmt.Errorf("%w\nSee '%s --help'.", err, cmd.FullName())}
}

func app() *cli.Command {
	// `rm` is the container command at the top level, as in Docker;
	// `image rm` stays rmi's alias.
	rmi := rmiCommand()
	rmi.Aliases = nil
	commands := append([]*cli.Command{
		pullCommand(), imagesCommand(), imageCommand(), tagCommand(), rmi, pushCommand(),
		saveCommand(), loadCommand(), importCommand(), loginCommand(), logoutCommand(),
	}, containerCommands()...)
	commands = append(commands, containerGroupCommand(), networkCommand(), volumeCommand(), systemCommand(), infoCommand(), monitorCommand())
	root := &cli.Command{
		Name:  "berth",
		Usage: "images and containers",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: "/var/lib/berth", Usage: "directory for Berth's state"},
			&cli.StringFlag{Name: "runroot", Value: "/run/berth", Usage: "directory for volatile state (bundles, monitors' sockets)"},
			&cli.StringFlag{Name: "namespace", Value: "default", Sources: cli.EnvVars("BERTH_NAMESPACE"), Usage: "engine namespace the containers belong to"},
			&cli.StringSliceFlag{Name: "runtime-flag", Usage: "a global flag for the OCI runtime of the containers this command creates, without its leading dashes (debug, log-format=json), as Podman's flag; a container keeps them"},
			&cli.StringFlag{Name: "cgroup-manager", Value: "cgroupfs", Usage: "cgroupfs or systemd (transient scopes berth-ID.scope in system.slice; needs systemd as PID 1) for new containers, as Podman's flag"},
			&cli.StringFlag{Name: "runtime", Value: "berth-runtime", Usage: "default OCI runtime: berth-runtime, runc, crun or a path"},
			&cli.StringFlag{Name: "cni-conf-dir", Value: "/etc/cni/net.d", Usage: "directory of users' CNI network configurations"},
			&cli.StringFlag{Name: "cni-plugin-dir", Value: "/usr/lib/cni,/opt/cni/bin", Usage: "comma-separated directories of CNI plugins"},
			&cli.StringFlag{Name: "registries-config", Usage: "registries file (default ROOT/registries.json, then /etc/berth/registries.json)"},
			&cli.StringFlag{Name: "authfile", Usage: "credentials file (default ROOT/auth.json; ~/.docker/config.json is also read)"},
			&cli.DurationFlag{Name: "lock-timeout", Value: 10 * time.Minute, Usage: "how long to wait for other berth processes using ROOT (a collection waits for pulls in progress, and they for it)"},
		},
		Commands:        commands,
		ExitErrHandler:  func(context.Context, *cli.Command, error) {},
		HideHelpCommand: true,
		Suggest:         true,
	}
	root.Flags = append(append(root.Flags, trustFlags()...), registriesFlags()...)
	_ = root.Walk(func(c *cli.Command) error {
		c.OnUsageError = usageError
		// A value such as -e A=1,2 or --mount type=bind,src=... is one
		// value: never split slice flags on commas.
		c.DisableSliceFlagSeparator = true
		// -it, -dit, ps -aq, rm -fv: short flags combine, as in Docker.
		c.UseShortOptionHandling = true
		return nil
	})
	enableCompletion(root)
	return root
}

// env is what a command needs, built from the global flags.
type env struct {
	root     string
	authFile string
	registry *registry.Client
	creds    credentials.Store
	trust    *trust.Checker
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
	if err := loadRegistriesConf(cmd, root, &cfg); err != nil {
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
	e.trust = newChecker(cmd, e, svc)
	svc.Verify = e.trust.VerifyPull
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
