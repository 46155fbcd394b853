// Command berthd is Berth's CRI daemon: it serves k8s.io/cri-api v1's
// RuntimeService and ImageService on a unix socket for kubelet. It only
// parses flags, opens the store and wires internal/cri to a gRPC server.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v3"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/berth-project/berth/internal/cri"
	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/trust"
)

var version = "0.1.0-dev"

// stopTimeout bounds the graceful stop: RPCs still running after it (a
// long pull) are cut off.
const stopTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app().Run(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		stop()
		os.Exit(1)
	}
}

func app() *cli.Command {
	return &cli.Command{
		Name:    "berthd",
		Usage:   "Berth's CRI server for kubelet",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "a TOML file whose keys are these flags' names (flags given on the command line win)"},
			&cli.StringFlag{Name: "root", Value: "/var/lib/berth", Usage: "directory for Berth's state (the image store)"},
			&cli.StringFlag{Name: "state", Aliases: []string{"runroot"}, Value: "/run/berth", Usage: "directory for volatile state (namespaces, monitors' sockets)"},
			&cli.StringFlag{Name: "socket", Value: "/run/berth/berth.sock", Usage: "unix socket kubelet connects to"},
			&cli.StringFlag{Name: "cni-conf-dir", Value: "/etc/cni/net.d", Usage: "directory of CNI network configurations"},
			&cli.StringFlag{Name: "cni-bin-dir", Value: "/usr/lib/cni", Usage: "comma-separated directories of CNI plugins"},
			&cli.StringFlag{Name: "registries-config", Usage: "registries file (default ROOT/registries.json, then /etc/berth/registries.json)"},
			&cli.StringFlag{Name: "streaming-address", Value: cri.DefaultStreamingAddress, Usage: "host:port of the streaming server for exec, attach and port-forward (port 0: chosen at start); keep it on loopback, where kubelet reaches it"},
			&cli.StringFlag{Name: "policy", Usage: "signature policy, containers-policy.json (default ROOT/policy.json, then /etc/containers/policy.json)"},
			&cli.StringFlag{Name: "admission", Usage: "admission rules, YAML (default ROOT/admission.yaml)"},
			&cli.StringFlag{Name: "registries-d", Usage: "containers-registries.d directory (default ROOT/registries.d, then /etc/containers/registries.d)"},
			&cli.StringFlag{Name: "registries-conf", Usage: "containers-registries.conf v2 file (default ROOT/registries.conf, then /etc/containers/registries.conf), with the drop-ins of its registries.conf.d"},
			&cli.StringFlag{Name: "certs-dir", Value: "/etc/containers/certs.d", Usage: "per-registry TLS: DIR/HOST[:PORT]/ca.crt, *.cert and *.key"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "pod-network", Usage: "the CNI network pods join (default: the first conflist in --cni-conf-dir, else Berth's own berth-pods bridge)"},
			&cli.StringFlag{Name: "pod-subnet", Value: "10.85.0.0/16", Usage: "berth-pods' subnet until kubelet sends the node's pod CIDR"},
			&cli.StringSliceFlag{Name: "runtime", Usage: "a runtime handler NAME=PATH (RuntimeClass handler → OCI runtime binary); berth-runtime, runc and crun are found by themselves"},
			&cli.StringSliceFlag{Name: "runtime-arg", Usage: "a global flag a runtime handler gets before every command, NAME=FLAG (repeat for more; e.g. runsc=--platform=systrap)"},
			&cli.StringSliceFlag{Name: "sandbox-mode", Usage: "a runtime handler's pod sandbox NAME=MODE: pinned (pinned namespaces, no process; the default) or infra (an infra container under the handler, for sandboxed runtimes; the default of a handler whose binary is runsc)"},
			&cli.StringFlag{Name: "default-runtime", Value: "berth-runtime", Usage: "the handler pods without a RuntimeClass use"},
			&cli.StringFlag{Name: "metrics-address", Usage: "serve Prometheus metrics on HOST:PORT/metrics (default: none)"},
			&cli.StringFlag{Name: "cgroup-driver", Value: engine.CgroupDriverCgroupfs, Usage: "cgroupfs or systemd: how containers' cgroups are made (systemd: transient scopes in kubelet's slices, where systemd is PID 1); must match kubelet's cgroupDriver"},
			&cli.BoolFlag{Name: "seccomp-use-default-when-empty", Value: true, Usage: "a container whose config names no seccomp profile gets the runtime default (as CRI-O's setting of this name); false: unconfined, as the CRI's text and containerd (kubelet always names the profile)"},
			&cli.StringFlag{Name: "sandbox-image", Usage: "the infra container image of handlers with --sandbox-mode infra (default: berth-monitor --pause from an image berthd makes); other pods need none (pinned namespaces). It is kept pinned (never garbage-collected nor removed by RemoveImage)"},
		},
		HideHelpCommand: true,
		Action:          serve,
	}
}

func serve(ctx context.Context, cmd *cli.Command) error {
	if cmd.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", cmd.Args().First())
	}
	if p := cmd.String("config"); p != "" {
		if err := applyConfig(cmd, p); err != nil {
			return err
		}
	}
	// Before the socket: a driver this host cannot serve is a
	// configuration error, not something for kubelet to find out.
	if err := engine.CheckCgroupDriver(cmd.String("cgroup-driver")); err != nil {
		return fmt.Errorf("--cgroup-driver %s: %w", cmd.String("cgroup-driver"), err)
	}
	modes, err := sandboxModes(cmd)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cmd.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", cmd.String("log-level"))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// The streaming library logs through klog: into the same log.
	klog.SetSlogLogger(log.With("component", "streaming"))

	root, err := filepath.Abs(cmd.String("root"))
	if err != nil {
		return err
	}
	cfgPaths := []string{filepath.Join(root, "registries.json"), "/etc/berth/registries.json"}
	if p := cmd.String("registries-config"); p != "" {
		cfgPaths = []string{p}
	}
	regCfg, err := registry.LoadConfig(cfgPaths...)
	if err != nil {
		return err
	}
	regCfg.CertsDir = cmd.String("certs-dir")
	confPaths, dropIns := registry.RegistriesConfPaths(root, cmd.String("registries-conf"))
	if err := regCfg.LoadRegistriesConfDirs(confPaths, dropIns); err != nil {
		return err
	}
	// The socket first: a second berthd is refused before it opens (and
	// perhaps cleans up) the store the first one serves.
	l, err := cri.Listen(ctx, cmd.String("socket"))
	if err != nil {
		return err
	}
	defer l.Close()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("create --root %s: %w", root, err)
	}
	images, err := image.Open(root, registry.New(registry.Options{Config: regCfg}))
	if err != nil {
		return fmt.Errorf("open the image store in %s: %w", root, err)
	}
	defer images.Close()
	images.Waiting = func(msg string) { log.Info(msg) }
	// Every pull (PullImage) is checked against the signature policy
	// before anything is stored; decisions go to ROOT/trust-audit.jsonl.
	policies := []string{filepath.Join(root, "policy.json"), "/etc/containers/policy.json"}
	if p := cmd.String("policy"); p != "" {
		policies = []string{p}
	}
	admission := cmd.String("admission")
	if admission == "" {
		admission = filepath.Join(root, "admission.yaml")
	}
	checker := trust.New(trust.Options{Root: root, PolicyPaths: policies, AdmissionPath: admission, Registry: images.Registry, Images: images,
		RegistriesDirs: trust.RegistriesDirs(root, cmd.String("registries-d")),
		OnDecision: func(d trust.Decision) {
			if !d.Allowed {
				log.Warn("image refused", "image", d.Reference, "digest", d.Digest, "stage", d.Stage, "reason", d.Reason)
			}
		}})
	images.Verify = checker.VerifyPull

	runRoot, err := filepath.Abs(cmd.String("state"))
	if err != nil {
		return err
	}
	eng, runtimeBins, err := openEngine(ctx, cmd, root, runRoot, images, checker, log)
	if err != nil {
		return err
	}
	defer eng.Close()
	runtimes := make([]string, 0, len(runtimeBins))
	for n, bin := range runtimeBins {
		runtimes = append(runtimes, n)
		// runsc cannot run a pod's containers without an infra sandbox:
		// infra unless the operator said otherwise.
		if _, set := modes[n]; !set && filepath.Base(bin) == "runsc" {
			modes[n] = cri.SandboxModeInfra
			if n == cmd.String("default-runtime") {
				modes[""] = cri.SandboxModeInfra
			}
		}
	}
	sort.Strings(runtimes)
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the berthd binary: %w", err)
	}
	sandboxImage := ""
	if imgs := splitList(cmd.String("sandbox-image")); len(imgs) > 0 {
		sandboxImage = imgs[0]
	}
	srv, err := cri.New(cri.Options{
		Images:        images,
		Root:          root,
		Engine:        eng,
		CNIConfDirs:   []string{cmd.String("cni-conf-dir")},
		CNIPluginDirs: splitList(cmd.String("cni-bin-dir")),
		PodNetwork:    cmd.String("pod-network"),
		PodSubnet:     cmd.String("pod-subnet"),
		Runtimes:      runtimes,
		PinnedImages:  splitList(cmd.String("sandbox-image")),
		SandboxModes:  modes,
		PauseBinary:   findBinary(self, "berth-monitor"),
		SandboxImage:  sandboxImage,

		SeccompEmptyUnconfined: !cmd.Bool("seccomp-use-default-when-empty"),
		Version:                version,
		Logger:                 log,
	})
	if err != nil {
		return err
	}
	if _, err := srv.StartStreaming(cmd.String("streaming-address")); err != nil {
		return err
	}
	defer srv.StopStreaming()
	metrics := cri.NewMetrics(eng)
	g := grpc.NewServer(metrics.ServerOptions(log)...)
	srv.Register(g)
	if addr := cmd.String("metrics-address"); addr != "" {
		stopMetrics, err := serveMetrics(addr, metrics, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	log.Info("serving the CRI", "socket", cmd.String("socket"), "root", root, "version", version)
	return serveUntilDone(ctx, log, g, l)
}

// serveUntilDone serves g on l until ctx is done (SIGTERM, SIGINT), then
// stops gracefully, cutting off what still runs after stopTimeout.
func serveUntilDone(ctx context.Context, log *slog.Logger, g *grpc.Server, l net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- g.Serve(l) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("stopping")
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(stopTimeout):
		log.Warn("RPCs still running after the stop timeout: cutting them off", "timeout", stopTimeout)
		g.Stop()
	}
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
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

// openEngine opens the engine on namespace k8s.io with the runtime
// handlers (name → binary): berth-runtime, runc, crun and runsc where
// found, and --runtime ones.
func openEngine(ctx context.Context, cmd *cli.Command, root, runRoot string, images *image.Service, checker *trust.Checker, log *slog.Logger) (*engine.Engine, map[string]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find the berthd binary: %w", err)
	}
	berth := findBinary(self, "berth")
	if berth == "" {
		return nil, nil, fmt.Errorf("the berth binary (next to berthd or on $PATH) is needed: monitors run `berth system cleanup` when a container ends")
	}
	o := engine.Options{
		Root: root, RunRoot: runRoot, Namespace: "k8s.io", Images: images,
		MonitorBin:    findBinary(self, "berth-monitor"),
		Runtimes:      map[string]string{},
		Self:          []string{berth},
		CNIConfDirs:   []string{cmd.String("cni-conf-dir")},
		CNIPluginDirs: splitList(cmd.String("cni-bin-dir")),
		Warn:          func(msg string) { log.Warn(msg) },
		// CreateContainer and StartContainer check the image against
		// the policy and rules as they are at that moment.
		Trust:        checker,
		CgroupDriver: cmd.String("cgroup-driver"),
		// A monitor started ahead of each container start, off its
		// critical path.
		SpareMonitor: true,
	}
	if o.MonitorBin == "" {
		return nil, nil, fmt.Errorf("the berth-monitor binary (next to berthd or on $PATH) is needed")
	}
	for _, n := range []string{"berth-runtime", "runc", "crun", "runsc"} {
		if p := findBinary(self, n); p != "" {
			o.Runtimes[n] = p
		}
	}
	for _, kv := range cmd.StringSlice("runtime") {
		name, p, ok := strings.Cut(kv, "=")
		if !ok || name == "" || p == "" {
			return nil, nil, fmt.Errorf("--runtime %q: want NAME=PATH", kv)
		}
		if o.Runtimes[name], err = filepath.Abs(p); err != nil {
			return nil, nil, err
		}
	}
	o.RuntimeArgs, err = runtimeArgs(cmd.StringSlice("runtime-arg"), o.Runtimes)
	if err != nil {
		return nil, nil, err
	}
	o.DefaultRuntime = cmd.String("default-runtime")
	if _, ok := o.Runtimes[o.DefaultRuntime]; !ok {
		return nil, nil, fmt.Errorf("--default-runtime %s: no such runtime binary found (have %v)", o.DefaultRuntime, o.Runtimes)
	}
	eng, err := engine.Open(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	return eng, o.Runtimes, nil
}

// sandboxModes reads --sandbox-mode NAME=MODE; the default handler ("")
// has --default-runtime's mode.
func sandboxModes(cmd *cli.Command) (map[string]string, error) {
	modes := map[string]string{}
	for _, kv := range cmd.StringSlice("sandbox-mode") {
		name, mode, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--sandbox-mode %q: want NAME=MODE (pinned or infra)", kv)
		}
		m, err := cri.ParseSandboxMode(mode)
		if err != nil {
			return nil, fmt.Errorf("--sandbox-mode %s: %w", name, err)
		}
		modes[name] = m
	}
	if m, ok := modes[cmd.String("default-runtime")]; ok {
		modes[""] = m
	}
	return modes, nil
}

// runtimeArgs reads --runtime-arg NAME=FLAG values: each must name a
// known handler and be a flag (starting with "-"), so that nothing given
// here can stand in for the runtime's command.
func runtimeArgs(kvs []string, runtimes map[string]string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, kv := range kvs {
		name, flag, ok := strings.Cut(kv, "=")
		if !ok || name == "" || !strings.HasPrefix(flag, "-") || flag == "-" || flag == "--" {
			return nil, fmt.Errorf("--runtime-arg %q: want NAME=FLAG, the flag starting with -", kv)
		}
		if _, known := runtimes[name]; !known {
			return nil, fmt.Errorf("--runtime-arg %s: no runtime handler %q", kv, name)
		}
		out[name] = append(out[name], flag)
	}
	return out, nil
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

// applyConfig sets every flag not given on the command line from the TOML
// file's key of the same name. runtime handlers may also be a table:
// [runtimes] NAME = "PATH".
func applyConfig(cmd *cli.Command, path string) error {
	var doc map[string]any
	_, err := toml.DecodeFile(path, &doc)
	if err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := doc[k]
		if k == "runtimes" {
			tbl, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("--config %s: runtimes must be a table of NAME = \"PATH\" or NAME = { path = \"PATH\", sandbox_mode = \"infra\", args = [\"--flag\"] }", path)
			}
			if cmd.IsSet("runtime") {
				continue
			}
			modesGiven := cmd.IsSet("sandbox-mode") // the command line wins
			argsGiven := cmd.IsSet("runtime-arg")
			names := make([]string, 0, len(tbl))
			for n := range tbl {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				p, mode, args, err := runtimeEntry(tbl[n])
				if err != nil {
					return fmt.Errorf("--config %s: runtimes.%s: %w", path, n, err)
				}
				if err := cmd.Set("runtime", n+"="+p); err != nil {
					return fmt.Errorf("--config %s: runtimes.%s: %w", path, n, err)
				}
				if mode != "" && !modesGiven {
					if err := cmd.Set("sandbox-mode", n+"="+mode); err != nil {
						return fmt.Errorf("--config %s: runtimes.%s.sandbox_mode: %w", path, n, err)
					}
				}
				for _, a := range args {
					if argsGiven {
						break
					}
					if err := cmd.Set("runtime-arg", n+"="+a); err != nil {
						return fmt.Errorf("--config %s: runtimes.%s.args: %w", path, n, err)
					}
				}
			}
			continue
		}
		if !known[k] || k == "config" {
			return fmt.Errorf("--config %s: unknown setting %q (the settings are berthd's flag names; see berthd --help)", path, k)
		}
		if cmd.IsSet(k) {
			continue
		}
		var vals []string
		switch x := v.(type) {
		case string:
			vals = []string{x}
		case int64, float64, bool:
			vals = []string{fmt.Sprint(x)}
		case []any:
			for _, e := range x {
				vals = append(vals, fmt.Sprint(e))
			}
		default:
			return fmt.Errorf("--config %s: %s: want a string, number, boolean or list", path, k)
		}
		for _, val := range vals {
			if err := cmd.Set(k, val); err != nil {
				return fmt.Errorf("--config %s: %s = %q: %w", path, k, val, err)
			}
		}
	}
	return nil
}

// runtimeEntry reads a [runtimes] entry: NAME = "PATH", or a table
// NAME = { path = "PATH", sandbox_mode = "infra", args = ["--flag"] }.
func runtimeEntry(v any) (path, mode string, args []string, err error) {
	const want = "want a path or a table { path = \"PATH\", sandbox_mode = \"infra\", args = [\"--flag\"] }"
	switch x := v.(type) {
	case string:
		return x, "", nil, nil
	case map[string]any:
		for k, f := range x {
			if k != "args" && k != "path" && k != "sandbox_mode" {
				return "", "", nil, fmt.Errorf("unknown key %q (want path, sandbox_mode and args)", k)
			}
			if k == "args" {
				list, ok := f.([]any)
				if !ok {
					return "", "", nil, errors.New("args must be a list of strings")
				}
				for _, e := range list {
					s, ok := e.(string)
					if !ok {
						return "", "", nil, errors.New("args must be a list of strings")
					}
					args = append(args, s)
				}
				continue
			}
			s, ok := f.(string)
			switch {
			case !ok:
				return "", "", nil, fmt.Errorf("%s must be a string", k)
			case k == "path":
				path = s
			default: // sandbox_mode
				if mode, err = cri.ParseSandboxMode(s); err != nil {
					return "", "", nil, err
				}
			}
		}
		if path == "" {
			return "", "", nil, errors.New("path is missing")
		}
		return path, mode, args, nil
	}
	return "", "", nil, errors.New(want)
}

// serveMetrics serves the metrics on addr until the returned stop is
// called.
func serveMetrics(addr string, m *cri.Metrics, log *slog.Logger) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	log.Info("serving metrics", "address", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, nil
}
