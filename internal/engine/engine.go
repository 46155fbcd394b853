// Package engine turns images in the store into running, networked, logged
// and supervised containers: the one engine both front ends use, the `berth`
// CLI and the CRI server.
//
// The engine is daemonless: every command opens the state under Root (a
// bbolt database and a directory per container) and RunRoot (volatile: the
// bundles, monitors' sockets, network namespaces), does its work and exits;
// containers go on under their monitors (internal/monitor). Concurrent
// commands are safe: the database serialises writes and names are reserved
// in the transaction that records the container.
//
// Every container belongs to a sandbox: the namespaces it shares with
// others (network, and optionally IPC, UTS, PID). `berth run` gives each
// container a sandbox of its own; the CRI server makes one per pod.
package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-project/berth/internal/image"
)

// Options configure an Engine.
type Options struct {
	Root      string // persistent state, e.g. /var/lib/berth
	RunRoot   string // volatile state, e.g. /run/berth
	Namespace string // "default" for the CLI, "k8s.io" for the CRI server
	Images    *image.Service
	// MonitorBin is the berth-monitor binary.
	MonitorBin string
	// Runtimes maps a runtime name (--runtime) to its binary; Default
	// names the one used when a container names none.
	Runtimes       map[string]string
	DefaultRuntime string
	// Self is the command that runs berth's hidden helpers (the DNS
	// server), e.g. {"/usr/local/bin/berth"}.
	Self []string
	// CNIConfDirs are users' CNI configuration directories.
	CNIConfDirs []string
	// CNIPluginDirs are where CNI plugins are looked up.
	CNIPluginDirs []string
}

// Engine is the container engine on one root.
type Engine struct {
	opts Options
}

// Open opens (creating if needed) the engine's state.
func Open(ctx context.Context, o Options) (*Engine, error) {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	for _, d := range []string{o.Root, o.RunRoot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("engine state: %w", err)
		}
	}
	_ = filepath.Join
	return &Engine{opts: o}, nil
}

// Close releases the engine.
func (e *Engine) Close() error { return nil }
