package main

// `berth system`: info, df, prune, boot, and the hidden helpers the engine
// starts (dns). `berth info` is `system info`.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/image"
)

func systemCommand() *cli.Command {
	return &cli.Command{
		Name:  "system",
		Usage: "manage berth itself",
		Commands: []*cli.Command{
			infoCommand(),
			{
				Name:  "df",
				Usage: "show the disk space images, containers and volumes use",
				Flags: []cli.Flag{&cli.StringFlag{Name: "format", Usage: "table, json or a Go template"}},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					format := cmd.String("format")
					if err := checkFormat(format); err != nil {
						return err
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						du, err := eng.DiskUsage(ctx)
						if err != nil {
							return err
						}
						return render(os.Stdout, format, dfTable, dfHeader, dfRows(du))
					})
				},
			},
			{
				Name:  "prune",
				Usage: "remove stopped containers, unused networks, dangling images (and more with -a, --volumes)",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "every unused image, not only dangling ones"},
					&cli.BoolFlag{Name: "volumes", Usage: "unused volumes too"},
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					o := engine.PruneOptions{All: cmd.Bool("all"), Volumes: cmd.Bool("volumes")}
					if !cmd.Bool("force") && !confirm(pruneWarning(o)) {
						return nil
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						r, err := eng.Prune(ctx, o)
						if err != nil {
							return err
						}
						writePruneReport(os.Stdout, r)
						return nil
					})
				},
			},
			{
				Name:  "boot",
				Usage: "start the containers whose restart policy says so; run it at boot: --print-unit writes a systemd unit that does",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "print-unit", Usage: "print a systemd unit that runs this at boot (berth system boot --print-unit > /etc/systemd/system/berth-boot.service)"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if cmd.Bool("print-unit") {
						return printBootUnit(cmd)
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						return eng.Boot(ctx)
					})
				},
			},
			systemCleanupCommand(),
			systemDNSCommand(),
		},
	}
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "show berth's configuration and counts",
		Flags: []cli.Flag{&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "json or a Go template such as {{.NCPU}}"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			tmpl, err := inspectTemplate(cmd.String("format"))
			if err != nil {
				return err
			}
			return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
				info, err := eng.Info(ctx)
				if err != nil {
					return err
				}
				if tmpl != nil {
					return execInspect(os.Stdout, tmpl, info)
				}
				writeInfo(os.Stdout, info)
				fmt.Printf("Trust Policy: %s\n", trustPolicy(cmd))
				rd, search := registriesInfo(cmd)
				fmt.Printf("Registries.d: %s\nSearch Registries: %s\n", rd, search)
				return nil
			})
		},
	}
}

// writeInfo prints Info as `docker info` lays it out.
func writeInfo(w io.Writer, i engine.Info) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("Containers: %d", i.Containers)
	p(" Running: %d", i.ContainersRunning)
	p(" Paused: %d", i.ContainersPaused)
	p(" Stopped: %d", i.ContainersStopped)
	p("Images: %d", i.Images)
	p("Server Version: %s", i.ServerVersion)
	p("Storage Driver: %s", i.Driver)
	p("Cgroup Driver: %s", i.CgroupDriver)
	p("Cgroup Version: %s", i.CgroupVersion)
	runtimes := sortedKeys(i.Runtimes)
	p("Runtimes: %s", strings.Join(runtimes, " "))
	p("Default Runtime: %s", i.DefaultRuntime)
	if len(i.SecurityOptions) > 0 {
		p("Security Options:")
		for _, s := range i.SecurityOptions {
			p(" %s", s)
		}
	}
	if len(i.RuntimeMonitor) > 0 {
		p("Runtime Monitor:")
		for _, m := range i.RuntimeMonitor {
			if m.Mechanism != "" {
				p(" %s %s: %s", m.Event, m.Action, m.Mechanism)
			} else {
				p(" %s %s: refused: %s", m.Event, m.Action, m.Reason)
			}
		}
	}
	p("Kernel Version: %s", i.KernelVersion)
	p("Operating System: %s", i.OperatingSystem)
	p("Architecture: %s", i.Architecture)
	p("CPUs: %d", i.NCPU)
	p("Total Memory: %s", units.BytesSize(float64(i.MemTotal)))
	p("Root Dir: %s", i.RootDir)
	p("Run Root: %s", i.RunRoot)
	p("Namespace: %s", i.Namespace)
	if i.ID != "" {
		p("ID: %s", i.ID)
	}
}

// dfRow is a row of `system df`: Docker's field names.
type dfRow struct {
	Type, TotalCount, Active, Size, Reclaimable string
}

var dfHeader = dfRow{Type: "TYPE", TotalCount: "TOTAL", Active: "ACTIVE", Size: "SIZE", Reclaimable: "RECLAIMABLE"}

const dfTable = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"

func dfRows(du engine.DiskUsage) []dfRow {
	row := func(kind string, r engine.DiskUsageRow) dfRow {
		pct := 0
		if r.Size > 0 {
			pct = int(r.Reclaimable * 100 / r.Size)
		}
		return dfRow{
			Type: kind, TotalCount: fmt.Sprint(r.Total), Active: fmt.Sprint(r.Active),
			Size:        units.HumanSize(float64(r.Size)),
			Reclaimable: fmt.Sprintf("%s (%d%%)", units.HumanSize(float64(r.Reclaimable)), pct),
		}
	}
	return []dfRow{row("Images", du.Images), row("Containers", du.Containers), row("Local Volumes", du.Volumes)}
}

func pruneWarning(o engine.PruneOptions) string {
	items := []string{"all stopped containers", "all networks not used by at least one container"}
	if o.Volumes {
		items = append(items, "all anonymous volumes not used by at least one container")
	}
	if o.All {
		items = append(items, "all images without at least one container associated to them")
	} else {
		items = append(items, "all dangling images")
	}
	return "WARNING! This will remove:\n  - " + strings.Join(items, "\n  - ") + "\n\nAre you sure you want to continue?"
}

func writePruneReport(w io.Writer, r engine.PruneReport) {
	for _, s := range []struct {
		title string
		ids   []string
	}{{"Deleted Containers:", r.Containers}, {"Deleted Networks:", r.Networks}, {"Deleted Volumes:", r.Volumes}, {"Deleted Images:", r.Images}} {
		if len(s.ids) == 0 {
			continue
		}
		fmt.Fprintln(w, s.title)
		for _, id := range slices.Clone(s.ids) {
			fmt.Fprintln(w, id)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Total reclaimed space:", units.HumanSize(float64(r.SpaceReclaimed)))
}

// printBootUnit writes a systemd unit that runs `berth system boot` with
// this command's state directories, once the network is up.
func printBootUnit(cmd *cli.Command) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	root, err := filepath.Abs(cmd.String("root"))
	if err != nil {
		return err
	}
	runroot, err := filepath.Abs(cmd.String("runroot"))
	if err != nil {
		return err
	}
	args := []string{self, "--root", root, "--runroot", runroot, "--namespace", cmd.String("namespace"), "system", "boot"}
	for i, a := range args {
		args[i] = strconv.Quote(a)
	}
	fmt.Printf(`[Unit]
Description=Start Berth containers with restart policy always or unless-stopped
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=%s
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
`, strings.Join(args, " "))
	return nil
}
