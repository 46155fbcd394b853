package main

// `berth volume`: create, ls, inspect, rm, prune.

import (
	"context"
	"fmt"
	"os"

	"github.com/docker/go-units"
	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
)

// volumeRow is a row of `volume ls`: Docker's field names.
type volumeRow struct {
	Name, Driver, Scope, Mountpoint, CreatedAt, Labels string
}

var volumeHeader = volumeRow{Name: "VOLUME NAME", Driver: "DRIVER", Scope: "SCOPE", Mountpoint: "MOUNTPOINT", CreatedAt: "CREATED AT", Labels: "LABELS"}

const volumeTable = "table {{.Driver}}\t{{.Name}}"

func newVolumeRow(v engine.Volume) volumeRow {
	r := volumeRow{Name: v.Name, Driver: v.Driver, Scope: v.Scope, Mountpoint: v.Mountpoint, Labels: joinLabels(v.Labels)}
	if !v.CreatedAt.IsZero() {
		r.CreatedAt = v.CreatedAt.Format("2006-01-02 15:04:05 -0700 MST")
	}
	return r
}

func volumeCommand() *cli.Command {
	return &cli.Command{
		Name:  "volume",
		Usage: "manage volumes",
		Commands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a named volume (an existing one is kept)",
				ArgsUsage: "[NAME]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Usage: "the volume's name (or give it as the argument)"},
					&cli.StringSliceFlag{Name: "label", Usage: "set a label (KEY=VALUE)"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if cmd.Args().Len() > 1 {
						return fmt.Errorf("usage: berth volume create [NAME]")
					}
					name := cmd.Args().First()
					if n := cmd.String("name"); n != "" {
						if name != "" && name != n {
							return &statusError{code: 125, err: fmt.Errorf("conflicting names: the argument %q and --name %q", name, n)}
						}
						name = n
					}
					if name != "" && !volumeName.MatchString(name) {
						return &statusError{code: 125, err: fmt.Errorf("invalid volume name %q: use [a-zA-Z0-9][a-zA-Z0-9_.-]+", name)}
					}
					labels, err := parseLabels(cmd)
					if err != nil {
						return err
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						v, err := eng.VolumeCreate(ctx, engine.VolumeCreateOptions{Name: name, Labels: labels})
						if err != nil {
							return err
						}
						fmt.Println(v.Name)
						return nil
					})
				},
			},
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list volumes",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print names only"},
					filterFlag(),
					&cli.StringFlag{Name: "format", Usage: "table, json or a Go template such as {{.Name}}"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					filters, err := parseFilters(cmd)
					if err != nil {
						return err
					}
					format, err := listFormat(cmd, "{{.Name}}")
					if err != nil {
						return err
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						list, err := eng.VolumeList(ctx, filters)
						if err != nil {
							return err
						}
						var rows []volumeRow
						for _, v := range list {
							rows = append(rows, newVolumeRow(v))
						}
						return render(os.Stdout, format, volumeTable, volumeHeader, rows)
					})
				},
			},
			{
				Name:      "inspect",
				Usage:     "show volumes as JSON",
				ArgsUsage: "VOLUME...",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "Go template applied to each volume"}},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						return inspectObjects(ctx, cmd, []string{"volume"}, func(ctx context.Context, _, name string) (any, error) {
							return eng.VolumeInspect(ctx, name)
						})
					})
				},
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove volumes no container uses",
				ArgsUsage: "VOLUME...",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "no error for a volume that does not exist"}},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return onEach(ctx, cmd, "VOLUME...", func(eng *engine.Engine, name string) error {
						err := eng.VolumeRemove(ctx, name, cmd.Bool("force"))
						if cmd.Bool("force") && errdefs.IsNotFound(err) {
							return nil
						}
						return err
					})
				},
			},
			{
				Name:  "prune",
				Usage: "remove unused anonymous volumes (with -a, every unused volume)",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "named volumes too"},
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					what := "all anonymous local volumes not used by at least one container"
					if cmd.Bool("all") {
						what = "all local volumes not used by at least one container"
					}
					if !cmd.Bool("force") && !confirm("WARNING! This will remove "+what+".\nAre you sure you want to continue?") {
						return nil
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						names, size, err := eng.VolumePrune(ctx, cmd.Bool("all"))
						if err != nil {
							return err
						}
						if len(names) > 0 {
							fmt.Println("Deleted Volumes:")
							for _, n := range names {
								fmt.Println(n)
							}
							fmt.Println()
						}
						fmt.Println("Total reclaimed space:", units.HumanSize(float64(size)))
						return nil
					})
				},
			},
		},
	}
}
