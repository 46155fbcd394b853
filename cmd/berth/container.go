package main

// Container commands: run, create, start, stop, kill, restart, rm, ps,
// logs, exec, attach, inspect, stats, top, wait, port, events, cp. They
// parse arguments, call the engine and print as Docker prints; nothing
// else. Exit codes follow Docker: 125 for berth's own failures in
// run/create, the container's code when it ran, 1 for other failures.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/docker/go-units"
	"github.com/opencontainers/go-digest"
	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
)

// withEngine runs fn with the image store and the engine opened from the
// global flags.
func withEngine(ctx context.Context, cmd *cli.Command, fn func(*engine.Engine, *image.Service) error) error {
	return withStore(ctx, cmd, func(e *env, svc *image.Service) error {
		opts, err := engineOptions(cmd.Root(), e.root, svc)
		if err != nil {
			return err
		}
		opts.Trust = e.trust
		eng, err := engine.Open(ctx, opts)
		if err != nil {
			return err
		}
		defer eng.Close()
		return fn(eng, svc)
	})
}

// engineOptions builds the engine's options from the root command's flags.
// Binaries are looked for next to the berth binary first, so that an
// unpacked release works without installing, then on $PATH.
func engineOptions(root *cli.Command, rootDir string, svc *image.Service) (engine.Options, error) {
	runRoot, err := filepath.Abs(root.String("runroot"))
	if err != nil {
		return engine.Options{}, err
	}
	if err := engine.CheckCgroupDriver(root.String("cgroup-manager")); err != nil {
		return engine.Options{}, fmt.Errorf("--cgroup-manager %s: %w", root.String("cgroup-manager"), err)
	}
	self, err := os.Executable()
	if err != nil {
		return engine.Options{}, fmt.Errorf("find the berth binary: %w", err)
	}
	o := engine.Options{
		Root:          rootDir,
		RunRoot:       runRoot,
		Namespace:     root.String("namespace"),
		Images:        svc,
		MonitorBin:    findBinary(self, "berth-monitor"),
		Runtimes:      map[string]string{},
		Self:          []string{self},
		CNIConfDirs:   []string{root.String("cni-conf-dir")},
		CNIPluginDirs: splitList(root.String("cni-plugin-dir")),
		Warn:          func(msg string) { fmt.Fprintln(os.Stderr, "berth: warning:", msg) },
		CgroupDriver:  root.String("cgroup-manager"),
	}
	if p := findBinary(self, "berth-runtime"); p != "" {
		o.Runtimes["berth-runtime"] = p
	}
	for _, n := range []string{"runc", "crun"} {
		if p, err := exec.LookPath(n); err == nil {
			o.Runtimes[n] = p
		}
	}
	o.DefaultRuntime = root.String("runtime")
	if strings.Contains(o.DefaultRuntime, "/") {
		// A path names a runtime binary of its own.
		p, err := filepath.Abs(o.DefaultRuntime)
		if err != nil {
			return engine.Options{}, err
		}
		o.DefaultRuntime = filepath.Base(p)
		o.Runtimes[o.DefaultRuntime] = p
	}
	// Podman's --runtime-flag: NAME or NAME=VALUE, without the dashes,
	// for the runtime of the containers this command creates.
	if flags := root.StringSlice("runtime-flag"); len(flags) > 0 {
		var args []string
		for _, f := range flags {
			if f == "" || strings.HasPrefix(f, "-") {
				return engine.Options{}, fmt.Errorf("--runtime-flag %q: give the runtime's flag without its leading dashes (log-format=json for --log-format=json)", f)
			}
			args = append(args, "--"+f)
		}
		o.RuntimeArgs = map[string][]string{}
		for n := range o.Runtimes {
			o.RuntimeArgs[n] = args
		}
	}
	return o, nil
}

// findBinary looks for name next to self, then on $PATH; "" if neither.
func findBinary(self, name string) string {
	p := filepath.Join(filepath.Dir(self), name)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
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

// runFailure makes a run/create error exit 125, unless it carries the
// container's own code (126, 127 or its exit status).
func runFailure(err error) error {
	if err == nil {
		return nil
	}
	var ee *engine.ExitError
	var se *statusError
	if errors.As(err, &ee) || errors.As(err, &se) {
		return err
	}
	return &statusError{code: 125, err: err}
}

// forEach runs fn on each argument, reporting each failure and going on
// with the others, as Docker does; any failure makes berth exit 1.
func forEach(cmd *cli.Command, usage string, fn func(ref string) error) error {
	if cmd.Args().Len() == 0 {
		return fmt.Errorf("%q requires at least 1 argument\nUsage: berth %s %s", "berth "+cmd.Name, cmd.Name, usage)
	}
	failed := false
	for _, ref := range cmd.Args().Slice() {
		if err := fn(ref); err != nil {
			fmt.Fprintln(os.Stderr, "berth:", err)
			failed = true
		}
	}
	if failed {
		return &statusError{code: 1}
	}
	return nil
}

// onEach opens the engine and runs fn on each argument, printing each
// argument fn succeeds on (Docker echoes what it was given).
func onEach(ctx context.Context, cmd *cli.Command, usage string, fn func(eng *engine.Engine, ref string) error) error {
	return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
		return forEach(cmd, usage, func(ref string) error {
			if err := fn(eng, ref); err != nil {
				return err
			}
			fmt.Println(ref)
			return nil
		})
	})
}

// listFormat is a listing's --format, or quiet (a template printing one
// field) with -q; a bad template is reported before any work.
func listFormat(cmd *cli.Command, quiet string) (string, error) {
	format := cmd.String("format")
	if cmd.Bool("quiet") {
		format = quiet
	}
	return format, checkFormat(format)
}

// containerGroupCommand is `berth container ...`: the same commands under
// Docker's management group, where ps is also ls.
func containerGroupCommand() *cli.Command {
	cmds := containerCommands()
	for _, c := range cmds {
		if c.Name == "ps" {
			c.Aliases = []string{"ls", "list"}
		}
	}
	return &cli.Command{Name: "container", Usage: "manage containers", Commands: cmds}
}

func containerCommands() []*cli.Command {
	return []*cli.Command{
		runCommand(), createCommand(), startCommand(), stopCommand(), killCommand(), restartCommand(),
		rmCommand(), psCommand(), logsCommand(), execCommand(), attachCommand(), inspectCommand(),
		statsCommand(), topCommand(), waitCommand(), portCommand(), eventsCommand(), cpCommand(),
	}
}

// stopAfterFirstArg makes run/create and exec stop reading flags after the
// image or container, so `berth run alpine ls -l` passes -l to ls.
func stopAfterFirstArg() *int { n := 1; return &n }

func runCommand() *cli.Command {
	return &cli.Command{
		Name:         "run",
		Usage:        "create and start a container from an image",
		ArgsUsage:    "IMAGE [COMMAND] [ARG...]",
		StopOnNthArg: stopAfterFirstArg(),
		Flags: append(createFlags(),
			&cli.BoolFlag{Name: "sig-proxy", Value: true, Usage: "forward signals to the container (without -t)"},
			detachKeysFlag(),
		),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			req, err := parseCreate(cmd, os.LookupEnv)
			if err != nil {
				return runFailure(err)
			}
			if req.tty && req.stdin && !isTTY(os.Stdin) {
				return runFailure(errors.New("the input device is not a TTY; drop -t or give a terminal"))
			}
			keys, err := detachKeys(cmd)
			if err != nil {
				return err
			}
			return runFailure(withEngine(ctx, cmd, func(eng *engine.Engine, svc *image.Service) error {
				c, err := create(ctx, eng, svc, req)
				if err != nil {
					return err
				}
				if req.detach {
					if _, err := eng.Start(ctx, c.ID); err != nil {
						// A run that could not start leaves nothing behind
						// (the bad-input rule; Docker would keep a
						// created container).
						removeAfterRun(eng, c.ID)
						return err
					}
					fmt.Println(c.ID)
					return nil
				}
				code, err := foreground(ctx, eng, c.ID, attachMode{
					start: true, tty: req.tty, stdin: req.stdin, sigProxy: cmd.Bool("sig-proxy") && !req.tty, detachKeys: keys,
				})
				if errors.Is(err, errDetached) {
					// The container goes on: nothing to remove yet.
					return nil
				}
				if req.opts.HostConfig.AutoRemove || (err != nil && !errors.Is(err, context.Canceled)) {
					removeAfterRun(eng, c.ID)
				}
				if err != nil {
					return err
				}
				return exitWith(code)
			}))
		},
	}
}

func createCommand() *cli.Command {
	return &cli.Command{
		Name:         "create",
		Usage:        "create a container from an image without starting it",
		ArgsUsage:    "IMAGE [COMMAND] [ARG...]",
		StopOnNthArg: stopAfterFirstArg(),
		Flags:        createFlags(),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			req, err := parseCreate(cmd, os.LookupEnv)
			if err != nil {
				return runFailure(err)
			}
			return runFailure(withEngine(ctx, cmd, func(eng *engine.Engine, svc *image.Service) error {
				c, err := create(ctx, eng, svc, req)
				if err != nil {
					return err
				}
				fmt.Println(c.ID)
				return nil
			}))
		},
	}
}

// create asks the engine for the container, showing an implicit pull's
// progress on stderr as `berth pull` shows it.
func create(ctx context.Context, eng *engine.Engine, svc *image.Service, req *createRequest) (engine.Container, error) {
	if err := resolveShortImage(ctx, svc, req); err != nil {
		return engine.Container{}, err
	}
	p := newProgress(os.Stderr, req.quiet)
	var mu sync.Mutex
	announced := false
	req.opts.PullProgress = func(ev engine.PullEvent) {
		d, err := digest.Parse(ev.Layer)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !announced && !req.quiet {
			// Docker's words, so that a slow start is not a mystery.
			announced = true
			if req.opts.Pull != "always" {
				fmt.Fprintf(os.Stderr, "Unable to find image '%s' locally\n", req.imgName)
			}
			fmt.Fprintf(os.Stderr, "Pulling %s\n", req.imgName)
		}
		p.event(image.ProgressEvent{Digest: d, Status: image.Status(ev.Status), Current: ev.Current, Total: ev.Total})
	}
	c, err := eng.Create(ctx, req.opts)
	p.wait()
	return c, err
}

// removeAfterRun removes a --rm container whose foreground run ended. The
// engine may have removed it already (AutoRemove), which is fine.
func removeAfterRun(eng *engine.Engine, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := eng.Remove(ctx, id, engine.RemoveOptions{Volumes: true})
	if err != nil && !errdefs.IsNotFound(err) {
		fmt.Fprintln(os.Stderr, "berth: remove the container:", err)
	}
}

// exitWith makes berth exit with the container's code.
func exitWith(code int) error {
	if code == 0 {
		return nil
	}
	return &engine.ExitError{Code: code}
}

// attachMode says how the caller's terminal meets the container's stdio.
type attachMode struct {
	start      bool // StartAttached rather than Attach
	tty        bool
	stdin      bool
	sigProxy   bool
	detachKeys []byte
}

// foreground connects the caller's stdio to the container until its
// output ends and returns its exit code, or errDetached. With a terminal,
// stdin is raw, window sizes follow and the detach keys detach; without
// one, SIGINT, SIGTERM and the like are forwarded to the container
// (Docker's --sig-proxy) rather than ending berth.
func foreground(ctx context.Context, eng *engine.Engine, id string, m attachMode) (int, error) {
	s, err := newSession(ctx, m.stdin, m.tty, m.detachKeys)
	if err != nil {
		return 0, err
	}
	defer s.close()
	if m.sigProxy {
		sigs := make(chan os.Signal, 8)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
		defer signal.Stop(sigs)
		go func() {
			for {
				select {
				case <-s.ctx.Done():
					return
				case sig := <-sigs:
					kctx, kcancel := context.WithTimeout(s.ctx, 10*time.Second)
					if err := eng.Kill(kctx, id, strconv.Itoa(int(sig.(syscall.Signal)))); err != nil {
						fmt.Fprintln(os.Stderr, "berth: forward", sig, "to the container:", err)
					}
					kcancel()
				}
			}
		}()
	} else {
		s.detachOnCancel(ctx)
	}
	if m.start {
		return s.result(eng.StartAttached(s.ctx, id, s.streams))
	}
	return s.result(eng.Attach(s.ctx, id, s.streams))
}

// detachKeysFlag is Docker's --detach-keys.
func detachKeysFlag() cli.Flag {
	return &cli.StringFlag{Name: "detach-keys", Value: "ctrl-p,ctrl-q", Usage: "keys that detach from a container's terminal (ctrl-X or characters, comma-separated)"}
}

// detachKeys reads --detach-keys.
func detachKeys(cmd *cli.Command) ([]byte, error) {
	keys, err := parseDetachKeys(cmd.String("detach-keys"))
	if err != nil {
		return nil, &statusError{code: 125, err: &invalidArg{flag: "--detach-keys", value: cmd.String("detach-keys"), err: err}}
	}
	return keys, nil
}

// detachedOK makes a detach a success: the container goes on.
func detachedOK(err error) error {
	if errors.Is(err, errDetached) {
		return nil
	}
	return err
}

func startCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "start stopped containers",
		ArgsUsage: "CONTAINER...",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "attach", Aliases: []string{"a"}, Usage: "attach stdout/stderr and exit with the container's code"},
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "attach stdin"},
			detachKeysFlag(),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			keys, err := detachKeys(cmd)
			if err != nil {
				return err
			}
			attach := cmd.Bool("attach") || cmd.Bool("interactive")
			if attach && cmd.Args().Len() > 1 {
				return errors.New("cannot start and attach several containers at once")
			}
			if !attach {
				return onEach(ctx, cmd, "CONTAINER...", func(eng *engine.Engine, ref string) error {
					_, err := eng.Start(ctx, ref)
					return err
				})
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				if cmd.Args().Len() != 1 {
					return errors.New("usage: berth start -a CONTAINER")
				}
				ref := cmd.Args().First()
				c, err := eng.Inspect(ctx, ref)
				if err != nil {
					return err
				}
				code, err := foreground(ctx, eng, c.ID, attachMode{
					start: true, tty: c.Config.Tty, stdin: cmd.Bool("interactive") && c.Config.OpenStdin, sigProxy: !c.Config.Tty,
					detachKeys: keys,
				})
				if err != nil {
					return detachedOK(err)
				}
				return exitWith(code)
			})
		},
	}
}

// stopTimeout reads -t/--time: nil when not given (the container's own).
func stopTimeout(cmd *cli.Command) (*time.Duration, error) {
	if !cmd.IsSet("time") {
		return nil, nil
	}
	n := cmd.Int("time")
	if n < -1 {
		return nil, &invalidArg{flag: "-t, --time", value: strconv.Itoa(n), err: errors.New("not a number of seconds")}
	}
	if n == -1 {
		// -1: wait for ever, as Docker; a very long wait stands for it.
		d := time.Duration(1<<62 - 1)
		return &d, nil
	}
	d := time.Duration(n) * time.Second
	return &d, nil
}

func timeFlag() cli.Flag {
	return &cli.IntFlag{Name: "time", Aliases: []string{"t", "timeout"}, Usage: "seconds to wait before killing the container (default: its stop timeout, 10)"}
}

func stopCommand() *cli.Command {
	return &cli.Command{
		Name:      "stop",
		Usage:     "stop running containers: the stop signal, then SIGKILL after the timeout",
		ArgsUsage: "CONTAINER...",
		Flags: []cli.Flag{
			timeFlag(),
			&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Usage: "signal to send instead of the container's stop signal"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			timeout, err := stopTimeout(cmd)
			if err != nil {
				return &statusError{code: 125, err: err}
			}
			sig := cmd.String("signal")
			if sig != "" {
				if sig, err = parseSignal(sig); err != nil {
					return &statusError{code: 125, err: &invalidArg{flag: "-s, --signal", value: cmd.String("signal"), err: err}}
				}
			}
			return onEach(ctx, cmd, "CONTAINER...", func(eng *engine.Engine, ref string) error {
				if sig == "" {
					return eng.Stop(ctx, ref, timeout)
				}
				return stopWithSignal(ctx, eng, ref, sig, timeout)
			})
		},
	}
}

// stopWithSignal is `stop -s`: the engine's Stop sends the container's
// own stop signal, so this sends sig, waits up to timeout for the exit,
// and only then has the engine stop (kill) it.
func stopWithSignal(ctx context.Context, eng *engine.Engine, ref, sig string, timeout *time.Duration) error {
	if err := eng.Kill(ctx, ref, sig); err != nil {
		return err
	}
	wait := 10 * time.Second
	if timeout != nil {
		wait = *timeout
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if _, err := eng.Wait(wctx, ref); err == nil {
		return nil
	} else if ctx.Err() != nil {
		return err
	}
	zero := time.Duration(0)
	return eng.Stop(ctx, ref, &zero)
}

func killCommand() *cli.Command {
	return &cli.Command{
		Name:      "kill",
		Usage:     "send a signal (default SIGKILL) to running containers",
		ArgsUsage: "CONTAINER...",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Value: "KILL", Usage: "signal to send"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			sig, err := parseSignal(cmd.String("signal"))
			if err != nil {
				return &statusError{code: 125, err: &invalidArg{flag: "-s, --signal", value: cmd.String("signal"), err: err}}
			}
			return onEach(ctx, cmd, "CONTAINER...", func(eng *engine.Engine, ref string) error {
				return eng.Kill(ctx, ref, sig)
			})
		},
	}
}

func restartCommand() *cli.Command {
	return &cli.Command{
		Name:      "restart",
		Usage:     "stop then start containers",
		ArgsUsage: "CONTAINER...",
		Flags:     []cli.Flag{timeFlag()},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			timeout, err := stopTimeout(cmd)
			if err != nil {
				return &statusError{code: 125, err: err}
			}
			return onEach(ctx, cmd, "CONTAINER...", func(eng *engine.Engine, ref string) error {
				return eng.Restart(ctx, ref, timeout)
			})
		},
	}
}

func rmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove containers",
		ArgsUsage: "CONTAINER...",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "kill a running container first"},
			&cli.BoolFlag{Name: "volumes", Aliases: []string{"v"}, Usage: "remove the container's anonymous volumes"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			o := engine.RemoveOptions{Force: cmd.Bool("force"), Volumes: cmd.Bool("volumes")}
			return onEach(ctx, cmd, "CONTAINER...", func(eng *engine.Engine, ref string) error {
				return eng.Remove(ctx, ref, o)
			})
		},
	}
}

func waitCommand() *cli.Command {
	return &cli.Command{
		Name:      "wait",
		Usage:     "wait for containers to stop and print their exit codes",
		ArgsUsage: "CONTAINER...",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				return forEach(cmd, "CONTAINER...", func(ref string) error {
					code, err := eng.Wait(ctx, ref)
					if err != nil {
						return err
					}
					fmt.Println(code)
					return nil
				})
			})
		},
	}
}

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "show a container's output",
		ArgsUsage: "CONTAINER",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new output"},
			&cli.StringFlag{Name: "tail", Aliases: []string{"n"}, Value: "all", Usage: "lines from the end to show"},
			&cli.StringFlag{Name: "since", Usage: "show lines since a time (RFC 3339, Unix seconds) or for a duration (10m)"},
			&cli.StringFlag{Name: "until", Usage: "show lines before a time or a duration ago"},
			&cli.BoolFlag{Name: "timestamps", Aliases: []string{"t"}, Usage: "prefix each line with its time"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, 1, "CONTAINER"); err != nil {
				return err
			}
			o := engine.LogsOptions{Follow: cmd.Bool("follow"), Timestamps: cmd.Bool("timestamps"), Tail: -1}
			if t := cmd.String("tail"); t != "all" && t != "" {
				n, err := strconv.Atoi(t)
				if err != nil || n < 0 {
					return &statusError{code: 125, err: &invalidArg{flag: "-n, --tail", value: t, err: errors.New("want a number of lines or all")}}
				}
				o.Tail = n
			}
			now := time.Now()
			var err error
			if o.Since, err = parseTimeFlag(cmd.String("since"), now); err != nil {
				return &statusError{code: 125, err: &invalidArg{flag: "--since", value: cmd.String("since"), err: err}}
			}
			if o.Until, err = parseTimeFlag(cmd.String("until"), now); err != nil {
				return &statusError{code: 125, err: &invalidArg{flag: "--until", value: cmd.String("until"), err: err}}
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				err := eng.Logs(ctx, cmd.Args().First(), o, os.Stdout, os.Stderr)
				if err != nil && ctx.Err() != nil && o.Follow {
					return nil // ^C ends a follow
				}
				return err
			})
		},
	}
}

// parseTimeFlag parses --since/--until as Docker: "" (zero), an RFC 3339
// time or date, Unix seconds (with fraction), or a duration before now.
func parseTimeFlag(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("a duration must not be negative")
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	secs, frac, _ := strings.Cut(s, ".")
	if sec, err := strconv.ParseInt(secs, 10, 64); err == nil && sec >= 0 && len(frac) <= 9 && strings.Trim(frac, "0123456789") == "" {
		ns := int64(0)
		if frac != "" {
			ns, _ = strconv.ParseInt((frac + "000000000")[:9], 10, 64)
		}
		return time.Unix(sec, ns), nil
	}
	return time.Time{}, errors.New("not a time (RFC 3339, Unix seconds) or a duration such as 10m")
}

func execCommand() *cli.Command {
	return &cli.Command{
		Name:         "exec",
		Usage:        "run a command in a running container",
		ArgsUsage:    "CONTAINER COMMAND [ARG...]",
		StopOnNthArg: stopAfterFirstArg(),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep stdin open"},
			&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-terminal"},
			&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run the command in the background"},
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "user[:group]"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable"},
			&cli.StringSliceFlag{Name: "env-file", Usage: "read environment variables from a file", TakesFile: true},
			&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory (absolute)"},
			&cli.BoolFlag{Name: "privileged", Usage: "give the command every capability"},
			detachKeysFlag(),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			args := cmd.Args().Slice()
			if len(args) < 2 {
				return errors.New("usage: berth exec [OPTIONS] CONTAINER COMMAND [ARG...]")
			}
			o := engine.ExecOptions{
				Cmd: args[1:], User: cmd.String("user"), WorkingDir: cmd.String("workdir"),
				Tty: cmd.Bool("tty"), Interactive: cmd.Bool("interactive"), Detach: cmd.Bool("detach"),
				Privileged: cmd.Bool("privileged"),
			}
			if o.WorkingDir != "" && !filepath.IsAbs(o.WorkingDir) {
				return &statusError{code: 125, err: &invalidArg{flag: "-w, --workdir", value: o.WorkingDir, err: errors.New("the working directory must be an absolute path")}}
			}
			for _, f := range cmd.StringSlice("env-file") {
				env, err := readKVFile(f, os.LookupEnv)
				if err != nil {
					return &statusError{code: 125, err: &invalidArg{flag: "--env-file", value: f, err: err}}
				}
				o.Env = append(o.Env, env...)
			}
			for _, e := range cmd.StringSlice("env") {
				kv, ok, err := parseEnv(e, os.LookupEnv)
				if err != nil {
					return &statusError{code: 125, err: &invalidArg{flag: "-e, --env", value: e, err: err}}
				}
				if ok {
					o.Env = append(o.Env, kv)
				}
			}
			if o.Tty && o.Interactive && !isTTY(os.Stdin) {
				return errors.New("the input device is not a TTY; drop -t or give a terminal")
			}
			keys, err := detachKeys(cmd)
			if err != nil {
				return err
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				code, err := execForeground(ctx, eng, args[0], o, keys)
				if err != nil {
					return detachedOK(err)
				}
				return exitWith(code)
			})
		},
	}
}

// execForeground runs an exec with the caller's terminal, as foreground
// does for the container's main process (signals are not proxied: berth
// signalled detaches, as docker exec).
func execForeground(ctx context.Context, eng *engine.Engine, ref string, o engine.ExecOptions, keys []byte) (int, error) {
	if o.Detach {
		return eng.Exec(ctx, ref, o, engine.AttachStreams{})
	}
	s, err := newSession(ctx, o.Interactive, o.Tty, keys)
	if err != nil {
		return 0, err
	}
	defer s.close()
	s.detachOnCancel(ctx)
	return s.result(eng.Exec(s.ctx, ref, o, s.streams))
}

func attachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "connect this terminal to a running container's stdio",
		ArgsUsage: "CONTAINER",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "no-stdin", Usage: "do not attach stdin"},
			&cli.BoolFlag{Name: "sig-proxy", Value: true, Usage: "forward signals to the container (without a terminal)"},
			detachKeysFlag(),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, 1, "CONTAINER"); err != nil {
				return err
			}
			keys, err := detachKeys(cmd)
			if err != nil {
				return err
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				c, err := eng.Inspect(ctx, cmd.Args().First())
				if err != nil {
					return err
				}
				if !c.State.Running {
					return fmt.Errorf("cannot attach to %s: it is not running: %w", cmd.Args().First(), errdefs.ErrFailedPrecondition)
				}
				code, err := foreground(ctx, eng, c.ID, attachMode{
					tty: c.Config.Tty, stdin: c.Config.OpenStdin && !cmd.Bool("no-stdin"),
					sigProxy: cmd.Bool("sig-proxy") && !c.Config.Tty, detachKeys: keys,
				})
				if err != nil {
					return detachedOK(err)
				}
				return exitWith(code)
			})
		},
	}
}

func topCommand() *cli.Command {
	return &cli.Command{
		Name:         "top",
		Usage:        "show a container's processes",
		ArgsUsage:    "CONTAINER [ps OPTIONS]",
		StopOnNthArg: stopAfterFirstArg(),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			args := cmd.Args().Slice()
			if len(args) == 0 {
				return errors.New("usage: berth top CONTAINER [ps OPTIONS]")
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				titles, rows, err := eng.Top(ctx, args[0], args[1:])
				if err != nil {
					return err
				}
				tw := newTable(os.Stdout)
				fmt.Fprintln(tw, strings.Join(titles, "\t"))
				for _, r := range rows {
					fmt.Fprintln(tw, strings.Join(r, "\t"))
				}
				return tw.Flush()
			})
		},
	}
}

func portCommand() *cli.Command {
	return &cli.Command{
		Name:      "port",
		Usage:     "list a container's published ports",
		ArgsUsage: "CONTAINER [PRIVATE_PORT[/PROTO]]",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			args := cmd.Args().Slice()
			if len(args) < 1 || len(args) > 2 {
				return errors.New("usage: berth port CONTAINER [PRIVATE_PORT[/PROTO]]")
			}
			want := ""
			if len(args) == 2 {
				ports, err := parseExpose(args[1])
				if err != nil || len(ports) != 1 {
					return &statusError{code: 125, err: fmt.Errorf("invalid port %q: want PORT[/tcp|udp|sctp]", args[1])}
				}
				want = ports[0]
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				ports, err := eng.Port(ctx, args[0])
				if err != nil {
					return err
				}
				lines, err := portLines(ports, want)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				for _, l := range lines {
					fmt.Println(l)
				}
				return nil
			})
		},
	}
}

// portLines formats `port`: "80/tcp -> 0.0.0.0:8080" for all, or the host
// sides only for one private port.
func portLines(ports map[string][]engine.PortBinding, want string) ([]string, error) {
	var out []string
	if want != "" {
		bs, ok := ports[want]
		if !ok || len(bs) == 0 {
			return nil, fmt.Errorf("no public port %s published: %w", want, errdefs.ErrNotFound)
		}
		for _, b := range bs {
			out = append(out, hostPort(b))
		}
		return out, nil
	}
	for _, p := range sortedKeys(ports) {
		for _, b := range ports[p] {
			out = append(out, p+" -> "+hostPort(b))
		}
	}
	return out, nil
}

func hostPort(b engine.PortBinding) string {
	ip := b.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	return ip + ":" + b.HostPort
}

func cpCommand() *cli.Command {
	return &cli.Command{
		Name:      "cp",
		Usage:     "copy files between a container and the host (\"-\": a tar stream on stdin/stdout)",
		ArgsUsage: "CONTAINER:SRC_PATH DEST_PATH|-  or  SRC_PATH|- CONTAINER:DEST_PATH",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "archive", Aliases: []string{"a"}, Usage: "keep the files' owners (uid:gid)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, 2, "CONTAINER:SRC_PATH DEST_PATH|-"); err != nil {
				return err
			}
			src, dst, err := parseCopyArgs(cmd.Args().Get(0), cmd.Args().Get(1))
			if err != nil {
				return err
			}
			if cmd.Bool("archive") {
				// The engine's copy has no owner option yet: refuse rather
				// than silently copy with other owners.
				return fmt.Errorf("cp --archive: %w", errdefs.ErrNotImplemented)
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				if src.container != "" {
					return eng.CopyFromContainer(ctx, src.container, src.path, dst.path, os.Stdout)
				}
				return eng.CopyToContainer(ctx, dst.container, dst.path, src.path, os.Stdin)
			})
		},
	}
}

// copyEnd is one side of `cp`.
type copyEnd struct{ container, path string }

// splitCopyArg splits CONTAINER:PATH; a path that is absolute or starts
// with "." is local even with a colon in it, as in Docker.
func splitCopyArg(s string) copyEnd {
	if filepath.IsAbs(s) || strings.HasPrefix(s, ".") || s == "-" {
		return copyEnd{path: s}
	}
	ctr, p, ok := strings.Cut(s, ":")
	if !ok || ctr == "" {
		return copyEnd{path: s}
	}
	return copyEnd{container: ctr, path: p}
}

func parseCopyArgs(a, b string) (copyEnd, copyEnd, error) {
	src, dst := splitCopyArg(a), splitCopyArg(b)
	switch {
	case src.container != "" && dst.container != "":
		return src, dst, errors.New("copying between containers is not supported: one side must be a host path")
	case src.container == "" && dst.container == "":
		return src, dst, errors.New("one side must be CONTAINER:PATH")
	case src.container != "" && src.path == "", dst.container != "" && dst.path == "":
		return src, dst, errors.New("the container's path is empty")
	case src.path == "" || dst.path == "":
		return src, dst, errors.New("a path is empty")
	}
	return src, dst, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// parseFilters reads repeated --filter KEY=VALUE flags.
func parseFilters(cmd *cli.Command) (map[string][]string, error) {
	var out map[string][]string
	for _, f := range cmd.StringSlice("filter") {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, &statusError{code: 125, err: &invalidArg{flag: "-f, --filter", value: f, err: errors.New("want KEY=VALUE")}}
		}
		if out == nil {
			out = map[string][]string{}
		}
		out[strings.ToLower(k)] = append(out[strings.ToLower(k)], v)
	}
	return out, nil
}

func filterFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "keep what matches KEY=VALUE (repeatable)"}
}

// psRow is a row of `ps` as its templates see it: Docker's field names.
type psRow struct {
	ID         string
	Image      string
	Command    string
	CreatedAt  string
	RunningFor string
	Ports      string
	State      string
	Status     string
	Size       string
	Names      string
	Labels     string
	Mounts     string
	Networks   string

	labels map[string]string
	header bool
}

// Label is {{.Label "key"}}.
func (r psRow) Label(name string) string {
	if r.header {
		return strings.ToUpper(name)
	}
	return r.labels[name]
}

var psHeader = psRow{
	ID: "CONTAINER ID", Image: "IMAGE", Command: "COMMAND", CreatedAt: "CREATED AT", RunningFor: "CREATED",
	Ports: "PORTS", State: "STATE", Status: "STATUS", Size: "SIZE", Names: "NAMES", Labels: "LABELS",
	Mounts: "MOUNTS", Networks: "NETWORKS", header: true,
}

const psTable = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

// newPSRow formats a Summary as Docker's ps does.
func newPSRow(s engine.Summary, now time.Time, noTrunc bool) psRow {
	r := psRow{
		ID: s.ID, Image: s.Image, State: s.State, Status: s.Status,
		Command:   strconv.Quote(s.Command),
		CreatedAt: s.Created.Format("2006-01-02 15:04:05 -0700 MST"),
		Ports:     formatPorts(s.Ports),
		Mounts:    strings.Join(s.Mounts, ","),
		Networks:  strings.Join(s.Networks, ","),
		labels:    s.Labels,
	}
	if !s.Created.IsZero() {
		r.RunningFor = humanAgo(now.Sub(s.Created))
	}
	var names []string
	for _, n := range s.Names {
		names = append(names, strings.TrimPrefix(n, "/"))
	}
	r.Names = strings.Join(names, ",")
	var labels []string
	for _, k := range sortedKeys(s.Labels) {
		labels = append(labels, k+"="+s.Labels[k])
	}
	r.Labels = strings.Join(labels, ",")
	if r.Status == "" {
		r.Status = strings.ToUpper(s.State[:min(1, len(s.State))]) + s.State[min(1, len(s.State)):]
	}
	if !noTrunc {
		r.ID = shortID(s.ID)
		if strings.HasPrefix(r.Image, "sha256:") {
			r.Image = shortID(strings.TrimPrefix(r.Image, "sha256:"))
		}
		r.Command = strconv.Quote(ellipsis(s.Command, 20))
	}
	return r
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ellipsis cuts s to n runes, the last one an ellipsis, as Docker's table.
func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// humanAgo is Docker's "2 minutes ago".
func humanAgo(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return units.HumanDuration(d) + " ago"
}

// formatPorts is ps's PORTS column: "0.0.0.0:8080->80/tcp, 443/tcp".
func formatPorts(ports []engine.PortSummary) string {
	var out []string
	for _, p := range ports {
		if p.PublicPort == 0 {
			out = append(out, fmt.Sprintf("%d/%s", p.PrivatePort, p.Type))
			continue
		}
		ip := p.IP
		if ip == "" {
			ip = "0.0.0.0"
		}
		if strings.Contains(ip, ":") {
			ip = "[" + ip + "]"
		}
		out = append(out, fmt.Sprintf("%s:%d->%d/%s", ip, p.PublicPort, p.PrivatePort, p.Type))
	}
	return strings.Join(out, ", ")
}

func psCommand() *cli.Command {
	return &cli.Command{
		Name:  "ps",
		Usage: "list containers",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "show stopped containers too"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print IDs only"},
			filterFlag(),
			&cli.StringFlag{Name: "format", Usage: "table, json, or a Go template such as {{.Names}} (\"table TEMPLATE\" adds headers)"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "do not shorten IDs and commands"},
			&cli.IntFlag{Name: "last", Aliases: []string{"n"}, Value: -1, Usage: "show the n last created containers"},
			&cli.BoolFlag{Name: "latest", Aliases: []string{"l"}, Usage: "show the last created container"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			filters, err := parseFilters(cmd)
			if err != nil {
				return err
			}
			o := engine.ListOptions{All: cmd.Bool("all"), Filters: filters}
			if n := cmd.Int("last"); n > 0 {
				o.All, o.Limit = true, n
			}
			if cmd.Bool("latest") {
				o.All, o.Limit = true, 1
			}
			format, err := listFormat(cmd, "{{.ID}}")
			if err != nil {
				return err
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				list, err := eng.List(ctx, o)
				if err != nil {
					return err
				}
				rows := make([]psRow, 0, len(list))
				now := time.Now()
				for _, s := range list {
					rows = append(rows, newPSRow(s, now, cmd.Bool("no-trunc")))
				}
				return render(os.Stdout, format, psTable, psHeader, rows)
			})
		},
	}
}

// inspectKinds are the kinds `inspect` looks through, in Docker's order.
var inspectKinds = []string{"container", "image", "network", "volume"}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show containers, images, networks or volumes as JSON",
		ArgsUsage: "NAME|ID...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "Go template applied to each object, e.g. {{.State.Status}} or {{json .Config}}"},
			&cli.StringFlag{Name: "type", Usage: "container, image, network or volume (default: the first kind with that name)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			kinds := inspectKinds
			if t := cmd.String("type"); t != "" {
				if !slices.Contains(inspectKinds, t) {
					return &statusError{code: 125, err: &invalidArg{flag: "--type", value: t, err: errors.New("want container, image, network or volume")}}
				}
				kinds = []string{t}
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, svc *image.Service) error {
				return inspectObjects(ctx, cmd, kinds, func(ctx context.Context, kind, name string) (any, error) {
					switch kind {
					case "container":
						return eng.Inspect(ctx, name)
					case "image":
						return svc.Inspect(ctx, name)
					case "network":
						return eng.NetworkInspect(ctx, name)
					default:
						return eng.VolumeInspect(ctx, name)
					}
				})
			})
		},
	}
}

// inspectObjects is every inspect command: each name is looked up in the
// kinds in turn; all found objects are printed as one JSON array (Docker's
// output), or each through --format. Missing names are reported and make
// berth exit 1 after the others are printed.
func inspectObjects(ctx context.Context, cmd *cli.Command, kinds []string, get func(context.Context, string, string) (any, error)) error {
	if cmd.Args().Len() == 0 {
		return fmt.Errorf("usage: berth %s NAME...", cmd.FullName())
	}
	tmpl, err := inspectTemplate(cmd.String("format"))
	if err != nil {
		return err
	}
	var found []any
	var failures []error
	for _, name := range cmd.Args().Slice() {
		obj, err := inspectOne(ctx, kinds, name, get)
		if err != nil {
			failures = append(failures, err)
			continue
		}
		found = append(found, obj)
	}
	if tmpl == nil {
		if found == nil {
			found = []any{}
		}
		if err := writeJSONIndent(os.Stdout, found); err != nil {
			return err
		}
	} else {
		for _, obj := range found {
			if err := execInspect(os.Stdout, tmpl, obj); err != nil {
				return err
			}
		}
	}
	for _, err := range failures {
		fmt.Fprintln(os.Stderr, "berth:", err)
	}
	if len(failures) > 0 {
		return &statusError{code: 1}
	}
	return nil
}

// inspectOne finds name in the first kind that has it. A kind the engine
// does not implement yet, or whose names cannot be spelt so (a volume
// name with a colon), is passed over like one without the name.
func inspectOne(ctx context.Context, kinds []string, name string, get func(context.Context, string, string) (any, error)) (any, error) {
	for _, kind := range kinds {
		obj, err := get(ctx, kind, name)
		if err == nil {
			return obj, nil
		}
		notThisKind := errdefs.IsNotFound(err) || errdefs.IsInvalidArgument(err) || errors.Is(err, errdefs.ErrNotImplemented)
		if !notThisKind || len(kinds) == 1 {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no such object: %s: %w", name, errdefs.ErrNotFound)
}

// statsRow is a row of `stats`: Docker's field names.
type statsRow struct {
	ID, Container, Name, CPUPerc, MemUsage, MemPerc, NetIO, BlockIO, PIDs string
}

const statsTable = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

var statsHeader = statsRow{ID: "CONTAINER ID", Container: "CONTAINER", Name: "NAME", CPUPerc: "CPU %", MemUsage: "MEM USAGE / LIMIT",
	MemPerc: "MEM %", NetIO: "NET I/O", BlockIO: "BLOCK I/O", PIDs: "PIDS"}

// newStatsRow formats a sample; with the previous one, CPU % is the
// share of one CPU used between the two (Docker's: 200% is two CPUs busy).
func newStatsRow(s engine.Stats, prev *engine.Stats) statsRow {
	cpu := s.CPUPercent
	if prev != nil && s.Read.After(prev.Read) && s.CPUNanos >= prev.CPUNanos {
		cpu = float64(s.CPUNanos-prev.CPUNanos) / float64(s.Read.Sub(prev.Read).Nanoseconds()) * 100
	}
	mem := s.MemPercent
	if mem == 0 && s.MemLimit > 0 {
		mem = float64(s.MemUsage) / float64(s.MemLimit) * 100
	}
	return statsRow{
		ID: shortID(s.ID), Container: shortID(s.ID), Name: strings.TrimPrefix(s.Name, "/"),
		CPUPerc:  fmt.Sprintf("%.2f%%", cpu),
		MemUsage: units.BytesSize(float64(s.MemUsage)) + " / " + units.BytesSize(float64(s.MemLimit)),
		MemPerc:  fmt.Sprintf("%.2f%%", mem),
		NetIO:    units.HumanSizeWithPrecision(float64(s.NetRx), 3) + " / " + units.HumanSizeWithPrecision(float64(s.NetTx), 3),
		BlockIO:  units.HumanSizeWithPrecision(float64(s.BlockRead), 3) + " / " + units.HumanSizeWithPrecision(float64(s.BlockWrite), 3),
		PIDs:     strconv.FormatUint(s.Pids, 10),
	}
}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "show containers' resource use, refreshed every second",
		ArgsUsage: "[CONTAINER...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "all containers (default: running ones)"},
			&cli.BoolFlag{Name: "no-stream", Usage: "print one sample and exit"},
			&cli.StringFlag{Name: "format", Usage: "table, json or a Go template"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "do not shorten IDs"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			format := cmd.String("format")
			if err := checkFormat(format); err != nil {
				return err
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				refs := cmd.Args().Slice()
				named := len(refs) > 0
				prev := map[string]engine.Stats{}
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				live := !cmd.Bool("no-stream") && isTTY(os.Stdout)
				for {
					if !named {
						list, err := eng.List(ctx, engine.ListOptions{All: cmd.Bool("all")})
						if err != nil {
							return err
						}
						refs = refs[:0]
						for _, s := range list {
							refs = append(refs, s.ID)
						}
					}
					var rows []statsRow
					failed := false
					for _, ref := range refs {
						s, err := eng.Stats(ctx, ref)
						if err != nil {
							// A listed container may be gone already; a
							// named one is an error.
							if named {
								fmt.Fprintln(os.Stderr, "berth:", err)
								failed = true
							}
							continue
						}
						var p *engine.Stats
						if old, ok := prev[ref]; ok {
							p = &old
						}
						prev[ref] = s
						row := newStatsRow(s, p)
						if cmd.Bool("no-trunc") {
							row.ID, row.Container = s.ID, s.ID
						}
						rows = append(rows, row)
					}
					if live {
						fmt.Print("\033[2J\033[H")
					}
					if err := render(os.Stdout, format, statsTable, statsHeader, rows); err != nil {
						return err
					}
					if cmd.Bool("no-stream") {
						if failed {
							return &statusError{code: 1}
						}
						return nil
					}
					select {
					case <-ctx.Done():
						return nil
					case <-tick.C:
					}
				}
			})
		},
	}
}

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "print the engine's events as they happen",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "since", Usage: "show events since a time or for a duration (10m)"},
			&cli.StringFlag{Name: "until", Usage: "stop at a time or a duration ago"},
			filterFlag(),
			&cli.StringFlag{Name: "format", Usage: "json or a Go template"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			now := time.Now()
			since, err := parseTimeFlag(cmd.String("since"), now)
			if err != nil {
				return &statusError{code: 125, err: &invalidArg{flag: "--since", value: cmd.String("since"), err: err}}
			}
			until, err := parseTimeFlag(cmd.String("until"), now)
			if err != nil {
				return &statusError{code: 125, err: &invalidArg{flag: "--until", value: cmd.String("until"), err: err}}
			}
			filters, err := parseFilters(cmd)
			if err != nil {
				return err
			}
			format := cmd.String("format")
			tmpl, err := lineTemplate(format)
			if err != nil {
				return err
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				err := eng.Events(ctx, since, until, filters, func(ev engine.Event) error {
					switch {
					case format == "json":
						return writeJSONLine(os.Stdout, ev)
					case tmpl != nil:
						return execLine(os.Stdout, tmpl, ev)
					}
					_, err := fmt.Println(formatEvent(ev))
					return err
				})
				if err != nil && ctx.Err() != nil {
					return nil // ^C ends the stream
				}
				return err
			})
		},
	}
}

// formatEvent is Docker's default events line.
func formatEvent(ev engine.Event) string {
	var b strings.Builder
	b.WriteString(time.Unix(0, ev.TimeNano).Format("2006-01-02T15:04:05.000000000Z07:00"))
	fmt.Fprintf(&b, " %s %s %s", ev.Type, ev.Action, ev.Actor.ID)
	if len(ev.Actor.Attributes) > 0 {
		var attrs []string
		for _, k := range sortedKeys(ev.Actor.Attributes) {
			attrs = append(attrs, k+"="+ev.Actor.Attributes[k])
		}
		b.WriteString(" (" + strings.Join(attrs, ", ") + ")")
	}
	return b.String()
}

// Output formats shared by every listing command (--format): "" or
// "table" for the default table, "table TEMPLATE" for a table of one's
// own, "json" for a JSON object a line, anything else a Go template
// executed for each row. As in Docker, "\t" and "\n" typed literally in a
// template are a tab and a newline.

// templateFuncs are Docker's template functions.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"title": func(s string) string {
		if s == "" {
			return s
		}
		r := []rune(s)
		return strings.ToUpper(string(r[0])) + string(r[1:])
	},
	"truncate": func(s string, n int) string {
		if r := []rune(s); len(r) > n && n >= 0 {
			return string(r[:n])
		}
		return s
	},
	"pad": func(s string, left, right int) string {
		return strings.Repeat(" ", max(0, left)) + s + strings.Repeat(" ", max(0, right))
	},
	"println": fmt.Sprintln,
}

func unescapeFormat(f string) string {
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(f)
}

func parseTemplate(f string) (*template.Template, error) {
	t, err := template.New("format").Funcs(templateFuncs).Option("missingkey=zero").Parse(unescapeFormat(f))
	if err != nil {
		return nil, &statusError{code: 125, err: &invalidArg{flag: "--format", value: f, err: err}}
	}
	return t, nil
}

// checkFormat reports a bad --format before any work is done.
func checkFormat(format string) error {
	switch format {
	case "", "table", "json":
		return nil
	}
	_, err := parseTemplate(strings.TrimPrefix(format, "table "))
	return err
}

// render writes rows in the given format; header names the columns of a
// table (a row whose fields hold their titles).
func render[T any](w io.Writer, format, defaultTable string, header T, rows []T) error {
	switch format {
	case "json":
		for _, r := range rows {
			if err := writeJSONLine(w, r); err != nil {
				return err
			}
		}
		return nil
	case "", "table":
		format = defaultTable
	}
	table := strings.HasPrefix(format, "table ")
	t, err := parseTemplate(strings.TrimPrefix(format, "table "))
	if err != nil {
		return err
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = newTable(w)
		out = tw
		if err := execLine(out, t, header); err != nil {
			return err
		}
	}
	for _, r := range rows {
		if err := execLine(out, t, r); err != nil {
			return err
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// lineTemplate parses a template for a stream ("" and "json" need none).
func lineTemplate(format string) (*template.Template, error) {
	if format == "" || format == "json" {
		return nil, nil
	}
	return parseTemplate(format)
}

// execLine writes one row and a newline.
func execLine(w io.Writer, t *template.Template, v any) error {
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		return fmt.Errorf("format: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func writeJSONIndent(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// inspectTemplate parses inspect's -f (nil when not given).
func inspectTemplate(format string) (*template.Template, error) {
	if format == "" {
		return nil, nil
	}
	if format == "json" {
		format = "{{json .}}"
	}
	return parseTemplate(format)
}

// execInspect runs an inspect template on obj's JSON form, so that it sees
// the JSON names scripts use ({{.Id}}, {{.HostConfig.Dns}}), as Docker's
// inspect does; numbers stay exact (json.Number).
func execInspect(w io.Writer, t *template.Template, obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return execLine(w, t, v)
}
