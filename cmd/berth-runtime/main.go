// Command berth-runtime is Berth's OCI runtime, with runc's command line so
// that containerd, CRI-O, Podman and Docker can use it in runc's place. This
// package only parses arguments; the work is in internal/runtime.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/runtime/initproc"
	// start, delete, kill and state of a plain container in C.
	"github.com/berth-project/berth/internal/runtime/fastpath"
	// The namespace-entering C constructor for `berth-runtime init`.
	_ "github.com/berth-project/berth/internal/runtime/nsenter"
)

// version is set at build time; the spec version is the one we implement.
var version = "0.1.0-dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		if v := os.Getenv(initproc.EnvSelfCreate); v != "" {
			// A plain create that the init does itself.
			initproc.InitSelf(func() (*initproc.Config, int, error) { return selfCreate(v, os.Args[2:]) })
			return
		}
		initproc.Init()
		return
	}
	if runtime.IsIDMapHolder(os.Args) {
		runtime.RunIDMapHolder()
		return
	}
	code := run(os.Args)
	rssDump()
	os.Exit(code)
}

func run(args []string) int {
	// A create's init stage, when fastpath started one before the Go
	// runtime: create adopts it, and whatever else happens it is
	// discarded, not left waiting.
	var pre *runtime.Prespawn
	if sock, pid, flags, bin, ok := fastpath.Prespawned(); ok {
		pre = &runtime.Prespawn{Sock: sock, Stage: pid, Flags: flags, Binary: bin}
		defer pre.Discard()
	}
	var logOut io.Writer = io.Discard
	logJSON := false
	app := &cli.Command{
		Name:    "berth-runtime",
		Usage:   "Berth's OCI container runtime (runc-compatible command line)",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: "/run/berth", Usage: "directory for container state"},
			&cli.StringFlag{Name: "log", Usage: "log file (default: stderr for errors only)"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format: text or json"},
			&cli.BoolFlag{Name: "debug", Usage: "log debug messages"},
			&cli.BoolFlag{Name: "systemd-cgroup", Usage: "drive cgroups through systemd (cgroupsPath slice:prefix:name)"},
			&cli.StringFlag{Name: "rootless", Value: "auto", Usage: "ignore cgroup permission errors: true, false or auto"},
			&cli.StringFlag{Name: "criu", Hidden: true},
		},
		Before: func(ctx context.Context, cmd *cli.Command) (context.Context, error) {
			var err error
			if logJSON, err = jsonLogFormat(cmd.String("log-format")); err != nil {
				return ctx, err
			}
			if path := cmd.String("log"); path != "" {
				f, err := openLog(path)
				if err != nil {
					return ctx, err
				}
				logOut = f
			}
			var w io.Writer = logOut
			if w == io.Discard && cmd.Bool("debug") {
				w = os.Stderr
			}
			log := newLogger(w, logJSON, cmd.Bool("debug"))
			log.Debug("berth-runtime", "args", args[1:], "version", version)
			cmd.Metadata = map[string]any{"logger": log}
			return ctx, nil
		},
		Commands: commands(pre),
	}
	cli.VersionPrinter = func(cmd *cli.Command) {
		// runc's layout (name version X, commit, spec), which Docker's
		// `docker info` parses for any runtime.
		fmt.Printf("berth-runtime version %s\ncommit: %s\nspec: %s\ngo: %s\n", version, commit(), specVersion(), goruntime.Version())
	}
	err := app.Run(context.Background(), args)
	if f, ok := selfCreateFailure(); ok {
		// The init did create's work and failed, and the CLI failed
		// before create's action could report it: the container it
		// made is still removed, and its error still said.
		a := parseSelfArgs(args[1:])
		r := &runtime.Runtime{Root: a.root, Log: slog.New(slog.DiscardHandler)}
		if serr := r.SelfCreateFailed(context.Background(), a.id, f); err == nil {
			err = serr
		} else if serr.Error() != err.Error() {
			fmt.Fprintf(os.Stderr, "berth-runtime: %s\n", serr)
		}
	}
	if err == nil {
		return 0
	}
	if e, ok := err.(exitCode); ok {
		return int(e)
	}
	msg := err.Error()
	fmt.Fprintf(os.Stderr, "berth-runtime: %s\n", msg)
	// containerd's shim reads the last error from the log file.
	if logOut != io.Discard {
		newLogger(logOut, logJSON, false).Error(msg)
	}
	var coded codedError
	if errors.As(err, &coded) {
		return coded.code
	}
	return 1
}

// codedError is an error that ends the command with its own exit status.
type codedError struct {
	err  error
	code int
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

// jsonLogFormat reads --log-format: whether it is json.
func jsonLogFormat(format string) (bool, error) {
	switch format {
	case "text":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("--log-format: unknown format %q (want text or json)", format)
}

// openLog opens the --log file for appending, as runc does.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--log %s: %w", path, err)
	}
	return f, nil
}

// newLogger writes records as runc's logrus does, which callers parse:
// containerd's go-runc takes the last {"level":"error","msg":...} line of
// --log as the error to report, so levels are lower-case ("warning" too).
func newLogger(w io.Writer, json, debug bool) *slog.Logger {
	opts := &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				lvl := strings.ToLower(a.Value.String())
				if lvl == "warn" {
					lvl = "warning"
				}
				return slog.String(slog.LevelKey, lvl)
			}
			return a
		},
	}
	if debug {
		opts.Level = slog.LevelDebug
	}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// exitCode makes the CLI exit with a container's status rather than 1.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRuntime(cmd *cli.Command) (*runtime.Runtime, error) {
	var rootless bool
	switch v := cmd.String("rootless"); v {
	case "true":
		rootless = true
	case "false":
	case "auto":
		// As runc decides it: an unprivileged caller cannot make
		// cgroups or write to /run.
		rootless = os.Geteuid() != 0
	default:
		return nil, fmt.Errorf("--rootless: %q is not true, false or auto", v)
	}
	root := cmd.String("root")
	if !cmd.IsSet("root") && rootless {
		dir := os.Getenv("XDG_RUNTIME_DIR")
		if dir == "" {
			return nil, errors.New("rootless: XDG_RUNTIME_DIR is not set; set it or pass --root")
		}
		root = filepath.Join(dir, "berth")
	}
	log, _ := cmd.Root().Metadata["logger"].(*slog.Logger)
	r, err := runtime.New(root, log)
	if err != nil {
		return nil, err
	}
	r.SystemdCgroup = cmd.Bool("systemd-cgroup")
	r.Rootless = rootless
	return r, nil
}

func oneID(cmd *cli.Command) (string, error) {
	if cmd.Args().Len() != 1 {
		return "", fmt.Errorf("%s: expects exactly one container id, got %d arguments", cmd.Name, cmd.Args().Len())
	}
	return cmd.Args().First(), nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func stdio() [3]*os.File { return [3]*os.File{os.Stdin, os.Stdout, os.Stderr} }

func formatTime(t time.Time) string { return t.Format(time.RFC3339Nano) }

func specVersion() string {
	return strings.TrimSpace(specsVersion)
}

// commit is the VCS revision the binary was built from, as the Go
// toolchain stamps it (with "-dirty" for uncommitted changes).
func commit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", ""
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	return rev + dirty
}

// selfCreateFailure takes, once, the failure of a create whose init did
// create's work, which the constructor hands over (fastpath).
func selfCreateFailure() (runtime.SelfCreateFailure, bool) {
	kind, line, pid, ok := fastpath.SelfCreateFailed()
	if !ok {
		return runtime.SelfCreateFailure{}, false
	}
	// The kinds are prespawn.c's, which runtime.SelfFailure numbers alike.
	f := runtime.SelfCreateFailure{Why: runtime.SelfFailure(kind), Line: line, Pid: max(pid, 0)}
	return f, true
}

// selfArgs are the arguments of a plain create, as prespawn.c accepts them.
type selfArgs struct {
	root, logPath string
	logFormat     string
	debug         bool
	id            string
	opt           runtime.CreateOptions
}

// parseSelfArgs reads a plain create's arguments (without the program
// name) as prespawn.c's pre_bundle does: only the flags it lets through
// are there, "-name", "--name" or "--name=value", a value otherwise in the
// next argument. The pid file is prespawn.c's to write.
func parseSelfArgs(args []string) selfArgs {
	a := selfArgs{root: "/run/berth", logFormat: "text", opt: runtime.CreateOptions{Bundle: "."}}
	i := 0
	flag := func(valued ...string) (name, value string) {
		name, value, eq := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-"), "=")
		if !eq && slices.Contains(valued, name) && i+1 < len(args) {
			i++
			value = args[i]
		}
		return name, value
	}
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		switch name, value := flag("root", "log", "log-format"); name {
		case "root":
			a.root = value
		case "log":
			a.logPath = value
		case "log-format":
			a.logFormat = value
		case "debug":
			a.debug = true
		}
	}
	// args[i] is "create".
	for i++; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") || args[i] == "-" {
			a.id = args[i]
			continue
		}
		switch name, value := flag("bundle", "b", "pid-file", "pidfd-socket"); name {
		case "bundle", "b":
			a.opt.Bundle = value
		case "no-pivot":
			a.opt.NoPivot = true
		case "no-new-keyring":
			a.opt.NoNewKeyring = true
		}
	}
	return a
}

// selfCreate is the init of a plain create that does create's work itself
// (runtime.SelfCreate): prespawn.c started it with create's arguments.
// clone is the namespaces the stage made.
func selfCreate(clone string, args []string) (*initproc.Config, int, error) {
	flags, err := strconv.ParseUint(clone, 10, 64)
	if err != nil {
		return nil, -1, fmt.Errorf("init: bad %s %q", initproc.EnvSelfCreate, clone)
	}
	a := parseSelfArgs(args)
	// The global flags fail here as the CLI's Before fails them, so that
	// a create is refused the same whoever does it.
	logJSON, err := jsonLogFormat(a.logFormat)
	if err != nil {
		return nil, -1, err
	}
	log := slog.New(slog.DiscardHandler)
	var w io.Writer = os.Stderr
	if a.logPath != "" {
		f, err := openLog(a.logPath)
		if err != nil {
			return nil, -1, err
		}
		defer f.Close()
		w = f
	}
	if a.debug {
		log = newLogger(w, logJSON, true)
		log.Debug("berth-runtime", "args", args, "version", version)
	}
	r := &runtime.Runtime{Root: a.root, Log: log}
	cfg, fifo, err := r.SelfCreate(a.id, a.opt, uintptr(flags))
	if err == nil {
		log.Debug("create: done by the container's init; berth-runtime's Go runtime did not start")
	}
	return cfg, fifo, err
}
