package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/seccomp"
)

var specsVersion = specs.Version

var one = 1

func createFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Value: ".", Usage: "path to the OCI bundle"},
		&cli.StringFlag{Name: "pid-file", Usage: "write the init's pid here"},
		&cli.StringFlag{Name: "console-socket", Usage: "unix socket that receives the pty master"},
		&cli.StringFlag{Name: "pidfd-socket", Usage: "unix socket that receives a pidfd of the init"},
		&cli.BoolFlag{Name: "no-pivot", Usage: "move the root instead of pivot_root (for initramfs)"},
		&cli.BoolFlag{Name: "no-new-keyring", Usage: "keep the caller's session keyring"},
		&cli.IntFlag{Name: "preserve-fds", Usage: "pass this many fds from 3 on to the container"},
	}
}

func createOptions(cmd *cli.Command, pre *runtime.Prespawn) runtime.CreateOptions {
	n := int(cmd.Int("preserve-fds"))
	if v, err := strconv.Atoi(os.Getenv("LISTEN_FDS")); err == nil && v > 0 {
		n += v // socket activation, as runc honours it
	}
	return runtime.CreateOptions{
		Bundle: cmd.String("bundle"), PidFile: cmd.String("pid-file"), ConsoleSocket: cmd.String("console-socket"),
		PidfdSocket: cmd.String("pidfd-socket"), NoPivot: cmd.Bool("no-pivot"), NoNewKeyring: cmd.Bool("no-new-keyring"), PreserveFds: n, Stdio: stdio(),
		Prespawn: pre,
	}
}

// commands are the CLI's commands; create adopts pre when it fits.
func commands(pre *runtime.Prespawn) []*cli.Command {
	return []*cli.Command{
		{
			Name: "create", Usage: "create a container", ArgsUsage: "<container-id>",
			Flags: createFlags(),
			Action: func(ctx context.Context, cmd *cli.Command) error {
				id, err := oneID(cmd)
				if err != nil {
					return err
				}
				r, err := newRuntime(cmd)
				if err != nil {
					return err
				}
				// The init did create's work and failed: its error,
				// and the container it made removed.
				if f, ok := selfCreateFailure(); ok {
					return r.SelfCreateFailed(ctx, id, f)
				}
				return r.Create(ctx, id, createOptions(cmd, pre))
			},
		},
		{
			Name: "start", Usage: "start a created container", ArgsUsage: "<container-id>",
			Action: withID(func(ctx context.Context, r *runtime.Runtime, id string, cmd *cli.Command) error {
				return r.Start(ctx, id)
			}),
		},
		{
			Name: "run", Usage: "create and start a container", ArgsUsage: "<container-id>",
			Flags: append(createFlags(), &cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "do not wait for the container"},
				&cli.BoolFlag{Name: "keep", Usage: "do not delete the container once it exits"}),
			Action: func(ctx context.Context, cmd *cli.Command) error {
				id, err := oneID(cmd)
				if err != nil {
					return err
				}
				r, err := newRuntime(cmd)
				if err != nil {
					return err
				}
				return runContainer(ctx, r, id, cmd)
			},
		},
		{
			Name: "state", Usage: "print a container's state as JSON", ArgsUsage: "<container-id>",
			Action: withID(func(ctx context.Context, r *runtime.Runtime, id string, cmd *cli.Command) error {
				st, err := r.State(ctx, id)
				if err != nil {
					return err
				}
				// The C fast path prints the same bytes.
				b, err := runtime.MarshalState(st)
				if err != nil {
					return err
				}
				_, err = os.Stdout.Write(b)
				return err
			}),
		},
		{
			Name: "kill", Usage: "send a signal to a container", ArgsUsage: "<container-id> [signal]",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "signal every process of the container"}},
			Action: func(ctx context.Context, cmd *cli.Command) error {
				if n := cmd.Args().Len(); n < 1 || n > 2 {
					return fmt.Errorf("kill: expects a container id and an optional signal, got %d arguments", n)
				}
				sigName := "SIGTERM"
				if cmd.Args().Len() == 2 {
					sigName = cmd.Args().Get(1)
				}
				sig, err := runtime.ParseSignal(sigName)
				if err != nil {
					return err
				}
				r, err := newRuntime(cmd)
				if err != nil {
					return err
				}
				return r.Kill(ctx, cmd.Args().First(), sig, cmd.Bool("all"))
			},
		},
		{
			Name: "delete", Usage: "delete a container", ArgsUsage: "<container-id>",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "kill a running container first"}},
			Action: withID(func(ctx context.Context, r *runtime.Runtime, id string, cmd *cli.Command) error {
				return r.Delete(ctx, id, cmd.Bool("force"))
			}),
		},
		{
			Name: "list", Usage: "list containers",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "table or json"},
				&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print ids only"},
			},
			Action: func(ctx context.Context, cmd *cli.Command) error {
				r, err := newRuntime(cmd)
				if err != nil {
					return err
				}
				states, err := r.List(ctx)
				if err != nil {
					return err
				}
				if cmd.Bool("quiet") {
					for _, s := range states {
						fmt.Println(s.ID)
					}
					return nil
				}
				switch cmd.String("format") {
				case "json":
					if states == nil {
						states = []*runtime.State{}
					}
					// One line, as runc prints it (state is indented).
					return json.NewEncoder(os.Stdout).Encode(states)
				case "table":
					w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
					fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
					for _, s := range states {
						fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, formatTime(s.Created), s.Owner)
					}
					return w.Flush()
				default:
					return fmt.Errorf("--format: unknown format %q (want table or json)", cmd.String("format"))
				}
			},
		},
		{
			Name: "ps", Usage: "list a container's processes", ArgsUsage: "<container-id> [-- ps options]",
			Flags: []cli.Flag{&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "table or json"}},
			// Flags end at the container id: what follows is ps(1)'s.
			StopOnNthArg: &one,
			Action: func(ctx context.Context, cmd *cli.Command) error {
				if cmd.Args().Len() < 1 {
					return fmt.Errorf("ps: expects a container id")
				}
				r, err := newRuntime(cmd)
				if err != nil {
					return err
				}
				pids, err := r.Pids(ctx, cmd.Args().First())
				if err != nil {
					return err
				}
				if cmd.String("format") == "json" {
					if pids == nil {
						pids = []int{}
					}
					return printJSON(pids)
				}
				return psTable(pids, cmd.Args().Slice()[1:])
			},
		},
		{
			Name: "exec", Usage: "run a process in a running container", ArgsUsage: "<container-id> [command args...]",
			Flags: execFlags(),
			// Flags end at the container id: what follows is the command's.
			StopOnNthArg: &one,
			// A repeated flag is a list, as in runc; a value is never
			// split on commas ("--env A=x,y", "--cgroup cpu,cpuacct:sub").
			DisableSliceFlagSeparator: true,
			Action: func(ctx context.Context, cmd *cli.Command) error {
				r, err := newRuntime(cmd)
				if err != nil {
					return err
				}
				// runc exits 255 when exec itself fails, so that callers
				// can tell it from the process's own exit status.
				if err := execProcess(ctx, r, cmd); err != nil {
					if _, ok := err.(exitCode); ok {
						return err
					}
					return codedError{err, 255}
				}
				return nil
			},
		},
		{
			Name: "pause", Usage: "freeze every process of a container", ArgsUsage: "<container-id>",
			Action: withID(func(ctx context.Context, r *runtime.Runtime, id string, cmd *cli.Command) error {
				return r.Pause(ctx, id, true)
			}),
		},
		{
			Name: "resume", Usage: "thaw a paused container", ArgsUsage: "<container-id>",
			Action: withID(func(ctx context.Context, r *runtime.Runtime, id string, cmd *cli.Command) error {
				return r.Pause(ctx, id, false)
			}),
		},
		updateCommand(),
		eventsCommand(),
		{
			Name: "spec", Usage: "write a default config.json",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Value: ".", Usage: "where to write config.json"},
				&cli.BoolFlag{Name: "rootless", Usage: "a config for a rootless container"},
				&cli.BoolFlag{Name: "hardened", Usage: "Docker's default capabilities and seccomp profile (what berth applies to containers)"},
			},
			Action: func(ctx context.Context, cmd *cli.Command) error {
				path := filepath.Join(cmd.String("bundle"), oci.ConfigName)
				if _, err := os.Stat(path); err == nil {
					return fmt.Errorf("%s already exists; remove it first", path)
				}
				spec := oci.DefaultSpec()
				if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
					// As `runc spec`: a cgroup namespace only on a
					// cgroup v2 host (runc's tests add one themselves
					// on v1, and a second is an error).
					spec.Linux.Namespaces = slices.DeleteFunc(spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
						return ns.Type == specs.CgroupNamespace
					})
				}
				if cmd.Bool("rootless") {
					oci.ToRootless(spec, uint32(os.Geteuid()), uint32(os.Getegid()))
				}
				if cmd.Bool("hardened") {
					seccomp.Harden(spec)
				}
				f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
				if err != nil {
					return err
				}
				defer f.Close()
				enc := jsonIndent(f)
				return enc.Encode(spec)
			},
		},
		{
			Name: "features", Usage: "print the OCI features document",
			Action: func(ctx context.Context, cmd *cli.Command) error {
				f := oci.Features()
				f.Linux.Seccomp = seccomp.Features()
				return printJSON(f)
			},
		},
		{
			Name: "version", Usage: "print the version",
			Action: func(ctx context.Context, cmd *cli.Command) error {
				cli.VersionPrinter(cmd)
				return nil
			},
		},
	}
}

func withID(fn func(ctx context.Context, r *runtime.Runtime, id string, cmd *cli.Command) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		id, err := oneID(cmd)
		if err != nil {
			return err
		}
		r, err := newRuntime(cmd)
		if err != nil {
			return err
		}
		return fn(ctx, r, id, cmd)
	}
}

// psTable runs ps(1) and keeps its header and the container's lines, as
// runc does.
func psTable(pids []int, psArgs []string) error {
	if len(psArgs) > 0 && psArgs[0] == "--" {
		psArgs = psArgs[1:] // the usage's own separator
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	pidCol := -1
	for i, f := range strings.Fields(lines[0]) {
		if f == "PID" {
			pidCol = i
		}
	}
	if pidCol < 0 {
		return fmt.Errorf("ps output has no PID column")
	}
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	fmt.Println(lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) > pidCol {
			if p, err := strconv.Atoi(f[pidCol]); err == nil && in[p] {
				fmt.Println(l)
			}
		}
	}
	return nil
}

func runContainer(ctx context.Context, r *runtime.Runtime, id string, cmd *cli.Command) error {
	opt := createOptions(cmd, nil)
	detach := cmd.Bool("detach")
	var sigs chan os.Signal
	if !detach {
		var stop func()
		sigs, stop = runtime.CatchSignals()
		defer stop()
	}
	var tty *consoleProxy
	if !detach && opt.ConsoleSocket == "" {
		spec, err := oci.LoadBundle(opt.Bundle)
		if err == nil && spec.Process.Terminal {
			if tty, err = newConsoleProxy(); err != nil {
				return err
			}
			opt.ConsoleFile = tty.remote
		}
	}
	if err := r.Create(ctx, id, opt); err != nil {
		return err
	}
	st, err := r.State(ctx, id)
	if err != nil {
		return err
	}
	if tty != nil {
		if err := tty.start(); err != nil {
			r.Delete(ctx, id, true)
			return err
		}
		defer tty.close()
	}
	if err := r.Start(ctx, id); err != nil {
		r.Delete(ctx, id, true)
		return err
	}
	if detach {
		return nil
	}
	code := runtime.Wait(st.Pid, sigs)
	if tty != nil {
		tty.drain()
	}
	if !cmd.Bool("keep") {
		if err := r.Delete(ctx, id, true); err != nil {
			fmt.Fprintf(os.Stderr, "berth-runtime: delete %s: %v\n", id, err)
		}
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

func execFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "process", Aliases: []string{"p"}, Usage: "process.json to run"},
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "do not wait for the process"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a terminal"},
		&cli.StringFlag{Name: "console-socket", Usage: "unix socket that receives the pty master"},
		&cli.StringFlag{Name: "pidfd-socket", Usage: "unix socket that receives a pidfd of the process"},
		&cli.StringFlag{Name: "pid-file", Usage: "write the process's pid here"},
		&cli.StringFlag{Name: "cwd", Usage: "working directory in the container"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "KEY=VALUE to add"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "UID[:GID]"},
		&cli.IntSliceFlag{Name: "additional-gids", Aliases: []string{"g"}, Usage: "additional gids"},
		&cli.StringSliceFlag{Name: "cap", Aliases: []string{"c"}, Usage: "add a capability"},
		&cli.BoolFlag{Name: "no-new-privs", Usage: "set no_new_privs"},
		&cli.IntFlag{Name: "preserve-fds", Usage: "pass this many fds from 3 on"},
		&cli.StringFlag{Name: "apparmor", Usage: "AppArmor profile"},
		&cli.StringFlag{Name: "process-label", Usage: "SELinux label"},
		&cli.StringSliceFlag{Name: "cgroup", Usage: "run the process in an existing sub-cgroup: [CONTROLLER[,CONTROLLER...]:]PATH, repeatable"},
		&cli.BoolFlag{Name: "ignore-paused", Usage: "exec in a paused container: the process runs once it is resumed"},
	}
}

func execProcess(ctx context.Context, r *runtime.Runtime, cmd *cli.Command) error {
	if cmd.Args().Len() < 1 {
		return fmt.Errorf("exec: expects a container id")
	}
	id := cmd.Args().First()
	proc, err := execProcessSpec(r, id, cmd)
	if err != nil {
		return err
	}
	opt := runtime.ExecOptions{
		PidFile: cmd.String("pid-file"), ConsoleSocket: cmd.String("console-socket"), PidfdSocket: cmd.String("pidfd-socket"),
		PreserveFds: int(cmd.Int("preserve-fds")), Stdio: stdio(), IgnorePaused: cmd.Bool("ignore-paused"),
	}
	if opt.SubCgroups, err = subCgroupPaths(cmd.StringSlice("cgroup")); err != nil {
		return err
	}
	detach := cmd.Bool("detach")
	var tty *consoleProxy
	if proc.Terminal && opt.ConsoleSocket == "" {
		if detach {
			return fmt.Errorf("exec: --tty with --detach needs --console-socket")
		}
		if tty, err = newConsoleProxy(); err != nil {
			return err
		}
		opt.ConsoleFile = tty.remote
	}
	var sigs chan os.Signal
	if !detach {
		var stop func()
		sigs, stop = runtime.CatchSignals()
		defer stop()
	}
	pid, err := r.Exec(ctx, id, proc, opt)
	if err != nil {
		return err
	}
	if detach {
		return nil
	}
	if tty != nil {
		if err := tty.start(); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			return err
		}
		defer tty.close()
	}
	code := runtime.Wait(pid, sigs)
	if tty != nil {
		tty.drain()
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

// execProcessSpec builds the exec'd process as runc does: a --process file
// as is, or the container's own process with the flags applied.
func execProcessSpec(r *runtime.Runtime, id string, cmd *cli.Command) (*specs.Process, error) {
	if path := cmd.String("process"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		var p specs.Process
		if err := jsonUnmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("--process %s: %w", path, err)
		}
		return &p, nil
	}
	if cmd.Args().Len() < 2 {
		return nil, fmt.Errorf("exec: no command given (args or --process)")
	}
	p, err := r.BaseProcess(id)
	if err != nil {
		return nil, err
	}
	p.Args = cmd.Args().Slice()[1:]
	p.Terminal = cmd.Bool("tty")
	p.ConsoleSize = nil
	if cwd := cmd.String("cwd"); cwd != "" {
		p.Cwd = cwd
	}
	p.Env = append(append([]string{}, p.Env...), cmd.StringSlice("env")...)
	if u := cmd.String("user"); u != "" {
		uid, gid, hasGid := strings.Cut(u, ":")
		n, err := strconv.ParseUint(uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--user %q: want UID[:GID] as numbers", u)
		}
		p.User.UID = uint32(n)
		if hasGid {
			g, err := strconv.ParseUint(gid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--user %q: want UID[:GID] as numbers", u)
			}
			p.User.GID = uint32(g)
		}
	}
	for _, g := range cmd.IntSlice("additional-gids") {
		p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(g))
	}
	if caps := cmd.StringSlice("cap"); len(caps) > 0 {
		// As runc 1.2 and later: bounding, effective and permitted
		// only. Inheritable and ambient ones would pass on across an
		// exec of a non-root program (runc's CVE-2022-29162 fix).
		var c specs.LinuxCapabilities
		if p.Capabilities != nil {
			c = *p.Capabilities
		}
		c.Bounding = append(append([]string{}, c.Bounding...), caps...)
		c.Effective = append(append([]string{}, c.Effective...), caps...)
		c.Permitted = append(append([]string{}, c.Permitted...), caps...)
		// One the config makes inheritable becomes ambient too, as
		// with runc: the spec already lets it pass exec.
		c.Ambient = append([]string{}, c.Ambient...)
		for _, name := range caps {
			if slices.Contains(c.Inheritable, name) {
				c.Ambient = append(c.Ambient, name)
			}
		}
		p.Capabilities = &c
	}
	if cmd.Bool("no-new-privs") {
		p.NoNewPrivileges = true
	}
	if a := cmd.String("apparmor"); a != "" {
		p.ApparmorProfile = a
	}
	if l := cmd.String("process-label"); l != "" {
		p.SelinuxLabel = l
	}
	return p, nil
}

// subCgroupPaths parses exec's --cgroup values as runc does:
// "controller[,controller...]:path" each, or a single bare "path" for
// every hierarchy (cgroup v2's only form).
func subCgroupPaths(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	paths := make(map[string]string, len(args))
	for _, a := range args {
		ctrls, p, ok := strings.Cut(a, ":")
		if !ok {
			if len(args) != 1 {
				return nil, fmt.Errorf("invalid --cgroup argument: %s (missing <controller>: prefix)", a)
			}
			paths[""] = a
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c == "" {
				return nil, fmt.Errorf("invalid --cgroup argument: %s (empty <controller> prefix)", a)
			}
			if _, dup := paths[c]; dup {
				return nil, fmt.Errorf("invalid --cgroup argument(s): controller %s specified multiple times", c)
			}
			paths[c] = p
		}
	}
	return paths, nil
}
