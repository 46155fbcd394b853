package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/network"
)

// The hidden commands are berth's helpers, run by its own processes rather
// than by people: a container's monitor runs `system cleanup ID` when the
// container has exited for good, and the network manager runs `system dns
// STATEDIR NETWORK` as a network's DNS server.

func systemCleanupCommand() *cli.Command {
	return &cli.Command{
		Name:      "cleanup",
		Usage:     "tear down an exited container's network and mounts (run by its monitor)",
		ArgsUsage: "ID",
		Hidden:    true,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() != 1 {
				return fmt.Errorf("system cleanup: one container ID, please")
			}
			return withEngine(ctx, cmd, func(e *engine.Engine, _ *image.Service) error {
				return e.Cleanup(ctx, cmd.Args().First())
			})
		},
	}
}

func systemDNSCommand() *cli.Command {
	return &cli.Command{
		Name:      "dns",
		Usage:     "serve a network's DNS (run by the network manager)",
		ArgsUsage: "STATEDIR NETWORK",
		Hidden:    true,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() != 2 {
				return fmt.Errorf("system dns: STATEDIR and NETWORK, please")
			}
			// The server runs until its network goes: it stops on TERM.
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return network.ServeDNS(ctx, cmd.Args().Get(0), cmd.Args().Get(1))
		},
	}
}
