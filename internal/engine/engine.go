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
	"github.com/berth-project/berth/internal/network"
	"github.com/berth-project/berth/internal/volume"
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
	// RuntimeArgs are global flags a runtime gets before every command
	// (Docker's runtimeArgs, Podman's --runtime-flag), by runtime name:
	// runsc's --platform, say. A container keeps those of its create.
	RuntimeArgs map[string][]string
	// Self is the command that runs berth's hidden helpers (the DNS
	// server, the monitor's clean-up), e.g. {"/usr/local/bin/berth"}.
	Self []string
	// CNIConfDirs are users' CNI configuration directories.
	CNIConfDirs []string
	// CNIPluginDirs are where CNI plugins are looked up.
	CNIPluginDirs []string
	// Warn, if set, is told of failures that do not stop an operation
	// (a clean-up step that found something already gone).
	Warn func(msg string)
	// Trust, if set, must allow a container's image at create and start.
	Trust ImageTrust
	// CgroupDriver is the cgroup driver of new containers: "cgroupfs"
	// (or "") or "systemd" (see cgroup.go); Open refuses systemd where
	// PID 1 is not systemd.
	CgroupDriver string
	// SpareMonitor keeps a monitor started ahead of need, handed to the
	// next container start (see spare.go): for a long-lived engine
	// (berthd); one that runs a container and exits (the CLI) would only
	// pay for it.
	SpareMonitor bool
}

// Engine is the container engine on one root.
type Engine struct {
	opts   Options
	store  *store
	images *image.Service
	net    *network.Manager
	vols   *volume.Store
	spares spareSlot
}

// Open opens (creating if needed) the engine's state.
func Open(ctx context.Context, o Options) (*Engine, error) {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if !validName(o.Namespace) {
		return nil, fmt.Errorf("invalid namespace %q", o.Namespace)
	}
	if o.Images == nil {
		return nil, fmt.Errorf("engine: no image store")
	}
	if err := CheckCgroupDriver(o.CgroupDriver); err != nil {
		return nil, err
	}
	for _, d := range []string{o.Root, o.RunRoot, filepath.Join(o.Root, "containers"), filepath.Join(o.RunRoot, "containers")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("engine state: %w", err)
		}
	}
	if len(o.CNIPluginDirs) == 0 {
		o.CNIPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}
	}
	net, err := network.New(network.Config{
		ConfDir:      filepath.Join(o.Root, "networks"),
		UserConfDirs: o.CNIConfDirs,
		PluginDirs:   o.CNIPluginDirs,
		StateDir:     filepath.Join(o.RunRoot, "network"),
		DNSBin:       append(append([]string{}, o.Self...), "--root", o.Root, "--runroot", o.RunRoot, "system", "dns"),
	})
	if err != nil {
		return nil, err
	}
	vols, err := volume.Open(filepath.Join(o.Root, "volumes"))
	if err != nil {
		return nil, err
	}
	e := &Engine{
		opts:   o,
		store:  &store{path: filepath.Join(o.Root, "engine.db"), ns: []byte(o.Namespace)},
		images: o.Images,
		net:    net,
		vols:   vols,
	}
	e.fillSpare()
	return e, nil
}

// Close releases the engine: it ends the spare monitor.
func (e *Engine) Close() error {
	e.closeSpare()
	return nil
}
