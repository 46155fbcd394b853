package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/runtime/events"
)

// eventsCommand is runc's `events`: stats and OOM notifications of a
// container as JSON lines on stdout.
func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:      "events",
		Usage:     "display container events such as OOM notifications and cpu, memory and IO usage statistics",
		ArgsUsage: "<container-id>",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "interval", Value: 5 * time.Second, Usage: "set the stats collection interval"},
			&cli.BoolFlag{Name: "stats", Usage: "display the container's stats then exit"},
		},
		Action: withID(func(ctx context.Context, r *runtime.Runtime, id string, cmd *cli.Command) error {
			// Compact, one object a line, as runc writes them: readers
			// split the stream on newlines.
			enc := json.NewEncoder(os.Stdout)
			emit := func(ev *events.Event) error {
				if err := enc.Encode(ev); err != nil {
					return fmt.Errorf("write event: %w", err)
				}
				return nil
			}
			return r.Events(ctx, id, runtime.EventsOptions{
				Interval:  cmd.Duration("interval"),
				StatsOnly: cmd.Bool("stats"),
				Warn: func(err error) {
					fmt.Fprintf(os.Stderr, "berth-runtime: warning: %v\n", err)
				},
			}, emit)
		}),
	}
}
