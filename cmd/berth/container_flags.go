package main

// The flags of `berth run` and `berth create`, and their translation into
// the engine's CreateOptions. Every value is checked here, so that a bad one
// is reported as Docker's CLI reports it (`invalid argument "8080:abc" for
// "-p, --publish" flag: ...`, exit 125) before anything is created.

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/docker/go-units"
	"github.com/moby/sys/capability"
	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/oci"
)

// invalidArg is a flag's bad value, worded as Docker's CLI words it.
type invalidArg struct {
	flag  string // as shown: "-p, --publish" or "--memory-swap"
	value string
	err   error
}

func (e *invalidArg) Error() string {
	return fmt.Sprintf("invalid argument %q for %q flag: %v", e.value, e.flag, e.err)
}

func (e *invalidArg) Unwrap() error { return e.err }

// flagShown is how Docker names a flag in errors: "-p, --publish".
func flagShown(cmd *cli.Command, name string) string {
	for _, f := range cmd.Flags {
		names := f.Names()
		if len(names) == 0 || names[0] != name {
			continue
		}
		var short, long []string
		for _, n := range names {
			if len(n) == 1 {
				short = append(short, "-"+n)
			} else {
				long = append(long, "--"+n)
			}
		}
		return strings.Join(append(short, long...), ", ")
	}
	return "--" + name
}

// Files named by flags (--env-file, --label-file) are read whole; a bigger
// one is surely a mistake and must not exhaust memory.
const maxFlagFile = 4 << 20

// createFlags are the flags of run and create.
func createFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run in the background and print the container ID"},
		&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep stdin open"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-terminal"},
		&cli.BoolFlag{Name: "rm", Usage: "remove the container when it exits"},
		&cli.StringFlag{Name: "name", Usage: "the container's name"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable (KEY=VALUE, or KEY to copy it from here)"},
		&cli.StringSliceFlag{Name: "env-file", Usage: "read environment variables from a file", TakesFile: true},
		&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory inside the container (absolute)"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "user[:group] (names or numbers)"},
		&cli.StringFlag{Name: "entrypoint", Usage: "override the image's entrypoint (\"\" clears it)"},
		&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "set a label (KEY=VALUE)"},
		&cli.StringSliceFlag{Name: "label-file", Usage: "read labels from a file", TakesFile: true},
		&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish a port: [ip:][hostPort:]containerPort[/tcp|udp|sctp], ranges as 8000-8001:80-81"},
		&cli.BoolFlag{Name: "publish-all", Aliases: []string{"P"}, Usage: "publish every exposed port on a free host port"},
		&cli.StringSliceFlag{Name: "expose", Usage: "expose a port or range (80, 8000-8010/udp) without publishing it"},
		&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "mount NAME:/ctr, /host:/ctr or /ctr (anonymous), with :ro or :rw"},
		&cli.StringSliceFlag{Name: "mount", Usage: "mount: type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=64m][,tmpfs-mode=1777]"},
		&cli.StringSliceFlag{Name: "tmpfs", Usage: "mount a tmpfs: /path[:options such as size=64m,mode=1777]"},
		&cli.StringSliceFlag{Name: "network", Aliases: []string{"net"}, Usage: "none, host, bridge or a network's name (repeat to join several)"},
		&cli.StringSliceFlag{Name: "network-alias", Aliases: []string{"net-alias"}, Usage: "another name for the container on its network"},
		&cli.StringFlag{Name: "hostname", Aliases: []string{"h"}, Usage: "the container's host name"},
		&cli.StringSliceFlag{Name: "dns", Usage: "a DNS server"},
		&cli.StringSliceFlag{Name: "dns-search", Usage: "a DNS search domain"},
		&cli.StringSliceFlag{Name: "dns-option", Usage: "a resolv.conf option"},
		&cli.StringSliceFlag{Name: "add-host", Usage: "add HOST:IP to /etc/hosts"},
		&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Usage: "memory limit (bytes, or with k, m, g: 64m)"},
		&cli.StringFlag{Name: "memory-swap", Usage: "memory plus swap limit (-1: unlimited swap)"},
		&cli.StringFlag{Name: "memory-reservation", Usage: "memory soft limit"},
		&cli.StringFlag{Name: "cpus", Usage: "number of CPUs (decimal: 1.5)"},
		&cli.StringFlag{Name: "cpu-shares", Aliases: []string{"c"}, Usage: "relative CPU weight"},
		&cli.StringFlag{Name: "cpuset-cpus", Usage: "CPUs allowed (0-3, 0,1)"},
		&cli.StringFlag{Name: "pids-limit", Usage: "maximum number of processes (-1: unlimited)"},
		&cli.BoolFlag{Name: "read-only", Usage: "mount the root file system read-only"},
		&cli.StringSliceFlag{Name: "cap-add", Usage: "add a capability (NET_ADMIN, ALL)"},
		&cli.StringSliceFlag{Name: "cap-drop", Usage: "drop a capability"},
		&cli.StringSliceFlag{Name: "security-opt", Usage: "no-new-privileges, seccomp=FILE, seccomp=unconfined or monitor=RULES.yaml"},
		&cli.BoolFlag{Name: "privileged", Usage: "give the container every capability and device"},
		&cli.StringSliceFlag{Name: "device", Usage: "give the container a host device: HOST[:CONTAINER][:PERMISSIONS] (permissions some of rwm)"},
		&cli.BoolFlag{Name: "init", Usage: "run an init process (tini) as PID 1 that reaps zombies and forwards signals"},
		&cli.StringFlag{Name: "restart", Value: "no", Usage: "no, on-failure[:max-retries], always or unless-stopped"},
		&cli.StringFlag{Name: "stop-signal", Usage: "signal that stops the container (default SIGTERM)"},
		&cli.StringFlag{Name: "stop-timeout", Usage: "seconds to wait after the stop signal before killing"},
		&cli.StringFlag{Name: "health-cmd", Usage: "command run (by the shell) to check health"},
		&cli.StringFlag{Name: "health-interval", Usage: "time between checks (30s)"},
		&cli.StringFlag{Name: "health-timeout", Usage: "time a check may take"},
		&cli.StringFlag{Name: "health-retries", Usage: "consecutive failures that make the container unhealthy"},
		&cli.StringFlag{Name: "health-start-period", Usage: "time to start before failures count"},
		&cli.BoolFlag{Name: "no-healthcheck", Usage: "disable the image's healthcheck"},
		&cli.StringFlag{Name: "runtime", Usage: "OCI runtime for this container (berth-runtime, runc, crun)"},
		&cli.StringFlag{Name: "pull", Value: "missing", Usage: "pull the image: missing, always or never"},
		&cli.StringFlag{Name: "platform", Usage: "os/arch[/variant] of the image to pull"},
		&cli.StringSliceFlag{Name: "sysctl", Usage: "set a namespaced kernel parameter (KEY=VALUE)"},
		&cli.StringFlag{Name: "ipc", Usage: "IPC namespace: private, shareable, host, none or container:NAME"},
		&cli.StringFlag{Name: "pid", Usage: "PID namespace: host or container:NAME"},
		&cli.StringFlag{Name: "uts", Usage: "UTS namespace: host"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "do not show the pull's progress"},
	}
}

// createRequest is what the flags and arguments of run/create ask for.
type createRequest struct {
	opts    engine.CreateOptions
	detach  bool
	quiet   bool
	tty     bool
	stdin   bool
	sigs    bool // forward signals (run without a terminal)
	imgName string
}

// parseCreate turns run/create's flags and arguments (IMAGE [COMMAND
// [ARG...]]) into a request, checking every value.
func parseCreate(cmd *cli.Command, getenv func(string) (string, bool)) (*createRequest, error) {
	args := cmd.Args().Slice()
	if len(args) == 0 {
		return nil, fmt.Errorf("%q requires at least 1 argument: berth %s [OPTIONS] IMAGE [COMMAND] [ARG...]", "berth "+cmd.Name, cmd.Name)
	}
	bad := func(name, value string, err error) error {
		return &invalidArg{flag: flagShown(cmd, name), value: value, err: err}
	}
	r := &createRequest{
		detach:  cmd.Bool("detach"),
		quiet:   cmd.Bool("quiet"),
		tty:     cmd.Bool("tty"),
		stdin:   cmd.Bool("interactive"),
		imgName: args[0],
	}
	o := &r.opts
	c := &o.Config
	h := &o.HostConfig
	c.Image = args[0]
	if len(args) > 1 {
		c.Cmd = args[1:]
	}
	c.Tty = r.tty
	c.OpenStdin = r.stdin
	c.AttachStdin = r.stdin && !r.detach
	c.StdinOnce = r.stdin && !r.detach
	c.AttachStdout = !r.detach
	c.AttachStderr = !r.detach
	h.AutoRemove = cmd.Bool("rm")

	if name := cmd.String("name"); name != "" {
		if err := validName(name); err != nil {
			return nil, bad("name", name, err)
		}
		o.Name = strings.TrimPrefix(name, "/")
	}
	if cmd.IsSet("entrypoint") {
		c.Entrypoint = []string{}
		if ep := cmd.String("entrypoint"); ep != "" {
			c.Entrypoint = []string{ep}
		}
	}
	if w := cmd.String("workdir"); w != "" {
		if !filepath.IsAbs(w) {
			return nil, bad("workdir", w, errors.New("the working directory must be an absolute path"))
		}
		c.WorkingDir = w
	}
	c.User = cmd.String("user")
	if hn := cmd.String("hostname"); hn != "" {
		if err := validHostname(hn); err != nil {
			return nil, bad("hostname", hn, err)
		}
		c.Hostname = hn
	}

	// Environment: files first, then -e, so -e wins as in Docker.
	for _, f := range cmd.StringSlice("env-file") {
		env, err := readKVFile(f, getenv)
		if err != nil {
			return nil, bad("env-file", f, err)
		}
		c.Env = append(c.Env, env...)
	}
	for _, e := range cmd.StringSlice("env") {
		kv, ok, err := parseEnv(e, getenv)
		if err != nil {
			return nil, bad("env", e, err)
		}
		if ok {
			c.Env = append(c.Env, kv)
		}
	}

	labels := map[string]string{}
	for _, f := range cmd.StringSlice("label-file") {
		lines, err := readKVFile(f, nil)
		if err != nil {
			return nil, bad("label-file", f, err)
		}
		for _, l := range lines {
			k, v, _ := strings.Cut(l, "=")
			labels[k] = v
		}
	}
	for _, l := range cmd.StringSlice("label") {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, bad("label", l, errors.New("the label's key is empty"))
		}
		labels[k] = v
	}
	if len(labels) > 0 {
		c.Labels = labels
	}

	// Ports.
	for _, p := range cmd.StringSlice("publish") {
		maps, err := parsePublish(p)
		if err != nil {
			return nil, bad("publish", p, err)
		}
		if h.PortBindings == nil {
			h.PortBindings = map[string][]engine.PortBinding{}
		}
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		for _, m := range maps {
			h.PortBindings[m.port] = append(h.PortBindings[m.port], m.binding)
			c.ExposedPorts[m.port] = struct{}{}
		}
	}
	for _, e := range cmd.StringSlice("expose") {
		ports, err := parseExpose(e)
		if err != nil {
			return nil, bad("expose", e, err)
		}
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ports {
			c.ExposedPorts[p] = struct{}{}
		}
	}
	h.PublishAllPorts = cmd.Bool("publish-all")

	// Storage. Two mounts on one target are refused here, as Docker does,
	// rather than letting the second silently hide the first.
	targets := map[string]bool{}
	claim := func(flag, value, target string) error {
		if targets[target] {
			return bad(flag, value, fmt.Errorf("duplicate mount point %s", target))
		}
		targets[target] = true
		return nil
	}
	for _, v := range cmd.StringSlice("volume") {
		bind, target, err := parseVolume(v)
		if err != nil {
			return nil, bad("volume", v, err)
		}
		if err := claim("volume", v, target); err != nil {
			return nil, err
		}
		h.Binds = append(h.Binds, bind)
	}
	for _, m := range cmd.StringSlice("mount") {
		mt, err := parseMount(m)
		if err != nil {
			return nil, bad("mount", m, err)
		}
		if err := claim("mount", m, mt.Target); err != nil {
			return nil, err
		}
		h.Mounts = append(h.Mounts, mt)
	}
	for _, t := range cmd.StringSlice("tmpfs") {
		path, opts, err := parseTmpfs(t)
		if err != nil {
			return nil, bad("tmpfs", t, err)
		}
		if err := claim("tmpfs", t, path); err != nil {
			return nil, err
		}
		if h.Tmpfs == nil {
			h.Tmpfs = map[string]string{}
		}
		h.Tmpfs[path] = opts
	}

	// Network.
	if err := parseNetworks(cmd, o, bad); err != nil {
		return nil, err
	}
	for _, d := range cmd.StringSlice("dns") {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, bad("dns", d, errors.New("not an IP address"))
		}
		h.DNS = append(h.DNS, a.String())
	}
	for _, d := range cmd.StringSlice("dns-search") {
		if d != "." {
			if err := validHostname(d); err != nil {
				return nil, bad("dns-search", d, err)
			}
		}
		h.DNSSearch = append(h.DNSSearch, d)
	}
	for _, d := range cmd.StringSlice("dns-option") {
		if d == "" || strings.ContainsAny(d, " \t\n") {
			return nil, bad("dns-option", d, errors.New("an option is one word, such as ndots:2"))
		}
		h.DNSOptions = append(h.DNSOptions, d)
	}
	for _, a := range cmd.StringSlice("add-host") {
		e, err := parseAddHost(a)
		if err != nil {
			return nil, bad("add-host", a, err)
		}
		h.ExtraHosts = append(h.ExtraHosts, e)
	}

	// Resources.
	var err error
	sizes := []struct {
		name string
		dst  *int64
		neg  bool // -1 allowed
	}{{"memory", &h.Memory, false}, {"memory-swap", &h.MemorySwap, true}, {"memory-reservation", &h.MemoryReservation, false}}
	for _, s := range sizes {
		v := cmd.String(s.name)
		if v == "" {
			continue
		}
		if *s.dst, err = parseMemory(v, s.neg); err != nil {
			return nil, bad(s.name, v, err)
		}
	}
	if h.MemorySwap > 0 {
		if h.Memory == 0 {
			return nil, bad("memory-swap", cmd.String("memory-swap"), errors.New("a memory+swap limit needs --memory too"))
		}
		if h.MemorySwap < h.Memory {
			return nil, bad("memory-swap", cmd.String("memory-swap"), errors.New("the memory+swap limit must not be below --memory"))
		}
	}
	if h.Memory > 0 && h.MemoryReservation > h.Memory {
		return nil, bad("memory-reservation", cmd.String("memory-reservation"), errors.New("the reservation must not be above --memory"))
	}
	if v := cmd.String("cpus"); v != "" {
		if h.NanoCPUs, err = parseCPUs(v); err != nil {
			return nil, bad("cpus", v, err)
		}
	}
	if v := cmd.String("cpu-shares"); v != "" {
		if h.CPUShares, err = strconv.ParseInt(v, 10, 64); err != nil || h.CPUShares < 0 {
			return nil, bad("cpu-shares", v, errors.New("not a whole number of shares"))
		}
	}
	if v := cmd.String("cpuset-cpus"); v != "" {
		if err := validCPUSet(v); err != nil {
			return nil, bad("cpuset-cpus", v, err)
		}
		h.CPUSetCPUs = v
	}
	if v := cmd.String("pids-limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < -1 {
			return nil, bad("pids-limit", v, errors.New("not a number of processes (-1: unlimited)"))
		}
		h.PidsLimit = &n
	}

	// Security.
	h.ReadonlyRootfs = cmd.Bool("read-only")
	h.Privileged = cmd.Bool("privileged")
	for _, f := range []struct {
		name string
		dst  *[]string
	}{{"cap-add", &h.CapAdd}, {"cap-drop", &h.CapDrop}} {
		for _, v := range cmd.StringSlice(f.name) {
			capName, err := parseCapability(v)
			if err != nil {
				return nil, bad(f.name, v, err)
			}
			*f.dst = append(*f.dst, capName)
		}
	}
	for _, v := range cmd.StringSlice("device") {
		d, err := engine.ParseDevice(v)
		if err != nil {
			return nil, bad("device", v, err)
		}
		h.Devices = append(h.Devices, d)
	}
	for _, v := range cmd.StringSlice("security-opt") {
		s, err := parseSecurityOpt(v)
		if err != nil {
			return nil, bad("security-opt", v, err)
		}
		h.SecurityOpt = append(h.SecurityOpt, s)
	}
	if cmd.IsSet("init") {
		b := cmd.Bool("init")
		h.Init = &b
	}
	for _, s := range cmd.StringSlice("sysctl") {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, bad("sysctl", s, errors.New("want KEY=VALUE"))
		}
		if strings.Contains(k, "..") || strings.ContainsAny(k, " \t\n\x00") {
			return nil, bad("sysctl", s, errors.New("not a kernel parameter's name"))
		}
		if h.Sysctls == nil {
			h.Sysctls = map[string]string{}
		}
		h.Sysctls[k] = v
	}
	for _, ns := range []struct {
		name    string
		dst     *string
		allowed []string
	}{
		{"ipc", &h.IpcMode, []string{"", "private", "shareable", "host", "none"}},
		{"pid", &h.PidMode, []string{"", "host"}},
		{"uts", &h.UTSMode, []string{"", "host"}},
	} {
		v := cmd.String(ns.name)
		if err := validNamespaceMode(v, ns.allowed, ns.name != "uts"); err != nil {
			return nil, bad(ns.name, v, err)
		}
		*ns.dst = v
	}

	// Lifecycle.
	rp := cmd.String("restart")
	if h.RestartPolicy, err = parseRestart(rp); err != nil {
		return nil, bad("restart", rp, err)
	}
	if h.AutoRemove && h.RestartPolicy.Name != "no" && h.RestartPolicy.Name != "" {
		return nil, errors.New("conflicting options: --restart and --rm")
	}
	if s := cmd.String("stop-signal"); s != "" {
		if c.StopSignal, err = parseSignal(s); err != nil {
			return nil, bad("stop-signal", s, err)
		}
	}
	if s := cmd.String("stop-timeout"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < -1 {
			return nil, bad("stop-timeout", s, errors.New("not a number of seconds"))
		}
		c.StopTimeout = &n
	}
	if c.Healthcheck, err = parseHealth(cmd, bad); err != nil {
		return nil, err
	}

	h.Runtime = cmd.String("runtime")
	switch o.Pull = cmd.String("pull"); o.Pull {
	case "missing", "always", "never":
	default:
		return nil, bad("pull", o.Pull, errors.New("want missing, always or never"))
	}
	if p := cmd.String("platform"); p != "" {
		if _, err := image.ParsePlatform(p); err != nil {
			return nil, bad("platform", p, err)
		}
		o.Platform = p
	}
	return r, nil
}

// parseNetworks fills NetworkMode, Networks and aliases from --network and
// --network-alias.
func parseNetworks(cmd *cli.Command, o *engine.CreateOptions, bad func(string, string, error) error) error {
	nets := cmd.StringSlice("network")
	aliases := cmd.StringSlice("network-alias")
	for _, a := range aliases {
		if err := validHostname(a); err != nil {
			return bad("network-alias", a, err)
		}
	}
	if len(nets) == 0 {
		if len(aliases) > 0 {
			return bad("network-alias", aliases[0], errors.New("aliases are only for user-defined networks (give --network NAME)"))
		}
		return nil
	}
	seen := map[string]bool{}
	for i, n := range nets {
		special := n == "none" || n == "host" || n == "bridge" || n == "default" || strings.HasPrefix(n, "container:")
		switch {
		case n == "":
			return bad("network", n, errors.New("the network's name is empty"))
		case strings.HasPrefix(n, "container:") && len(n) == len("container:"):
			return bad("network", n, errors.New("name the container: container:NAME"))
		case seen[n]:
			return bad("network", n, errors.New("the network is given twice"))
		case len(nets) > 1 && (n == "none" || n == "host" || strings.HasPrefix(n, "container:")):
			return bad("network", n, errors.New("none, host and container: cannot be combined with other networks"))
		}
		seen[n] = true
		if n == "default" {
			n = "bridge"
		}
		if i == 0 {
			o.HostConfig.NetworkMode = n
			if len(aliases) > 0 {
				if special {
					return bad("network-alias", aliases[0], errors.New("aliases are only for user-defined networks"))
				}
				o.Networks = map[string]engine.EndpointConfig{n: {Aliases: aliases}}
			}
			continue
		}
		if o.Networks == nil {
			o.Networks = map[string]engine.EndpointConfig{}
		}
		o.Networks[n] = engine.EndpointConfig{}
	}
	return nil
}

// parseHealth reads the --health-* flags; nil keeps the image's check.
func parseHealth(cmd *cli.Command, bad func(string, string, error) error) (*engine.HealthConfig, error) {
	anySet := false
	for _, n := range []string{"health-cmd", "health-interval", "health-timeout", "health-retries", "health-start-period"} {
		if cmd.IsSet(n) {
			anySet = true
		}
	}
	if cmd.Bool("no-healthcheck") {
		if anySet {
			return nil, errors.New("conflicting options: --no-healthcheck and --health-*")
		}
		return &engine.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !anySet {
		return nil, nil
	}
	hc := &engine.HealthConfig{}
	if c := cmd.String("health-cmd"); c != "" {
		hc.Test = []string{"CMD-SHELL", c}
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"health-interval", &hc.Interval}, {"health-timeout", &hc.Timeout}, {"health-start-period", &hc.StartPeriod}} {
		v := cmd.String(d.name)
		if v == "" {
			continue
		}
		t, err := time.ParseDuration(v)
		if err != nil || t < 0 {
			return nil, bad(d.name, v, errors.New("not a duration such as 30s or 1m30s"))
		}
		if t > 0 && t < time.Millisecond {
			return nil, bad(d.name, v, errors.New("must be at least 1ms"))
		}
		*d.dst = t
	}
	if v := cmd.String("health-retries"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, bad("health-retries", v, errors.New("not a number of retries"))
		}
		hc.Retries = n
	}
	return hc, nil
}

// portMap is one container port's binding from -p.
type portMap struct {
	port    string // "80/tcp"
	binding engine.PortBinding
}

// parsePublish parses -p: [ip:][hostPort:]containerPort[/proto], where a
// port may be a range (equal lengths on both sides) and an IPv6 address is
// bracketed. A missing or empty host port asks for a free one.
func parsePublish(s string) ([]portMap, error) {
	rest, proto, err := splitProto(s)
	if err != nil {
		return nil, err
	}
	var ip, hostPart, ctrPart string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return nil, errors.New("unclosed '[' around the IPv6 address")
		}
		ip = rest[1:end]
		after := rest[end+1:]
		if !strings.HasPrefix(after, ":") {
			return nil, errors.New("want [ip]:hostPort:containerPort")
		}
		var ok bool
		hostPart, ctrPart, ok = strings.Cut(after[1:], ":")
		if !ok {
			return nil, errors.New("want [ip]:hostPort:containerPort")
		}
		if ip == "" {
			return nil, errors.New("the host IP is empty")
		}
	} else {
		parts := strings.Split(rest, ":")
		switch len(parts) {
		case 1:
			ctrPart = parts[0]
		case 2:
			hostPart, ctrPart = parts[0], parts[1]
		case 3:
			ip, hostPart, ctrPart = parts[0], parts[1], parts[2]
			if ip == "" {
				return nil, errors.New("the host IP is empty")
			}
		default:
			return nil, errors.New("too many colons (put an IPv6 address in brackets: [::1]:8080:80)")
		}
	}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("invalid host IP %q", ip)
		}
		ip = a.String()
	}
	cLo, cHi, err := parsePortRange(ctrPart, false)
	if err != nil {
		return nil, fmt.Errorf("invalid container port %q: %w", ctrPart, err)
	}
	hLo, hHi := 0, 0
	if hostPart != "" {
		if hLo, hHi, err = parsePortRange(hostPart, true); err != nil {
			return nil, fmt.Errorf("invalid host port %q: %w", hostPart, err)
		}
		if hHi-hLo != cHi-cLo {
			return nil, errors.New("the host and container port ranges differ in length")
		}
	}
	var out []portMap
	for i := 0; i <= cHi-cLo; i++ {
		b := engine.PortBinding{HostIP: ip}
		if hostPart != "" && hLo != 0 {
			b.HostPort = strconv.Itoa(hLo + i)
		}
		out = append(out, portMap{port: fmt.Sprintf("%d/%s", cLo+i, proto), binding: b})
	}
	return out, nil
}

// splitProto splits "80/udp" into "80" and "udp" (default tcp).
func splitProto(s string) (string, string, error) {
	rest, proto, ok := strings.Cut(s, "/")
	if !ok {
		return s, "tcp", nil
	}
	proto = strings.ToLower(proto)
	switch proto {
	case "tcp", "udp", "sctp":
		return rest, proto, nil
	}
	return "", "", fmt.Errorf("unknown protocol %q (want tcp, udp or sctp)", proto)
}

// parsePortRange parses "80" or "8000-8010"; zero is only allowed on the
// host side (it means "any free port").
func parsePortRange(s string, zeroOK bool) (int, int, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := parsePort(lo, zeroOK && !isRange)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return a, a, nil
	}
	b, err := parsePort(hi, false)
	if err != nil {
		return 0, 0, err
	}
	if b < a {
		return 0, 0, errors.New("the range ends before it starts")
	}
	return a, b, nil
}

func parsePort(s string, zeroOK bool) (int, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a port number")
	}
	n, _ := strconv.Atoi(s)
	if n > 65535 || n == 0 && !zeroOK {
		return 0, errors.New("a port is between 1 and 65535")
	}
	return n, nil
}

// parseExpose parses --expose: "80", "80/udp", "8000-8010".
func parseExpose(s string) ([]string, error) {
	rest, proto, err := splitProto(s)
	if err != nil {
		return nil, err
	}
	lo, hi, err := parsePortRange(rest, false)
	if err != nil {
		return nil, err
	}
	var out []string
	for p := lo; p <= hi; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}

// volumeName is Docker's rule for a named volume.
var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// parseVolume checks -v: "name:/ctr[:opts]", "/host:/ctr[:opts]" or
// "/ctr". A host path starting with "." is made absolute, as Docker's CLI
// does. It returns the bind as the engine takes it and its target.
func parseVolume(s string) (bind, target string, err error) {
	if strings.ContainsRune(s, 0) {
		return "", "", errors.New("contains a NUL byte")
	}
	parts := strings.Split(s, ":")
	var src, opts string
	hasSrc := false
	switch len(parts) {
	case 1:
		target = parts[0]
	case 2:
		// "/ctr:ro" is an anonymous volume with options; "src:/ctr" a mount.
		if filepath.IsAbs(parts[0]) && !filepath.IsAbs(parts[1]) {
			target, opts = parts[0], parts[1]
		} else {
			src, target, hasSrc = parts[0], parts[1], true
		}
	case 3:
		src, target, opts, hasSrc = parts[0], parts[1], parts[2], true
	default:
		return "", "", errors.New("too many colons: want SOURCE:TARGET[:OPTIONS]")
	}
	if !filepath.IsAbs(target) {
		return "", "", fmt.Errorf("the mount target %q is not an absolute path", target)
	}
	target = filepath.Clean(target)
	if target == "/" {
		return "", "", errors.New("cannot mount on /")
	}
	if hasSrc && src == "" {
		return "", "", errors.New("the source is empty")
	}
	if src == "." || strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") || src == ".." {
		if src, err = filepath.Abs(src); err != nil {
			return "", "", err
		}
	}
	if src != "" && !filepath.IsAbs(src) && !volumeName.MatchString(src) {
		return "", "", fmt.Errorf("%q is neither an absolute host path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)", src)
	}
	if src != "" && filepath.IsAbs(src) {
		src = filepath.Clean(src)
	}
	if opts != "" {
		if err := validVolumeOpts(opts); err != nil {
			return "", "", err
		}
	}
	bind = target
	if src != "" {
		bind = src + ":" + target
	}
	if opts != "" {
		bind += ":" + opts
	}
	return bind, target, nil
}

func validVolumeOpts(opts string) error {
	modes := 0
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "ro", "rw":
			modes++
		case "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private", "rprivate":
		default:
			return fmt.Errorf("unknown volume option %q (want ro or rw)", o)
		}
	}
	if modes > 1 {
		return errors.New("give ro or rw, not both")
	}
	return nil
}

// parseMount parses --mount's comma-separated key=value list (CSV, so a
// value may be quoted), as Docker does.
func parseMount(s string) (engine.Mount, error) {
	r := csv.NewReader(strings.NewReader(s))
	fields, err := r.Read()
	if err != nil {
		return engine.Mount{}, fmt.Errorf("not a comma-separated list: %w", err)
	}
	m := engine.Mount{Type: "volume"}
	var size, mode string
	seen := map[string]bool{}
	for _, f := range fields {
		k, v, hasValue := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		switch k {
		case "src":
			k = "source"
		case "dst", "destination":
			k = "target"
		case "ro":
			k = "readonly"
		}
		if seen[k] {
			return engine.Mount{}, fmt.Errorf("%q is given twice", k)
		}
		seen[k] = true
		if !hasValue && k != "readonly" {
			return engine.Mount{}, fmt.Errorf("%q needs a value (%s=...)", k, k)
		}
		switch k {
		case "type":
			switch v {
			case "bind", "volume", "tmpfs", "image":
				m.Type = v
			default:
				return engine.Mount{}, fmt.Errorf("unknown mount type %q (want bind, volume, tmpfs or image)", v)
			}
		case "source":
			m.Source = v
		case "target":
			m.Target = v
		case "readonly":
			if !hasValue {
				m.ReadOnly = true
				break
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return engine.Mount{}, fmt.Errorf("readonly=%q is not true or false", v)
			}
			m.ReadOnly = b
		case "image-subpath":
			m.ImageSubPath = strings.TrimPrefix(v, "/")
		case "tmpfs-size":
			size = v
		case "tmpfs-mode":
			mode = v
		case "":
			return engine.Mount{}, errors.New("an empty field")
		default:
			return engine.Mount{}, fmt.Errorf("unknown option %q (want type, source, target, readonly, image-subpath, tmpfs-size, tmpfs-mode)", k)
		}
	}
	if m.Target == "" {
		return engine.Mount{}, errors.New("the target is missing (target=/path)")
	}
	if !filepath.IsAbs(m.Target) || strings.ContainsRune(m.Target, 0) {
		return engine.Mount{}, fmt.Errorf("the target %q is not an absolute path", m.Target)
	}
	m.Target = filepath.Clean(m.Target)
	if m.Target == "/" {
		return engine.Mount{}, errors.New("cannot mount on /")
	}
	if m.Type == "image" {
		if seen["readonly"] && !m.ReadOnly {
			return engine.Mount{}, errors.New("an image mount is read-only (readonly=false is not possible)")
		}
		if m.Source == "" {
			return engine.Mount{}, errors.New("an image mount needs source=IMAGE")
		}
		m.ReadOnly = true
	} else if m.ImageSubPath != "" {
		return engine.Mount{}, fmt.Errorf("image-subpath is for type=image, not %s", m.Type)
	}
	if (size != "" || mode != "") && m.Type != "tmpfs" {
		return engine.Mount{}, fmt.Errorf("tmpfs-size and tmpfs-mode are for type=tmpfs, not %s", m.Type)
	}
	switch m.Type {
	case "bind":
		if m.Source == "" {
			return engine.Mount{}, errors.New("a bind mount needs a source")
		}
		if !filepath.IsAbs(m.Source) || strings.ContainsRune(m.Source, 0) {
			return engine.Mount{}, fmt.Errorf("the bind source %q is not an absolute path", m.Source)
		}
		m.Source = filepath.Clean(m.Source)
	case "volume":
		if m.Source != "" && !volumeName.MatchString(m.Source) {
			return engine.Mount{}, fmt.Errorf("%q is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)", m.Source)
		}
	case "tmpfs":
		if m.Source != "" {
			return engine.Mount{}, errors.New("a tmpfs has no source")
		}
		if size != "" {
			n, err := units.RAMInBytes(size)
			if err != nil || n <= 0 {
				return engine.Mount{}, fmt.Errorf("tmpfs-size %q is not a size such as 64m", size)
			}
			m.TmpfsSize = n
		}
		if mode != "" {
			n, err := strconv.ParseUint(mode, 8, 32)
			if err != nil || n > 0o7777 {
				return engine.Mount{}, fmt.Errorf("tmpfs-mode %q is not an octal mode such as 1777", mode)
			}
			m.TmpfsMode = uint32(n)
		}
	}
	return m, nil
}

// parseTmpfs parses --tmpfs /path[:opts] and checks the options, which go
// to the kernel's mount as given.
func parseTmpfs(s string) (string, string, error) {
	path, opts, _ := strings.Cut(s, ":")
	if !filepath.IsAbs(path) || strings.ContainsRune(s, 0) {
		return "", "", fmt.Errorf("the path %q is not absolute", path)
	}
	path = filepath.Clean(path)
	if path == "/" {
		return "", "", errors.New("cannot mount on /")
	}
	if opts == "" {
		return path, "", nil
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, hasValue := strings.Cut(o, "=")
		switch k {
		case "rw", "ro", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "relatime", "strictatime", "nodiratime":
			if hasValue {
				return "", "", fmt.Errorf("the option %q takes no value", k)
			}
		case "size":
			if n, err := units.RAMInBytes(v); err != nil || n <= 0 {
				return "", "", fmt.Errorf("size=%q is not a size such as 64m", v)
			}
		case "mode":
			if n, err := strconv.ParseUint(v, 8, 32); err != nil || n > 0o7777 {
				return "", "", fmt.Errorf("mode=%q is not an octal mode such as 1777", v)
			}
		case "uid", "gid", "nr_inodes", "nr_blocks":
			if _, err := strconv.ParseUint(v, 10, 32); err != nil {
				return "", "", fmt.Errorf("%s=%q is not a number", k, v)
			}
		default:
			return "", "", fmt.Errorf("unknown tmpfs option %q", o)
		}
	}
	return path, opts, nil
}

// parseMemory parses Docker's sizes: bytes or with a k, m, g, t suffix.
func parseMemory(s string, minusOneOK bool) (int64, error) {
	if s == "-1" && minusOneOK {
		return -1, nil
	}
	n, err := units.RAMInBytes(s)
	if err != nil || n < 0 {
		return 0, errors.New("not a size: give bytes or a number with b, k, m or g (64m)")
	}
	return n, nil
}

// parseCPUs parses --cpus (decimal) into nano-CPUs, exactly.
func parseCPUs(s string) (int64, error) {
	// Checked before big.Rat sees it: "1e999999999" would take it ages.
	if s == "" || len(s) > 32 || strings.Trim(s, "0123456789.") != "" || strings.Count(s, ".") > 1 {
		return 0, errors.New("not a decimal number of CPUs")
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, errors.New("not a decimal number of CPUs")
	}
	nano := r.Mul(r, big.NewRat(1e9, 1))
	if !nano.IsInt() {
		return 0, errors.New("too precise: at most 9 decimal places")
	}
	if !nano.Num().IsInt64() || nano.Num().Int64() > 1<<40 {
		return 0, errors.New("too many CPUs")
	}
	return nano.Num().Int64(), nil
}

var cpuSet = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)

func validCPUSet(s string) error {
	if !cpuSet.MatchString(s) || len(s) > 4096 {
		return errors.New("want CPU numbers and ranges such as 0-3,5")
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, ok := strings.Cut(part, "-")
		if !ok {
			continue
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || b < a {
			return fmt.Errorf("the range %q is backwards or too big", part)
		}
	}
	return nil
}

// parseRestart parses --restart.
func parseRestart(s string) (engine.RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	switch name {
	case "", "no", "always", "unless-stopped":
		if hasCount {
			return engine.RestartPolicy{}, fmt.Errorf("a maximum retry count is only for on-failure, not %q", name)
		}
		if name == "" {
			name = "no"
		}
		return engine.RestartPolicy{Name: name}, nil
	case "on-failure":
		p := engine.RestartPolicy{Name: name}
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return engine.RestartPolicy{}, fmt.Errorf("the maximum retry count %q is not a whole number", count)
			}
			p.MaximumRetryCount = n
		}
		return p, nil
	}
	return engine.RestartPolicy{}, fmt.Errorf("unknown restart policy %q (want no, on-failure[:N], always or unless-stopped)", name)
}

// parseSignal accepts TERM, SIGTERM or 15 and returns SIGTERM (a number
// is kept as a number when it has no name, as real-time signals).
func parseSignal(s string) (string, error) {
	n, err := oci.ParseSignal(s)
	_, numErr := strconv.Atoi(s)
	numeric := numErr == nil
	switch {
	case numeric && (err != nil || n == 0):
		return "", errors.New("not a signal number")
	case err != nil:
		return "", errors.New("unknown signal")
	}
	if numeric {
		if name := unix.SignalName(n); name != "" {
			return name, nil
		}
		return s, nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	return name, nil
}

// parseCapability normalises NET_ADMIN, net_admin or CAP_NET_ADMIN to
// CAP_NET_ADMIN, and ALL to ALL; unknown names are refused.
func parseCapability(s string) (string, error) {
	name := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "CAP_"))
	if name == "ALL" {
		return "ALL", nil
	}
	for _, c := range capability.ListKnown() {
		if strings.ToUpper(c.String()) == name {
			return "CAP_" + name, nil
		}
	}
	return "", errors.New("unknown capability")
}

// parseSecurityOpt accepts what the engine implements: no-new-privileges
// and seccomp profiles. A profile's path is made absolute so that the
// engine (and later restarts) read the same file, and it must exist now.
func parseSecurityOpt(s string) (string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		k, v, ok = strings.Cut(s, ":")
	}
	switch k {
	case "no-new-privileges":
		if !ok {
			return k, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", errors.New("no-new-privileges takes true or false")
		}
		if !b {
			return "no-new-privileges=false", nil
		}
		return k, nil
	case "seccomp":
		if v == "" {
			return "", errors.New("name a profile: seccomp=FILE or seccomp=unconfined")
		}
		if v == "unconfined" {
			return "seccomp=unconfined", nil
		}
		p, err := filepath.Abs(v)
		if err != nil {
			return "", err
		}
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("the seccomp profile: %w", err)
		}
		if !st.Mode().IsRegular() {
			return "", fmt.Errorf("the seccomp profile %s is not a file", p)
		}
		return "seccomp=" + p, nil
	case "monitor":
		return parseMonitorOpt(v)
	case "label", "apparmor", "systempaths", "mask", "unmask":
		return "", fmt.Errorf("%s is not supported by berth", k)
	}
	return "", errors.New("unknown option (want no-new-privileges, seccomp=FILE or seccomp=unconfined)")
}

// parseAddHost parses HOST:IP (or HOST=IP); the IP may be host-gateway.
func parseAddHost(s string) (string, error) {
	sep := strings.IndexAny(s, ":=")
	if sep <= 0 {
		return "", errors.New("want HOST:IP")
	}
	host, ip := s[:sep], s[sep+1:]
	if err := validHostname(host); err != nil {
		return "", err
	}
	if ip == "host-gateway" {
		return host + ":" + ip, nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]"))
	if err != nil || a.Zone() != "" {
		return "", fmt.Errorf("%q is not an IP address", ip)
	}
	return host + ":" + a.String(), nil
}

// containerName is Docker's rule for names.
var containerName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func validName(s string) error {
	if !containerName.MatchString(s) || len(s) > 253 {
		return errors.New("a name is letters, digits, '_', '.' and '-', starting with a letter or digit")
	}
	return nil
}

func validHostname(s string) error {
	if s == "" || len(s) > 253 {
		return errors.New("a host name has 1 to 253 characters")
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("not a valid host name (labels of 1-63 letters, digits and '-')")
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
				return errors.New("not a valid host name (labels of 1-63 letters, digits and '-')")
			}
		}
	}
	return nil
}

// validNamespaceMode checks --ipc, --pid, --uts.
func validNamespaceMode(v string, allowed []string, containerOK bool) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	if containerOK && strings.HasPrefix(v, "container:") && len(v) > len("container:") {
		return nil
	}
	want := strings.Join(allowed[1:], ", ")
	if containerOK {
		want += " or container:NAME"
	}
	return fmt.Errorf("unknown mode (want %s)", want)
}

// parseEnv parses -e: KEY=VALUE as is, KEY alone is copied from this
// process's environment (and dropped if unset), as Docker does.
func parseEnv(s string, getenv func(string) (string, bool)) (string, bool, error) {
	k, _, hasValue := strings.Cut(s, "=")
	if k == "" {
		return "", false, errors.New("the variable's name is empty")
	}
	if strings.ContainsRune(s, 0) {
		return "", false, errors.New("contains a NUL byte")
	}
	if hasValue {
		return s, true, nil
	}
	if strings.ContainsAny(k, " \t") {
		return "", false, fmt.Errorf("the variable %q contains whitespace", k)
	}
	if getenv == nil {
		return "", false, nil
	}
	v, ok := getenv(k)
	if !ok {
		return "", false, nil
	}
	return k + "=" + v, true, nil
}

// readKVFile reads an --env-file or --label-file: one KEY=VALUE a line,
// blank lines and lines starting with # skipped, a bare KEY taken from
// getenv (nil: kept as KEY= for labels).
func readKVFile(path string, getenv func(string) (string, bool)) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseKV(io.LimitReader(f, maxFlagFile+1), getenv)
}

func parseKV(r io.Reader, getenv func(string) (string, bool)) ([]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(data) > maxFlagFile {
		return nil, fmt.Errorf("larger than %d bytes", maxFlagFile)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxFlagFile+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("line %d is not UTF-8", n)
		}
		if strings.ContainsRune(line, 0) {
			return nil, fmt.Errorf("line %d contains a NUL byte", n)
		}
		k, _, hasValue := strings.Cut(line, "=")
		if k == "" {
			return nil, fmt.Errorf("line %d: the name is empty", n)
		}
		if strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("line %d: the name %q contains whitespace", n, k)
		}
		switch {
		case hasValue:
			out = append(out, line)
		case getenv == nil:
			out = append(out, k+"=")
		default:
			if v, ok := getenv(k); ok {
				out = append(out, k+"="+v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
