package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/volume"
)

// Create makes a container: pulls its image if needed, prepares its root
// file system, its volumes, and records it. Nothing runs yet. On any error
// nothing is left: no record, snapshot, pin, volume or directory.
func (e *Engine) Create(ctx context.Context, o CreateOptions) (_ Container, retErr error) {
	if o.Name != "" && !validName(o.Name) {
		return Container{}, fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", o.Name, errdefs.ErrInvalidArgument)
	}
	hc := o.HostConfig
	if err := checkRestartPolicy(hc.RestartPolicy, hc.AutoRemove); err != nil {
		return Container{}, err
	}
	runtimeName, runtimeBin, err := e.runtimeFor(hc.Runtime)
	if err != nil {
		return Container{}, err
	}
	imgName, err := e.ensureImage(ctx, o)
	if err != nil {
		return Container{}, err
	}
	if err := e.checkTrust(ctx, "create", imgName, o.Name, o.SandboxID); err != nil {
		return Container{}, err
	}
	rc, chainID, err := e.images.RuntimeConfig(ctx, imgName)
	if err != nil {
		return Container{}, fmt.Errorf("image %s: %w", o.Config.Image, err)
	}
	details, err := e.images.Inspect(ctx, imgName)
	if err != nil {
		return Container{}, fmt.Errorf("image %s: %w", o.Config.Image, err)
	}
	cfg, err := MergeImageConfig(o.Config, rc)
	if err != nil {
		return Container{}, err
	}

	id := newID()
	name := o.Name
	if name == "" {
		name = randomName()
	}
	if cfg.Hostname == "" && hc.NetworkMode != "host" {
		cfg.Hostname = id[:12]
	}
	if hc.NetworkMode == "" {
		hc.NetworkMode = "bridge"
	}
	if hc.Runtime == "" {
		hc.Runtime = runtimeName
	}
	ports, err := portSpecs(hc, cfg)
	if err != nil {
		return Container{}, err
	}
	if cfg.StopSignal != "" {
		if _, err := parseSignal(cfg.StopSignal); err != nil {
			return Container{}, fmt.Errorf("stop signal %q: %w", cfg.StopSignal, err)
		}
	}
	seccompProfile, err := readSeccompProfile(hc.SecurityOpt)
	if err != nil {
		return Container{}, err
	}
	var sb *Sandbox
	if o.SandboxID != "" {
		if sb, err = e.store.getSandbox(o.SandboxID); err != nil {
			return Container{}, err
		}
		if e.checkPause(sb); sb.State != SandboxReady {
			return Container{}, fmt.Errorf("sandbox %s is not ready: %w", sb.ID[:12], errdefs.ErrFailedPrecondition)
		}
		// The sandbox's network is the container's: none of its own.
		hc.NetworkMode, o.Networks, ports = "none", nil, nil
	}
	nets, aliases, err := e.networksFor(ctx, hc.NetworkMode, o.Networks)
	if err != nil {
		return Container{}, err
	}
	if len(ports) > 0 && len(nets) == 0 {
		// Docker ignores ports with --network host/none silently; say so
		// rather than publish nothing without a word? Docker's behaviour
		// is what scripts expect: ignore them.
		ports = nil
	}

	r := &record{
		Container: Container{
			ID:         id,
			Created:    time.Now().UTC(),
			Path:       first(append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)),
			Args:       rest(append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)),
			State:      State{Status: "created"},
			Image:      string(details.ID),
			Name:       "/" + name,
			Driver:     "overlay",
			Platform:   "linux",
			Namespace:  e.opts.Namespace,
			SandboxID:  id,
			Runtime:    runtimeBin,
			Extra:      o.Extra,
			Config:     cfg,
			HostConfig: hc,
			LogPath:    filepath.Join(e.containerDir(id), "container.log"),
			NetworkSettings: NetworkSettings{
				Networks: map[string]*EndpointSettings{},
				Ports:    map[string][]PortBinding{},
			},
		},
		Snapshot:       "container-" + id,
		RuntimeArgs:    slices.Clone(e.opts.RuntimeArgs[runtimeName]),
		SeccompProfile: seccompProfile,
		ImageName:      imgName,
		NetworkNames:   nets,
		Aliases:        aliases,
		Ports:          ports,
	}
	r.ResolvConfPath = filepath.Join(e.containerDir(id), "resolv.conf")
	r.HostsPath = filepath.Join(e.containerDir(id), "hosts")
	r.HostnamePath = filepath.Join(e.containerDir(id), "hostname")
	if sb != nil {
		e.joinSandbox(r, sb)
	}
	if err := e.setCgroup(r); err != nil {
		return Container{}, err
	}
	if o.LogPath != "" {
		if !filepath.IsAbs(o.LogPath) {
			return Container{}, fmt.Errorf("log path %q is not absolute: %w", o.LogPath, errdefs.ErrInvalidArgument)
		}
		r.LogPath = filepath.Clean(o.LogPath)
	}
	if err := e.secmonCheck(ctx, r); err != nil { // secmon.go
		return Container{}, err
	}

	// Undo in reverse on failure.
	var undo []func()
	defer func() {
		if retErr != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err := os.MkdirAll(e.containerDir(id), 0o700); err != nil {
		return Container{}, fmt.Errorf("create container directory: %w", err)
	}
	undo = append(undo, func() { os.RemoveAll(e.containerDir(id)) })

	// Mounts of host paths only are resolved before the record is
	// stored, so that it is written once, complete: a write (two
	// fdatasyncs) less per create. A volume or image mount leaves it to
	// the usual order below; a bad mount fails here, before anything is
	// stored (this pass makes nothing).
	mounts, err := e.resolveMounts(ctx, r, nil)
	if err != nil && !errors.Is(err, errNeedsRecord) {
		return Container{}, err
	}
	early := err == nil
	if early {
		r.Mounts = mounts
	}
	// Reserve the name first: a taken name is the commonest failure and
	// must cost nothing.
	if err := e.store.add(r); err != nil {
		return Container{}, err
	}
	undo = append(undo, func() { e.store.remove(id) })

	if _, err := e.images.Pin(ctx, "container/"+id, imgName, r.Snapshot); err != nil {
		return Container{}, err
	}
	undo = append(undo, func() { e.images.Unpin(context.Background(), "container/"+id) })
	if _, err := e.images.Snapshots.Prepare(ctx, r.Snapshot, chainID, map[string]string{"berth.container": id}); err != nil {
		return Container{}, fmt.Errorf("prepare the root file system: %w", err)
	}
	undo = append(undo, func() { e.images.Snapshots.Remove(context.Background(), r.Snapshot) })

	if !early {
		mounts, err := e.resolveMounts(ctx, r, &undo)
		if err != nil {
			return Container{}, err
		}
		r.Mounts = mounts
		if err := e.store.put(r); err != nil {
			return Container{}, err
		}
	}
	e.emit(ctx, "container", "create", r)
	return r.Container, nil
}

// readSeccompProfile reads the profile a seccomp=FILE option names, once,
// at create; "" when there is none.
func readSeccompProfile(opts []string) (string, error) {
	for _, o := range opts {
		p, ok := strings.CutPrefix(o, "seccomp=")
		if !ok || p == "unconfined" || p == "builtin" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("--security-opt %s: %w", o, err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			return "", fmt.Errorf("--security-opt %s: not a regular file: %w", o, errdefs.ErrInvalidArgument)
		}
		b, err := io.ReadAll(io.LimitReader(f, maxSeccompProfile+1))
		if err != nil {
			return "", fmt.Errorf("--security-opt %s: %w", o, err)
		}
		if len(b) > maxSeccompProfile {
			return "", fmt.Errorf("--security-opt %s: the profile is over %d bytes: %w", o, maxSeccompProfile, errdefs.ErrInvalidArgument)
		}
		return string(b), nil
	}
	return "", nil
}

// ensureImage finds the image, pulling it as o.Pull says, and returns its
// stored name.
func (e *Engine) ensureImage(ctx context.Context, o CreateOptions) (string, error) {
	ref := o.Config.Image
	if ref == "" {
		return "", fmt.Errorf("no image named: %w", errdefs.ErrInvalidArgument)
	}
	policy := o.Pull
	if policy == "" {
		policy = "missing"
	}
	switch policy {
	case "missing", "always", "never":
	default:
		return "", fmt.Errorf("invalid --pull value %q: it is missing, always or never: %w", policy, errdefs.ErrInvalidArgument)
	}
	if policy != "always" {
		img, err := e.images.Resolve(ctx, ref)
		if err == nil {
			return img.Name, nil
		}
		if !errdefs.IsNotFound(err) {
			return "", err
		}
		if policy == "never" {
			return "", fmt.Errorf("image %s is not in the store and --pull is never: %w", ref, errdefs.ErrNotFound)
		}
	}
	parsed, err := reference.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	opts := image.PullOptions{}
	if o.Platform != "" {
		if opts.Platform, err = image.ParsePlatform(o.Platform); err != nil {
			return "", err
		}
	}
	if o.PullProgress != nil {
		opts.Progress = func(ev image.ProgressEvent) {
			o.PullProgress(PullEvent{Layer: ev.Digest.String(), Status: string(ev.Status), Current: ev.Current, Total: ev.Total})
		}
	}
	img, err := e.images.Pull(ctx, parsed, opts)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	return img.Name, nil
}

// resolveMounts turns -v, --mount and --tmpfs and the image's VOLUMEs into
// the container's mounts, creating the volumes they name. With a nil undo
// it runs before r is stored: it then only checks host paths, and returns
// errNeedsRecord for anything that needs r's record (a volume, whose use
// is recorded before it exists; an image mount's pin) or undoing.
// errNeedsRecord: see resolveMounts.
var errNeedsRecord = errors.New("the mounts need the container's record")

func (e *Engine) resolveMounts(ctx context.Context, r *record, undo *[]func()) ([]MountPoint, error) {
	var out []MountPoint
	seen := map[string]bool{}
	add := func(m MountPoint) error {
		m.Destination = path.Clean(m.Destination)
		if !path.IsAbs(m.Destination) {
			return fmt.Errorf("invalid mount destination %q: it must be an absolute path: %w", m.Destination, errdefs.ErrInvalidArgument)
		}
		if m.Destination == "/" {
			return fmt.Errorf("invalid mount destination \"/\": %w", errdefs.ErrInvalidArgument)
		}
		if seen[m.Destination] {
			return fmt.Errorf("duplicate mount point: %s: %w", m.Destination, errdefs.ErrInvalidArgument)
		}
		seen[m.Destination] = true
		out = append(out, m)
		return nil
	}
	volumeMount := func(name, dst string, ro bool) error {
		if undo == nil {
			return errNeedsRecord
		}
		anonymous := name == ""
		if anonymous {
			name = newID()
		}
		// Record the use before the volume exists, so that a `volume
		// prune` running meanwhile sees it in use.
		if _, err := e.store.modify(r.ID, func(cur *record) error {
			cur.Volumes = append(cur.Volumes, name)
			return nil
		}); err != nil {
			return err
		}
		v, created, err := e.volumeForContainer(ctx, name, anonymous)
		if err != nil {
			return err
		}
		// Only an anonymous volume is surely this create's own to undo: a
		// named one "made" here may have been made at the same moment by
		// another create that uses it (Create returns an existing name).
		if created && anonymous {
			r.AnonVolumes = append(r.AnonVolumes, v.Name)
			*undo = append(*undo, func() { e.vols.Remove(context.Background(), v.Name) })
		}
		r.Volumes = append(r.Volumes, v.Name)
		return add(MountPoint{Type: "volume", Name: v.Name, Source: v.Mountpoint, Destination: dst, Driver: "local", Mode: modeOf(ro), RW: !ro})
	}
	bindMount := func(src, dst string, ro bool, propagation, flag string) error {
		if !filepath.IsAbs(src) {
			return fmt.Errorf("invalid %s source %q: a bind mount source must be an absolute host path: %w", flag, src, errdefs.ErrInvalidArgument)
		}
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("invalid %s: bind source path does not exist: %s: %w", flag, src, errdefs.ErrInvalidArgument)
		}
		switch propagation {
		case "":
			propagation = "rprivate"
		case "rprivate", "private", "rshared", "shared", "rslave", "slave":
		default:
			return fmt.Errorf("invalid %s propagation %q: it is rprivate, rshared or rslave: %w", flag, propagation, errdefs.ErrInvalidArgument)
		}
		return add(MountPoint{Type: "bind", Source: filepath.Clean(src), Destination: dst, Mode: modeOf(ro), RW: !ro, Propagation: propagation})
	}
	for _, b := range r.HostConfig.Binds {
		src, dst, ro, err := parseBind(b)
		if err != nil {
			return nil, err
		}
		switch {
		case src == "":
			err = volumeMount("", dst, ro)
		case strings.HasPrefix(src, "/") || strings.HasPrefix(src, "."):
			err = bindMount(src, dst, ro, "", "-v "+b)
		default:
			err = volumeMount(src, dst, ro)
		}
		if err != nil {
			return nil, err
		}
	}
	images := 0
	for _, m := range r.HostConfig.Mounts {
		var err error
		switch m.Type {
		case "image":
			if undo == nil {
				return nil, errNeedsRecord
			}
			var mp MountPoint
			if mp, err = e.addImageMount(ctx, r, m, images, undo); err == nil {
				err = add(mp)
			}
			images++
		case "bind":
			err = bindMount(m.Source, m.Target, m.ReadOnly, m.BindPropagation, "--mount")
			if err == nil && m.IDMap {
				out[len(out)-1].IDMap = true
			}
		case "volume":
			err = volumeMount(m.Source, m.Target, m.ReadOnly)
		case "tmpfs":
			err = add(MountPoint{Type: "tmpfs", Destination: m.Target, Mode: modeOf(m.ReadOnly), RW: !m.ReadOnly})
		default:
			err = fmt.Errorf("invalid --mount type %q: it is bind, volume, tmpfs or image: %w", m.Type, errdefs.ErrInvalidArgument)
		}
		if err != nil {
			return nil, err
		}
	}
	for dst := range r.HostConfig.Tmpfs {
		if err := add(MountPoint{Type: "tmpfs", Destination: dst, RW: true}); err != nil {
			return nil, err
		}
	}
	// The image's VOLUMEs get anonymous volumes unless something else is
	// mounted there.
	vols := make([]string, 0, len(r.Config.Volumes))
	for v := range r.Config.Volumes {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	for _, v := range vols {
		if seen[path.Clean(v)] {
			continue
		}
		if err := volumeMount("", v, false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// volumeForContainer returns the volume name (anonymous: one of the
// engine's naming, new), creating it on first use, and whether it was made
// now.
func (e *Engine) volumeForContainer(ctx context.Context, name string, anonymous bool) (volume.Volume, bool, error) {
	if !anonymous {
		if v, err := e.vols.Get(ctx, name); err == nil {
			return v, false, nil
		} else if !errdefs.IsNotFound(err) {
			return volume.Volume{}, false, err
		}
	}
	v, err := e.vols.Create(ctx, volume.CreateOptions{Name: name, Anonymous: anonymous})
	if err != nil {
		return volume.Volume{}, false, err
	}
	return v, true, nil
}

// parseBind splits a -v value: "name:/dst[:opts]", "/src:/dst[:opts]" or
// "/dst".
func parseBind(b string) (src, dst string, ro bool, err error) {
	parts := strings.Split(b, ":")
	bad := func(why string) error {
		return fmt.Errorf("invalid volume specification %q: %s: %w", b, why, errdefs.ErrInvalidArgument)
	}
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2, 3:
		src, dst = parts[0], parts[1]
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro":
					ro = true
				case "rw", "z", "Z", "rprivate", "private", "rshared", "shared", "rslave", "slave", "nocopy", "":
				default:
					return "", "", false, bad("unknown option " + strconv.Quote(o))
				}
			}
		}
		if src == "" {
			return "", "", false, bad("empty source")
		}
	default:
		return "", "", false, bad("too many colons")
	}
	if !strings.HasPrefix(dst, "/") {
		return "", "", false, bad("the destination must be an absolute path")
	}
	return src, dst, ro, nil
}

// portSpecs turns -p and -P into the ports to publish.
func portSpecs(hc HostConfig, cfg Config) ([]portSpec, error) {
	var out []portSpec
	keys := make([]string, 0, len(hc.PortBindings))
	for k := range hc.PortBindings {
		keys = append(keys, k)
	}
	if hc.PublishAllPorts {
		for k := range cfg.ExposedPorts {
			if _, ok := hc.PortBindings[k]; !ok {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		port, proto, _ := strings.Cut(k, "/")
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("invalid published port %q: the protocol is tcp or udp: %w", k, errdefs.ErrInvalidArgument)
		}
		cp, err := strconv.ParseUint(port, 10, 16)
		if err != nil || cp == 0 {
			return nil, fmt.Errorf("invalid container port %q: %w", k, errdefs.ErrInvalidArgument)
		}
		binds := hc.PortBindings[k]
		if len(binds) == 0 {
			binds = []PortBinding{{}}
		}
		for _, b := range binds {
			var hp uint64
			if b.HostPort != "" {
				if hp, err = strconv.ParseUint(b.HostPort, 10, 16); err != nil {
					return nil, fmt.Errorf("invalid host port %q for %s: %w", b.HostPort, k, errdefs.ErrInvalidArgument)
				}
			}
			out = append(out, portSpec{HostIP: b.HostIP, HostPort: uint16(hp), ContainerPort: uint16(cp), Protocol: proto})
		}
	}
	return out, nil
}

// networksFor returns the networks a container joins and their aliases,
// checking that each exists.
func (e *Engine) networksFor(ctx context.Context, mode string, extra map[string]EndpointConfig) ([]string, map[string][]string, error) {
	aliases := map[string][]string{}
	var nets []string
	switch {
	case mode == "host" || mode == "none" || strings.HasPrefix(mode, "container:"):
		if len(extra) > 0 {
			for n := range extra {
				if n != mode {
					return nil, nil, fmt.Errorf("--network %s cannot be combined with other networks (%s): %w", mode, n, errdefs.ErrInvalidArgument)
				}
			}
		}
		return nil, aliases, nil
	default:
		nets = append(nets, mode)
	}
	others := make([]string, 0, len(extra))
	for n := range extra {
		if n != mode {
			others = append(others, n)
		}
	}
	sort.Strings(others)
	nets = append(nets, others...)
	for _, n := range nets {
		if n == "host" || n == "none" {
			return nil, nil, fmt.Errorf("--network %s cannot be combined with other networks: %w", n, errdefs.ErrInvalidArgument)
		}
		if _, err := e.net.Inspect(ctx, n); err != nil {
			if errdefs.IsNotFound(err) {
				return nil, nil, fmt.Errorf("network %s not found: %w", n, errdefs.ErrNotFound)
			}
			return nil, nil, err
		}
		if ep, ok := extra[n]; ok && len(ep.Aliases) > 0 {
			if n == "bridge" {
				return nil, nil, fmt.Errorf("network-scoped aliases are only supported for user-defined networks, not %q: %w", n, errdefs.ErrInvalidArgument)
			}
			for _, a := range ep.Aliases {
				if !validName(a) {
					return nil, nil, fmt.Errorf("invalid network alias %q: %w", a, errdefs.ErrInvalidArgument)
				}
			}
			aliases[n] = ep.Aliases
		}
	}
	return nets, aliases, nil
}

func checkRestartPolicy(p RestartPolicy, autoRemove bool) error {
	switch p.Name {
	case "", "no":
		if p.MaximumRetryCount != 0 {
			return fmt.Errorf("invalid restart policy: maximum retry count can only be used with 'on-failure': %w", errdefs.ErrInvalidArgument)
		}
		return nil
	case "always", "unless-stopped":
		if p.MaximumRetryCount != 0 {
			return fmt.Errorf("invalid restart policy: maximum retry count can only be used with 'on-failure': %w", errdefs.ErrInvalidArgument)
		}
	case "on-failure":
		if p.MaximumRetryCount < 0 {
			return fmt.Errorf("invalid restart policy: maximum retry count cannot be negative: %w", errdefs.ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("invalid restart policy %q: it is no, always, unless-stopped or on-failure[:N]: %w", p.Name, errdefs.ErrInvalidArgument)
	}
	if autoRemove {
		return fmt.Errorf("conflicting options: cannot specify both --restart and --rm: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// runtimeFor returns the runtime named (or the default) and its binary.
func (e *Engine) runtimeFor(name string) (string, string, error) {
	if name == "" {
		name = e.opts.DefaultRuntime
	}
	if bin, ok := e.opts.Runtimes[name]; ok {
		return name, bin, nil
	}
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err == nil {
			return name, name, nil
		}
	}
	known := make([]string, 0, len(e.opts.Runtimes))
	for k := range e.opts.Runtimes {
		known = append(known, k)
	}
	sort.Strings(known)
	return "", "", fmt.Errorf("unknown runtime %q: the runtimes found are %s: %w", name, strings.Join(known, ", "), errdefs.ErrInvalidArgument)
}

func modeOf(ro bool) string {
	if ro {
		return "ro"
	}
	return ""
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func rest(s []string) []string {
	if len(s) < 2 {
		return []string{}
	}
	return s[1:]
}

// validName is Docker's rule for container names and aliases.
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i > 0 {
			ok = ok || c == '_' || c == '.' || c == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}

func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

var (
	nameLeft  = []string{"brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nifty", "proud", "quirky", "relaxed", "serene", "sharp", "tender", "upbeat", "vibrant", "witty", "zealous", "bold", "clever", "dreamy"}
	nameRight = []string{"hopper", "lovelace", "turing", "curie", "darwin", "euler", "fermi", "galois", "hamilton", "kepler", "lamport", "mayer", "noether", "pascal", "ritchie", "shannon", "thompson", "wozniak", "yonath", "torvalds", "liskov", "knuth", "dijkstra", "babbage"}
)

// randomName is a Docker-style name, "adjective_scientist" plus a number
// when needed; a taken one fails the create like a user's, so add a suffix.
func randomName() string {
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s_%s_%d", nameLeft[int(b[0])%len(nameLeft)], nameRight[int(b[1])%len(nameRight)], int(b[2]))
}
