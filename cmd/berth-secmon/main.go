// Command berth-secmon is Berth's runtime security monitor: `agent` runs
// the one agent per host (the engine starts it), `hook` is the OCI
// createRuntime hook the engine puts in the spec of a container with
// rules. Argument parsing only; the work is in internal/secmon.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/secmon"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	agentDir := fs.String("agent-dir", secmon.DefaultAgentDir, "the agent's directory (socket, registrations)")
	pinDir := fs.String("pin-dir", secmon.DefaultPinDir, "where the BPF objects are pinned")
	fs.Parse(os.Args[2:])
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	o := secmon.Options{AgentDir: *agentDir, PinDir: *pinDir, AgentBin: self}
	switch os.Args[1] {
	case "agent":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		if err := secmon.RunAgent(ctx, secmon.AgentOptions{Dir: o.AgentDir, PinDir: o.PinDir, Log: log}); err != nil {
			fail(err)
		}
	case "hook":
		if fs.NArg() != 1 {
			usage()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		if err := secmon.Hook(ctx, o, fs.Arg(0), os.Stdin); err != nil {
			fail(err)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: berth-secmon agent|hook [--agent-dir DIR] [--pin-dir DIR] [REGISTRATION]")
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "berth-secmon:", err)
	os.Exit(1)
}
