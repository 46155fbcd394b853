package main

// `berth network`: create, ls, inspect, rm, connect, disconnect, prune.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
)

// networkRow is a row of `network ls`: Docker's field names.
type networkRow struct {
	ID, Name, Driver, Scope, CreatedAt, Internal, Labels string
}

var networkHeader = networkRow{ID: "NETWORK ID", Name: "NAME", Driver: "DRIVER", Scope: "SCOPE", CreatedAt: "CREATED AT", Internal: "INTERNAL", Labels: "LABELS"}

const networkTable = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

func newNetworkRow(n engine.NetworkResource, noTrunc bool) networkRow {
	r := networkRow{ID: n.ID, Name: n.Name, Driver: n.Driver, Scope: n.Scope, Internal: fmt.Sprint(n.Internal), Labels: joinLabels(n.Labels)}
	if !n.Created.IsZero() {
		r.CreatedAt = n.Created.Format("2006-01-02 15:04:05 -0700 MST")
	}
	if !noTrunc {
		r.ID = shortID(n.ID)
	}
	return r
}

func joinLabels(m map[string]string) string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, k+"="+m[k])
	}
	return strings.Join(out, ",")
}

// parseLabels reads repeated --label KEY=VALUE flags.
func parseLabels(cmd *cli.Command) (map[string]string, error) {
	var out map[string]string
	for _, l := range cmd.StringSlice("label") {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, &statusError{code: 125, err: &invalidArg{flag: "--label", value: l, err: errors.New("the label's key is empty")}}
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out, nil
}

// confirm asks a yes/no question on stderr and reads the answer from
// stdin; anything but y or yes (or end of input) is no.
func confirm(question string) bool {
	fmt.Fprint(os.Stderr, question+" [y/N] ")
	var answer string
	_, _ = fmt.Fscanln(os.Stdin, &answer)
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

func networkCommand() *cli.Command {
	return &cli.Command{
		Name:  "network",
		Usage: "manage networks",
		Commands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a bridge network",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "driver", Aliases: []string{"d"}, Value: "bridge", Usage: "network driver (bridge)"},
					&cli.StringFlag{Name: "subnet", Usage: "subnet in CIDR form (default: a free one)"},
					&cli.StringFlag{Name: "gateway", Usage: "gateway address in the subnet"},
					&cli.BoolFlag{Name: "internal", Usage: "no route out of the network"},
					&cli.StringSliceFlag{Name: "label", Usage: "set a label (KEY=VALUE)"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if err := needArgs(cmd, 1, "NAME"); err != nil {
						return err
					}
					o, err := networkCreateOptions(cmd)
					if err != nil {
						return err
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						n, err := eng.NetworkCreate(ctx, o)
						if err != nil {
							return err
						}
						fmt.Println(n.ID)
						return nil
					})
				},
			},
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list networks",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print IDs only"},
					filterFlag(),
					&cli.StringFlag{Name: "format", Usage: "table, json or a Go template such as {{.Name}}"},
					&cli.BoolFlag{Name: "no-trunc", Usage: "do not shorten IDs"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					filters, err := parseFilters(cmd)
					if err != nil {
						return err
					}
					format, err := listFormat(cmd, "{{.ID}}")
					if err != nil {
						return err
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						list, err := eng.NetworkList(ctx, filters)
						if err != nil {
							return err
						}
						var rows []networkRow
						for _, n := range list {
							rows = append(rows, newNetworkRow(n, cmd.Bool("no-trunc")))
						}
						return render(os.Stdout, format, networkTable, networkHeader, rows)
					})
				},
			},
			{
				Name:      "inspect",
				Usage:     "show networks as JSON",
				ArgsUsage: "NETWORK...",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "Go template applied to each network"}},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						return inspectObjects(ctx, cmd, []string{"network"}, func(ctx context.Context, _, name string) (any, error) {
							return eng.NetworkInspect(ctx, name)
						})
					})
				},
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove networks no container uses",
				ArgsUsage: "NETWORK...",
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return onEach(ctx, cmd, "NETWORK...", func(eng *engine.Engine, name string) error {
						return eng.NetworkRemove(ctx, name)
					})
				},
			},
			{
				Name:      "connect",
				Usage:     "attach a container to a network (now if it runs, else when it starts)",
				ArgsUsage: "NETWORK CONTAINER",
				Flags:     []cli.Flag{&cli.StringSliceFlag{Name: "alias", Usage: "another name for the container on this network"}},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if err := needArgs(cmd, 2, "NETWORK CONTAINER"); err != nil {
						return err
					}
					for _, a := range cmd.StringSlice("alias") {
						if err := validHostname(a); err != nil {
							return &statusError{code: 125, err: &invalidArg{flag: "--alias", value: a, err: err}}
						}
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						return eng.NetworkConnect(ctx, cmd.Args().Get(0), cmd.Args().Get(1), cmd.StringSlice("alias"))
					})
				},
			},
			{
				Name:      "disconnect",
				Usage:     "detach a container from a network",
				ArgsUsage: "NETWORK CONTAINER",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "even if the network's state is inconsistent"}},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if err := needArgs(cmd, 2, "NETWORK CONTAINER"); err != nil {
						return err
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						return eng.NetworkDisconnect(ctx, cmd.Args().Get(0), cmd.Args().Get(1), cmd.Bool("force"))
					})
				},
			},
			{
				Name:  "prune",
				Usage: "remove the networks no container uses",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
					// -f is --force here, as in Docker.
					&cli.StringSliceFlag{Name: "filter", Usage: "keep what matches KEY=VALUE (repeatable)"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					filters, err := parseFilters(cmd)
					if err != nil {
						return err
					}
					if !cmd.Bool("force") && !confirm("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?") {
						return nil
					}
					return withEngine(ctx, cmd, func(eng *engine.Engine, _ *image.Service) error {
						removed, err := pruneNetworks(ctx, eng, filters)
						if len(removed) > 0 {
							fmt.Println("Deleted Networks:")
							for _, n := range removed {
								fmt.Println(n)
							}
						}
						return err
					})
				},
			},
		},
	}
}

// predefinedNetworks are never pruned or removable by prune.
var predefinedNetworks = map[string]bool{"bridge": true, "host": true, "none": true}

// pruneNetworks removes the user networks with no containers. The engine
// has no prune of its own: a network that gains a container meanwhile is
// refused by NetworkRemove (in use) and skipped.
func pruneNetworks(ctx context.Context, eng *engine.Engine, filters map[string][]string) ([]string, error) {
	list, err := eng.NetworkList(ctx, filters)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range list {
		if predefinedNetworks[n.Name] {
			continue
		}
		full, err := eng.NetworkInspect(ctx, n.Name)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			return removed, err
		}
		if len(full.Containers) > 0 {
			continue
		}
		if err := eng.NetworkRemove(ctx, n.Name); err != nil {
			if errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err) {
				continue
			}
			return removed, err
		}
		removed = append(removed, n.Name)
	}
	return removed, nil
}

// networkCreateOptions checks network create's flags.
func networkCreateOptions(cmd *cli.Command) (engine.NetworkCreateOptions, error) {
	o := engine.NetworkCreateOptions{
		Name: cmd.Args().First(), Driver: cmd.String("driver"), Subnet: cmd.String("subnet"),
		Gateway: cmd.String("gateway"), Internal: cmd.Bool("internal"),
	}
	bad := func(flag, v string, err error) error {
		return &statusError{code: 125, err: &invalidArg{flag: flag, value: v, err: err}}
	}
	if err := validName(o.Name); err != nil {
		return o, &statusError{code: 125, err: fmt.Errorf("invalid network name %q: %w", o.Name, err)}
	}
	if predefinedNetworks[o.Name] {
		return o, &statusError{code: 125, err: fmt.Errorf("%s is a predefined network: %w", o.Name, errdefs.ErrAlreadyExists)}
	}
	if o.Driver != "bridge" {
		return o, bad("-d, --driver", o.Driver, errors.New("only the bridge driver is supported"))
	}
	var prefix netip.Prefix
	if o.Subnet != "" {
		p, err := netip.ParsePrefix(o.Subnet)
		if err != nil {
			return o, bad("--subnet", o.Subnet, errors.New("not a subnet in CIDR form such as 10.89.0.0/24"))
		}
		if p.Masked() != p {
			return o, bad("--subnet", o.Subnet, fmt.Errorf("host bits are set (did you mean %s?)", p.Masked()))
		}
		prefix = p
	}
	if o.Gateway != "" {
		a, err := netip.ParseAddr(o.Gateway)
		if err != nil {
			return o, bad("--gateway", o.Gateway, errors.New("not an IP address"))
		}
		if o.Subnet == "" {
			return o, bad("--gateway", o.Gateway, errors.New("a gateway needs --subnet"))
		}
		if !prefix.Contains(a) {
			return o, bad("--gateway", o.Gateway, fmt.Errorf("not in the subnet %s", prefix))
		}
	}
	labels, err := parseLabels(cmd)
	if err != nil {
		return o, err
	}
	o.Labels = labels
	return o, nil
}
