package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/monitor"
	"github.com/berth-project/berth/internal/network"
)

// startTimeout bounds a container's start: mounts, networks, the runtime's
// create and start.
const startTimeout = 2 * time.Minute

// Start starts a created or exited container and returns once its process
// runs. Starting a running container does nothing, as in Docker.
func (e *Engine) Start(ctx context.Context, ref string) (Container, error) {
	r, err := e.store.get(ref)
	if err != nil {
		return Container{}, err
	}
	unlock, err := e.lockContainer(ctx, r.ID)
	if err != nil {
		return Container{}, err
	}
	defer unlock()
	if st := e.liveState(r); st.Running || st.Restarting {
		return e.inspectRecord(r), nil
	}
	if err := e.start(ctx, r, nil); err != nil {
		return Container{}, err
	}
	return e.inspectRecord(r), nil
}

// StartAttached starts ref with its stdio connected to streams from the
// first byte and returns when the container's output ends, with its exit
// code (foreground `run`, `start -a`). Cancelling ctx detaches.
func (e *Engine) StartAttached(ctx context.Context, ref string, streams AttachStreams) (int, error) {
	r, err := e.store.get(ref)
	if err != nil {
		return 0, err
	}
	unlock, err := e.lockContainer(ctx, r.ID)
	if err != nil {
		return 0, err
	}
	if st := e.liveState(r); st.Running || st.Restarting {
		unlock()
		return e.Attach(ctx, ref, streams)
	}
	var att *monitor.Session
	err = e.start(ctx, r, func(stateDir string) error {
		var err error
		att, err = monitor.OpenAttach(ctx, stateDir, attachOptions(streams))
		return err
	})
	unlock()
	if err != nil {
		return 0, err
	}
	code, err := att.Wait(ctx)
	if err != nil {
		return 0, err
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	// The output ended. The monitor sends the exit code at the end of
	// the stream; without it (the monitor went away), ask the record.
	if code >= 0 {
		return code, nil
	}
	return e.Wait(ctx, r.ID)
}

func attachOptions(s AttachStreams) monitor.AttachOptions {
	o := monitor.AttachOptions{Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr}
	if s.Resize != nil {
		ch := make(chan monitor.Size, 1)
		go func() {
			defer close(ch)
			for sz := range s.Resize {
				ch <- monitor.Size{Rows: sz.Rows, Cols: sz.Cols}
			}
		}()
		o.Resize = ch
	}
	return o
}

// start brings up everything r needs and starts its monitor; the caller
// holds the container's lock. beforeStart, if set, runs between the
// runtime's create and start (to attach). On error everything started is
// torn down again.
func (e *Engine) start(ctx context.Context, r *record, beforeStart func(stateDir string) error) (retErr error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := e.checkTrust(ctx, "start", r.ImageName, r.ID, r.SandboxID); err != nil {
		return err
	}
	// A previous run may have left its monitor finishing, or stuck in
	// "created" (its berth was killed), and its network and mounts (the
	// monitor was killed, the machine rebooted): start from nothing.
	e.endMonitor(ctx, r, true)
	e.teardown(ctx, r)
	defer func() {
		if retErr != nil {
			bg := context.Background()
			e.runtimeDelete(bg, r)
			e.endMonitor(bg, r, true)
			// Only a failed start can leave cgroups without runtime
			// state (teardown, which also runs before every start,
			// stays free of the mountinfo read).
			if err := removeCgroupLeftovers(r); err != nil {
				e.warn("container %s: the cgroup its runtime left: %v", r.ID[:12], err)
			}
			e.teardown(bg, r)
		}
	}()
	rundir := e.runDir(r.ID)
	if err := os.MkdirAll(rundir, 0o700); err != nil {
		return fmt.Errorf("create run directory: %w", err)
	}
	rootfs := filepath.Join(rundir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	ms, err := e.images.Snapshots.Mounts(ctx, r.Snapshot)
	if err != nil {
		return fmt.Errorf("root file system: %w", err)
	}
	if err := e.mountRootfs(r, ms, rootfs); err != nil {
		return fmt.Errorf("mount the root file system: %w", err)
	}
	imageDirs, err := e.mountImages(ctx, r, rundir)
	if err != nil {
		return err
	}
	for _, m := range r.Mounts {
		if m.Type == "volume" {
			if err := e.vols.CopyUp(ctx, m.Name, rootfs, m.Destination); err != nil {
				return fmt.Errorf("volume %s: %w", m.Name, err)
			}
		}
	}

	netnsPath, atts, err := e.setupNetwork(ctx, r)
	if err != nil {
		return err
	}
	if err := e.writeEtcFiles(r, atts); err != nil {
		return err
	}

	spec, err := e.buildSpec(ctx, r, rootfs, netnsPath, imageDirs)
	if err != nil {
		return err
	}
	spec.Version = e.ociVersionFor(ctx, r.Runtime)
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(rundir, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("write the bundle: %w", err)
	}

	mcfg := e.monitorConfig(r)
	if mcfg.Health, err = e.healthConfig(r, spec, rundir); err != nil {
		return err
	}
	var st monitor.Status
	if beforeStart == nil {
		st, err = monitor.StartWith(ctx, e.takeSpare(), e.opts.MonitorBin, mcfg)
	} else {
		st, err = monitor.Create(ctx, e.opts.MonitorBin, mcfg)
		if err == nil {
			if err := beforeStart(rundir); err != nil {
				return err
			}
			st, err = monitor.StartCreated(ctx, rundir)
		}
	}
	if err != nil {
		return startError(err)
	}
	r.State.StartedAt = st.StartedAt
	r.State.Pid = st.Pid
	r.StoppedByUser = false
	if _, err := e.store.modify(r.ID, func(cur *record) error {
		cur.State.StartedAt = st.StartedAt
		cur.StoppedByUser = false
		cur.NetworkSettings = r.NetworkSettings
		cur.RestartCount = 0
		return nil
	}); err != nil {
		return err
	}
	e.emit(ctx, "container", "start", r)
	// A container that exited at once may have found its lock held by
	// this start, so that its monitor's clean-up gave way: do it here.
	if st := e.liveState(r); st.Status == "exited" {
		e.teardown(ctx, r)
		if r.HostConfig.AutoRemove {
			return e.remove(ctx, r, RemoveOptions{Volumes: true})
		}
	}
	return nil
}

// endMonitor makes sure no monitor of r's last run remains: one that is
// finishing is waited for (when wait says so: a start must not share the
// run directory with it), one stuck before start has its container
// deleted, and one that will not go is killed. A running container's
// monitor is left alone (callers check that first).
func (e *Engine) endMonitor(ctx context.Context, r *record, wait bool) {
	rundir := e.runDir(r.ID)
	pid, alive := monitor.Alive(rundir)
	if !alive {
		return
	}
	st, err := monitor.ReadStatus(filepath.Join(rundir, "status.json"))
	if err == nil && (st.State == monitor.StateRunning || st.State == monitor.StateRestarting) {
		return
	}
	if err == nil && st.State == monitor.StateExited && !wait {
		return
	}
	if err != nil || st.State != monitor.StateExited {
		e.runtimeDelete(ctx, r)
	}
	if !e.waitMonitorGone(ctx, r, 10*time.Second) {
		unix.Kill(pid, unix.SIGKILL)
		e.waitMonitorGone(ctx, r, 5*time.Second)
	}
}

// startError maps a start failure to Docker's exit codes: 127 when the
// command is not found, 126 when it cannot be invoked, 125 otherwise.
func startError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
		return &ExitError{Code: 127, Err: err}
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "is a directory"), strings.Contains(msg, "exec format error"):
		return &ExitError{Code: 126, Err: err}
	}
	return err
}

// monitorConfig is what the monitor of r is told.
func (e *Engine) monitorConfig(r *record) monitor.Config {
	rundir := e.runDir(r.ID)
	c := monitor.Config{
		ID:          r.ID,
		Runtime:     r.Runtime,
		RuntimeRoot: e.runtimeRoot(r.Runtime),
		Bundle:      rundir,
		Terminal:    r.Config.Tty,
		Stdin:       r.Config.OpenStdin,
		LogPath:     r.LogPath,
		StateDir:    rundir,
		ExitFile:    e.exitFilePath(r.ID),
		RuntimeArgs: runtimeArgs(r),
		OOMFiles:    monitor.OOMFilesFor(cgroupRelOf(r)),
		Restart:     monitor.RestartPolicy{Name: r.HostConfig.RestartPolicy.Name, MaxRetries: r.HostConfig.RestartPolicy.MaximumRetryCount},
		ExitCommand: append(append([]string{}, e.selfArgs()...), "system", "cleanup", r.ID),
		// A pod container of a sandboxed runtime (runsc, kata) has no
		// process of its own on the host: the runtime tells its exit.
		RuntimeWait: r.HostConfig.Annotations[AnnotationContainerType] == ContainerTypeContainer,
	}
	if r.SystemdCgroup {
		// systemd removes a scope as its last process dies, counters and
		// all: the monitor may need the slice's (see its oom_linux.go).
		c.OOMParentFiles = monitor.OOMParentFilesFor(cgroupRelOf(r))
	}
	return c
}

// The CRI's annotations that tell a runtime whether a container makes a
// pod's sandbox or runs inside one (containerd's names; runsc and kata
// read them, and CRI-O's io.kubernetes.cri-o.ContainerType).
const (
	AnnotationContainerType = "io.kubernetes.cri.container-type"
	AnnotationSandboxID     = "io.kubernetes.cri.sandbox-id"
	ContainerTypeSandbox    = "sandbox"
	ContainerTypeContainer  = "container"
)

// healthConfig writes the probe's process for the monitor and returns the
// check, or nil when the container has none.
func (e *Engine) healthConfig(r *record, spec *specs.Spec, rundir string) (*monitor.HealthConfig, error) {
	hc := r.Config.Healthcheck
	if hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
		return nil, nil
	}
	var args []string
	switch hc.Test[0] {
	case "CMD":
		args = hc.Test[1:]
	case "CMD-SHELL":
		args = []string{"/bin/sh", "-c", strings.Join(hc.Test[1:], " ")}
	default:
		return nil, fmt.Errorf("health check test %q: it starts with CMD, CMD-SHELL or NONE: %w", hc.Test[0], errdefs.ErrInvalidArgument)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("health check: no command: %w", errdefs.ErrInvalidArgument)
	}
	p := *spec.Process
	p.Args, p.Terminal, p.ConsoleSize = args, false, nil
	b, err := json.Marshal(&p)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(rundir, "health-process.json")
	if err := writeFileAtomic(file, b, 0o600); err != nil {
		return nil, err
	}
	return &monitor.HealthConfig{ProcessFile: file, Interval: hc.Interval, Timeout: hc.Timeout, StartPeriod: hc.StartPeriod, Retries: hc.Retries}, nil
}

// runtimeRoot is the state root of a runtime binary: each runtime keeps its
// own format, so each gets its own directory.
func (e *Engine) runtimeRoot(bin string) string {
	return filepath.Join(e.opts.RunRoot, "runtime", filepath.Base(bin))
}

func cgroupsPath(id string) string { return "/berth/" + id }

// removeEmptyBerthParent removes the shared /berth cgroup of each
// hierarchy once r's own is gone and no other container is in it:
// berth-runtime does so itself, runc and crun leave it. A container made at
// the same moment makes it again (rmdir of a cgroup with children fails).
func removeEmptyBerthParent(r *record) {
	if !strings.HasPrefix(cgroupsPathOf(r), "/berth/") {
		return
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/berth")
	dirs = append(dirs, "/sys/fs/cgroup/berth")
	for _, d := range dirs {
		unix.Rmdir(d) //nolint:errcheck // busy or absent: nothing to do
	}
}

// cgroupsPathOf is r's cgroupsPath: as fixed at create (setCgroup), else
// under its sandbox's parent (kubelet's pod cgroup) when it has one, else
// Berth's /berth.
func cgroupsPathOf(r *record) string {
	if r.CgroupsPath != "" {
		return r.CgroupsPath
	}
	if r.CgroupParent != "" {
		return path.Join(r.CgroupParent, r.ID)
	}
	return cgroupsPath(r.ID)
}

// setupNetwork makes the container's network namespace and joins its
// networks; it returns the namespace's path ("" for the host's).
func (e *Engine) setupNetwork(ctx context.Context, r *record) (string, []network.Attachment, error) {
	mode := r.HostConfig.NetworkMode
	r.NetworkSettings = NetworkSettings{Networks: map[string]*EndpointSettings{}, Ports: map[string][]PortBinding{}}
	switch {
	case mode == "host":
		return "", nil, nil
	case strings.HasPrefix(mode, "sandbox:"):
		nsPath, err := e.SandboxNetNS(ctx, strings.TrimPrefix(mode, "sandbox:"))
		if err != nil {
			return "", nil, err
		}
		r.NetworkSettings.SandboxKey = nsPath
		return nsPath, nil, nil
	case strings.HasPrefix(mode, "container:"):
		other, err := e.store.get(strings.TrimPrefix(mode, "container:"))
		if err != nil {
			return "", nil, fmt.Errorf("--network %s: %w", mode, err)
		}
		if st := e.liveState(other); !st.Running {
			return "", nil, fmt.Errorf("--network %s: the container is not running: %w", mode, errdefs.ErrFailedPrecondition)
		}
		r.NetworkSettings.SandboxKey = other.NetworkSettings.SandboxKey
		return other.NetworkSettings.SandboxKey, nil, nil
	}
	ports, err := e.choosePorts(r.Ports)
	if err != nil {
		return "", nil, err
	}
	if err := e.net.CheckPorts(ports); err != nil {
		return "", nil, fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	// Record the ports chosen before any rule exists: a clean-up after
	// this command is killed mid-attach needs them to find the rules.
	for _, p := range ports {
		key := fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol)
		ip := p.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		r.NetworkSettings.Ports[key] = append(r.NetworkSettings.Ports[key], PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(p.HostPort))})
	}
	if _, err := e.store.modify(r.ID, func(cur *record) error {
		cur.NetworkSettings.Ports = r.NetworkSettings.Ports
		return nil
	}); err != nil {
		return "", nil, err
	}
	nsPath, err := e.net.NewNetNS(ctx, r.ID)
	if err != nil {
		return "", nil, err
	}
	r.NetworkSettings.SandboxKey = nsPath
	var atts []network.Attachment
	name := strings.TrimPrefix(r.Name, "/")
	for i, n := range r.NetworkNames {
		req := network.AttachRequest{
			ContainerID: r.ID, NetNS: nsPath, Network: n, IfName: fmt.Sprintf("eth%d", i),
			Name: name, Aliases: append(append([]string{}, r.Aliases[n]...), r.ID[:12]),
		}
		if i == 0 {
			req.Ports = ports
		}
		att, err := e.net.Attach(ctx, req)
		if err != nil {
			return "", nil, fmt.Errorf("network %s: %w", n, err)
		}
		atts = append(atts, att)
		r.NetworkSettings.Networks[n] = &EndpointSettings{
			Aliases: r.Aliases[n], NetworkID: n, Gateway: att.Gateway, IPAddress: att.IP,
			IPPrefixLen: att.PrefixLen, MacAddress: att.MAC, IfName: att.IfName,
			DNSNames: append([]string{name, r.ID[:12]}, r.Aliases[n]...),
		}
		if i == 0 {
			r.NetworkSettings.IPAddress, r.NetworkSettings.Gateway = att.IP, att.Gateway
		}
	}
	return nsPath, atts, nil
}

// choosePorts gives a free host port to each port published without one.
func (e *Engine) choosePorts(ps []portSpec) ([]network.PortMapping, error) {
	out := make([]network.PortMapping, 0, len(ps))
	for _, p := range ps {
		hp := p.HostPort
		if hp == 0 {
			var err error
			if hp, err = freePort(p.HostIP, p.Protocol); err != nil {
				return nil, err
			}
		}
		out = append(out, network.PortMapping{HostIP: p.HostIP, HostPort: hp, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
	}
	return out, nil
}

// freePort asks the kernel for a free port in its ephemeral range.
func freePort(ip, proto string) (uint16, error) {
	if proto == "udp" {
		c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, fmt.Errorf("find a free udp port: %w", err)
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free tcp port: %w", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}

// writeEtcFiles writes the container's /etc/hostname, /etc/hosts and
// /etc/resolv.conf.
func (e *Engine) writeEtcFiles(r *record, atts []network.Attachment) error {
	if r.SandboxID != r.ID {
		return nil // the sandbox's files
	}
	hc := r.HostConfig
	hostname := r.Config.Hostname
	var hosts, resolv []byte
	if hc.NetworkMode == "host" {
		h, _ := os.Hostname()
		hostname = h
		hosts, _ = os.ReadFile("/etc/hosts")
		hosts = append(hosts, network.HostsFile("", "", nil, hc.ExtraHosts)...)
		resolv = e.net.ResolvConf(nil, hc.DNS, hc.DNSSearch, hc.DNSOptions)
	} else {
		hosts = network.HostsFile(hostname, strings.TrimPrefix(r.Name, "/"), atts, hc.ExtraHosts)
		resolv = e.net.ResolvConf(atts, hc.DNS, hc.DNSSearch, hc.DNSOptions)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{r.HostnamePath, []byte(hostname + "\n")}, {r.HostsPath, hosts}, {r.ResolvConfPath, resolv}} {
		if err := writeFileAtomic(f.path, f.data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return nil
}

// buildSpec makes the container's runtime spec.
// imageDirs are the host paths of r's image mounts, by index in r.Mounts.
func (e *Engine) buildSpec(ctx context.Context, r *record, rootfs, netnsPath string, imageDirs map[int]string) (*specs.Spec, error) {
	var mounts []specs.Mount
	rootfsPropagation := ""
	for i, m := range r.Mounts {
		if m.Type == "tmpfs" {
			continue
		}
		if m.Type == "image" {
			mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: imageDirs[i], Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev"}})
			continue
		}
		prop := "rprivate"
		if m.Propagation != "" {
			prop = m.Propagation
		}
		opts := []string{"rbind", prop}
		if !m.RW {
			opts = append(opts, "ro")
		}
		mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
		// A mount that receives the host's mounts needs a root that is
		// not private (as containerd sets for bidirectional and
		// host-to-container propagation).
		switch prop {
		case "rshared", "shared":
			rootfsPropagation = "rshared"
		case "rslave", "slave":
			if rootfsPropagation == "" {
				rootfsPropagation = "rslave"
			}
		}
	}
	etcOpts := []string{"rbind", "rprivate"}
	if r.HostConfig.ReadonlyRootfs {
		etcOpts = append(etcOpts, "ro")
	}
	// A user's bind on one of these files wins, as in Docker: kubelet
	// mounts its own /etc/hosts (the pod's IP, hostname and hostAliases).
	for _, m := range []specs.Mount{
		{Destination: "/etc/hostname", Type: "bind", Source: r.HostnamePath, Options: etcOpts},
		{Destination: "/etc/hosts", Type: "bind", Source: r.HostsPath, Options: etcOpts},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: r.ResolvConfPath, Options: etcOpts},
	} {
		if !slices.ContainsFunc(mounts, func(u specs.Mount) bool { return path.Clean(u.Destination) == m.Destination }) {
			mounts = append(mounts, m)
		}
	}
	in := SpecInput{
		ID:          r.ID,
		Config:      r.Config,
		HostConfig:  r.HostConfig,
		Rootfs:      rootfs,
		Mounts:      mounts,
		NetNSPath:   netnsPath,
		CgroupsPath: cgroupsPathOf(r),
	}
	if r.HostConfig.Init != nil && *r.HostConfig.Init {
		in.InitPath = e.initPath()
		if in.InitPath == "" {
			return nil, fmt.Errorf("--init: no init binary found (install Debian's tini package for /usr/bin/tini-static): %w", errdefs.ErrFailedPrecondition)
		}
	}
	in.SeccompProfile = r.SeccompProfile
	if err := e.sandboxNamespaces(r, &in); err != nil {
		return nil, err
	}
	for _, pair := range []struct {
		mode string
		dst  *string
		kind string
	}{{r.HostConfig.IpcMode, &in.IPCNSPath, "ipc"}, {r.HostConfig.PidMode, &in.PIDNSPath, "pid"}} {
		if other, ok := strings.CutPrefix(pair.mode, "container:"); ok {
			o, err := e.store.get(other)
			if err != nil {
				return nil, fmt.Errorf("--%s %s: %w", pair.kind, pair.mode, err)
			}
			st := e.liveState(o)
			if !st.Running {
				return nil, fmt.Errorf("--%s %s: the container is not running: %w", pair.kind, pair.mode, errdefs.ErrFailedPrecondition)
			}
			*pair.dst = fmt.Sprintf("/proc/%d/ns/%s", st.Pid, pair.kind)
		}
	}
	spec, err := BuildSpec(ctx, in)
	if err != nil {
		return nil, err
	}
	if err := e.applySandboxUserNS(r, spec); err != nil {
		return nil, err
	}
	if rootfsPropagation != "" {
		spec.Linux.RootfsPropagation = rootfsPropagation
	}
	return spec, e.secmonPrepare(ctx, r, spec, rootfs)
}

// initPath finds the init for --init: Debian's static tini.
func (e *Engine) initPath() string {
	for _, p := range []string{"/usr/bin/tini-static", "/usr/libexec/podman/catatonit", "/usr/bin/catatonit"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// teardown undoes what a start set up: the network, the mounts, the
// runtime's state. It is idempotent and tolerates what is already gone; a
// running monitor is left alone (the caller stops it first).
func (e *Engine) teardown(ctx context.Context, r *record) {
	rundir := e.runDir(r.ID)
	if _, alive := monitor.Alive(rundir); alive {
		// A monitor whose container has exited for good is only
		// finishing (running its exit command): tear down under it.
		if st, err := monitor.ReadStatus(filepath.Join(rundir, "status.json")); err != nil || st.State != monitor.StateExited {
			return
		}
	}
	// The run directory is made first by a start and removed last here:
	// without it there is nothing to undo (a fresh container, a teardown
	// already done, a reboot), and the CNI DELs, a few hundred
	// milliseconds, are spared.
	if _, err := os.Stat(rundir); errors.Is(err, os.ErrNotExist) {
		return
	}
	name := strings.TrimPrefix(r.Name, "/")
	nsPath := filepath.Join(e.opts.RunRoot, "network", "netns", r.ID)
	if r.NetworkSettings.SandboxKey != "" {
		nsPath = r.NetworkSettings.SandboxKey
	}
	if mode := r.HostConfig.NetworkMode; mode != "host" && !strings.HasPrefix(mode, "container:") && !strings.HasPrefix(mode, "sandbox:") {
		ports := recordedPorts(r)
		for i, n := range r.NetworkNames {
			req := network.AttachRequest{ContainerID: r.ID, NetNS: nsPath, Network: n, IfName: ifNameFor(r, i, n), Name: name}
			if i == 0 {
				req.Ports = ports
			}
			if err := e.net.Detach(ctx, req); err != nil {
				e.warn("container %s: network %s: %v", r.ID[:12], n, err)
			}
		}
		if err := e.net.RemoveNetNS(ctx, r.ID); err != nil {
			e.warn("container %s: %v", r.ID[:12], err)
		}
	}
	e.runtimeDelete(ctx, r)
	removeEmptyBerthParent(r)
	e.secmonRelease(ctx, r)
	e.unmountPodRootfs(r.ID)
	rootfs := filepath.Join(rundir, "rootfs")
	for i := 0; i < 8; i++ {
		if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil {
			break
		}
	}
	// Never remove through a root file system that is still mounted: that
	// would delete the container's files.
	if mounted, err := mountinfo.Mounted(rootfs); err == nil && mounted {
		e.warn("container %s: %s is still mounted; left in place", r.ID[:12], rootfs)
		return
	}
	if !unmountImages(rundir) {
		e.warn("container %s: an image mount under %s is still mounted; left in place", r.ID[:12], rundir)
		return
	}
	os.RemoveAll(rundir)
}

// ifNameFor is the interface network n (the i-th of r's) has in r's
// namespace: as recorded at attach, else as a start names them.
func ifNameFor(r *record, i int, n string) string {
	if ep := r.NetworkSettings.Networks[n]; ep != nil && ep.IfName != "" {
		return ep.IfName
	}
	return fmt.Sprintf("eth%d", i)
}

// recordedPorts are the ports r's last start published (for a DEL that
// finds no CNI cache, which needs them to find portmap's rules).
func recordedPorts(r *record) []network.PortMapping {
	var out []network.PortMapping
	for key, bs := range r.NetworkSettings.Ports {
		port, proto, _ := strings.Cut(key, "/")
		cp, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			continue
		}
		for _, b := range bs {
			hp, err := strconv.ParseUint(b.HostPort, 10, 16)
			if err != nil {
				continue
			}
			ip := b.HostIP
			if ip == "0.0.0.0" {
				ip = ""
			}
			out = append(out, network.PortMapping{HostIP: ip, HostPort: uint16(hp), ContainerPort: uint16(cp), Protocol: proto})
		}
	}
	return out
}

// runtimeDelete forgets the container in its runtime (killing what is left).
func (e *Engine) runtimeDelete(ctx context.Context, r *record) {
	if _, err := os.Stat(filepath.Join(e.runtimeRoot(r.Runtime), r.ID)); errors.Is(err, os.ErrNotExist) {
		return
	}
	if _, err := e.runtimeCmd(ctx, r, "delete", "--force", r.ID); err != nil && !strings.Contains(err.Error(), "no such file") && !strings.Contains(err.Error(), "does not exist") {
		e.warn("container %s: %v", r.ID[:12], err)
	}
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
