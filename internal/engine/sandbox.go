package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/network"
)

// A sandbox is the set of namespaces that containers share: the CRI's pod.
// Berth holds a pod's namespaces without an infra container, as CRI-O does
// with pinned namespaces: the network, IPC and UTS namespaces are bind
// mounts under RUNROOT/sandboxes/ID, made by a thread that unshared them,
// so a pod with no containers costs no process and no memory beyond a few
// kernel objects. Only a pod whose containers share one PID namespace has a
// process: a PID namespace dies with its first process, so a tiny pause
// process (berth-monitor --pause) is its init and reaper.
//
// Containers join a sandbox with CreateOptions.SandboxID; their records say
// NetworkMode "sandbox:ID" (and IpcMode, UTSMode, PidMode likewise), and
// their /etc/hosts, /etc/resolv.conf and /etc/hostname are the sandbox's.
//
// A sandbox with a user namespace (the CRI's hostUsers: false) pins that
// namespace too, and its network, IPC and UTS namespaces are made inside it
// (a thread of a multithreaded process cannot enter a user namespace, so a
// short-lived child is cloned into all of them at once and its namespace
// files are pinned): they belong to the pod's user namespace, so the pod's
// root may set their sysctls and mount their sysfs and mqueue. Containers
// join the user namespace and see their image's files through idmapped
// mounts of its layers (sandbox_linux.go).

// SandboxConfig is a request to make a sandbox (the CRI's
// PodSandboxConfig, in the engine's terms).
type SandboxConfig struct {
	// Name is unique in the engine's namespace (the CRI server builds it
	// from the pod's metadata).
	Name        string            `json:"name"`
	Hostname    string            `json:"hostname,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Network is the network the sandbox joins ("" for none but the
	// loopback); ignored with HostNetwork.
	Network     string `json:"network,omitempty"`
	HostNetwork bool   `json:"hostNetwork,omitempty"`
	HostIPC     bool   `json:"hostIPC,omitempty"`
	HostPID     bool   `json:"hostPID,omitempty"`
	// SharePID gives the sandbox's containers one PID namespace.
	SharePID   bool          `json:"sharePID,omitempty"`
	Ports      []SandboxPort `json:"ports,omitempty"`
	DNS        []string      `json:"dns,omitempty"`
	DNSSearch  []string      `json:"dnsSearch,omitempty"`
	DNSOptions []string      `json:"dnsOptions,omitempty"`
	// Sysctls are applied in every container of the sandbox (they name
	// the namespaces the containers share).
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// CgroupParent is the cgroup under which the containers' cgroups go
	// ("" for Berth's own /berth).
	CgroupParent string `json:"cgroupParent,omitempty"`
	// Runtime is the runtime the sandbox's containers use ("" default).
	Runtime string `json:"runtime,omitempty"`
	// UserNS gives the sandbox a user namespace of its own; nil keeps the
	// host's.
	UserNS *SandboxUserNS `json:"userNS,omitempty"`
	// Extra is the front end's own record of the sandbox (the CRI
	// server's metadata), kept verbatim.
	Extra json.RawMessage `json:"extra,omitempty"`
}

// SandboxUserNS is the ID mapping of a sandbox's user namespace: each
// mapping says which host IDs the IDs ContainerID..ContainerID+Size-1 of
// the namespace are.
type SandboxUserNS struct {
	UIDMappings []specs.LinuxIDMapping `json:"uidMappings"`
	GIDMappings []specs.LinuxIDMapping `json:"gidMappings"`
}

// SandboxPort is a port of the sandbox published on the host.
type SandboxPort struct {
	HostIP        string `json:"hostIP,omitempty"`
	HostPort      uint16 `json:"hostPort"`
	ContainerPort uint16 `json:"containerPort"`
	Protocol      string `json:"protocol"` // tcp, udp, sctp
}

// Sandbox states.
const (
	SandboxReady    = "ready"
	SandboxNotReady = "notready"
)

// Sandbox is a sandbox's record and its inspection.
type Sandbox struct {
	ID        string        `json:"id"`
	Namespace string        `json:"namespace"`
	Created   time.Time     `json:"created"`
	State     string        `json:"state"`
	Config    SandboxConfig `json:"config"`
	// NetNSPath is the pinned network namespace ("" with the host's, or
	// when stopped).
	NetNSPath string `json:"netnsPath,omitempty"`
	IPCPath   string `json:"ipcPath,omitempty"`
	UTSPath   string `json:"utsPath,omitempty"`
	// UserNSPath is the pinned user namespace ("" for the host's).
	UserNSPath string `json:"userNSPath,omitempty"`
	PausePid   int    `json:"pausePid,omitempty"`
	// IP is the address on the sandbox's network; AdditionalIPs others.
	IP            string                       `json:"ip,omitempty"`
	AdditionalIPs []string                     `json:"additionalIPs,omitempty"`
	Networks      map[string]*EndpointSettings `json:"networks,omitempty"`
	// The files every container of the sandbox sees.
	HostsPath      string `json:"hostsPath"`
	ResolvConfPath string `json:"resolvConfPath"`
	HostnamePath   string `json:"hostnamePath"`
}

var (
	bucketSandboxes    = []byte("sandboxes")
	bucketSandboxNames = []byte("sandboxNames")
)

// sandboxUpdate runs fn in a write transaction on the namespace's sandbox
// buckets.
func (s *store) sandboxUpdate(fn func(sbs, names *bolt.Bucket) error) error {
	return s.updatePair(bucketSandboxes, bucketSandboxNames, fn)
}

// sandboxView runs fn in a read transaction; the buckets are nil when the
// namespace has never held a sandbox.
func (s *store) sandboxView(fn func(sbs, names *bolt.Bucket) error) error {
	return s.viewPair(bucketSandboxes, bucketSandboxNames, fn)
}

func (s *store) addSandbox(sb *Sandbox) error {
	return s.sandboxUpdate(func(b, n *bolt.Bucket) error {
		if id := n.Get([]byte(sb.Config.Name)); id != nil {
			return fmt.Errorf("the sandbox name %q is already in use by sandbox %s: %w", sb.Config.Name, id, errdefs.ErrAlreadyExists)
		}
		v, err := json.Marshal(sb)
		if err != nil {
			return err
		}
		if err := n.Put([]byte(sb.Config.Name), []byte(sb.ID)); err != nil {
			return err
		}
		return b.Put([]byte(sb.ID), v)
	})
}

func (s *store) putSandbox(sb *Sandbox) error {
	return s.sandboxUpdate(func(b, _ *bolt.Bucket) error {
		if b.Get([]byte(sb.ID)) == nil {
			return fmt.Errorf("sandbox %s: %w", sb.ID, errdefs.ErrNotFound)
		}
		v, err := json.Marshal(sb)
		if err != nil {
			return err
		}
		return b.Put([]byte(sb.ID), v)
	})
}

func (s *store) removeSandbox(id string) error {
	return s.sandboxUpdate(func(b, n *bolt.Bucket) error {
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		var sb Sandbox
		if err := json.Unmarshal(v, &sb); err == nil && string(n.Get([]byte(sb.Config.Name))) == id {
			if err := n.Delete([]byte(sb.Config.Name)); err != nil {
				return err
			}
		}
		return b.Delete([]byte(id))
	})
}

// getSandbox finds a sandbox by ID, name or unique ID prefix.
func (s *store) getSandbox(ref string) (*Sandbox, error) {
	var out *Sandbox
	err := s.sandboxView(func(b, n *bolt.Bucket) error {
		v, err := lookup(b, n, ref, ref, "sandbox")
		if v == nil || err != nil {
			return err
		}
		var sb Sandbox
		if err := json.Unmarshal(v, &sb); err != nil {
			return fmt.Errorf("sandbox %s: corrupt record: %w", ref, err)
		}
		out = &sb
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("no such sandbox: %s: %w", ref, errdefs.ErrNotFound)
	}
	return out, nil
}

func (s *store) listSandboxes() ([]*Sandbox, error) {
	var out []*Sandbox
	err := s.sandboxView(func(b, _ *bolt.Bucket) error {
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var sb Sandbox
			if err := json.Unmarshal(v, &sb); err != nil {
				return fmt.Errorf("sandbox %s: corrupt record: %w", k, err)
			}
			out = append(out, &sb)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

func (e *Engine) sandboxDir(id string) string {
	return filepath.Join(e.opts.Root, "sandboxes", id)
}

func (e *Engine) sandboxRunDir(id string) string {
	return filepath.Join(e.opts.RunRoot, "sandboxes", id)
}

// RunSandbox makes a sandbox and brings it up: its namespaces, its network
// (with the published ports) and the files its containers share. On any
// error nothing is left: no namespace, lease, rule, process or record.
func (e *Engine) RunSandbox(ctx context.Context, cfg SandboxConfig) (_ Sandbox, retErr error) {
	if cfg.Name == "" || len(cfg.Name) > 253 || !validName(cfg.Name) {
		return Sandbox{}, fmt.Errorf("invalid sandbox name %q: 1 to 253 characters of [a-zA-Z0-9][a-zA-Z0-9_.-]: %w", cfg.Name, errdefs.ErrInvalidArgument)
	}
	if err := e.checkCgroupParent(cfg.CgroupParent); err != nil {
		return Sandbox{}, err
	}
	if cfg.HostNetwork && len(cfg.Ports) > 0 {
		// The CRI allows ports with the host's network: they are the
		// host's ports already; nothing to publish.
		cfg.Ports = nil
	}
	for i, p := range cfg.Ports {
		switch p.Protocol {
		case "tcp", "udp", "sctp":
		case "":
			cfg.Ports[i].Protocol = "tcp"
		default:
			return Sandbox{}, fmt.Errorf("port mapping %d: protocol %q: want tcp, udp or sctp: %w", i, p.Protocol, errdefs.ErrInvalidArgument)
		}
		if p.ContainerPort == 0 {
			return Sandbox{}, fmt.Errorf("port mapping %d: container port 0: %w", i, errdefs.ErrInvalidArgument)
		}
	}
	if cfg.Network != "" && !cfg.HostNetwork {
		if err := network.ValidateName(cfg.Network); err != nil {
			return Sandbox{}, err
		}
	}
	if _, _, err := e.runtimeFor(cfg.Runtime); err != nil {
		return Sandbox{}, err
	}
	if err := validateSandboxSysctls(cfg); err != nil {
		return Sandbox{}, err
	}
	if err := validateSandboxUserNS(cfg); err != nil {
		return Sandbox{}, err
	}
	if cfg.UserNS != nil && !e.UserNSRuntime(cfg.Runtime) {
		return Sandbox{}, fmt.Errorf("runtime %q does not take pod user namespaces (berth-runtime does): %w", cfg.Runtime, errdefs.ErrFailedPrecondition)
	}
	id := newID()
	sb := &Sandbox{
		ID:             id,
		Namespace:      e.opts.Namespace,
		Created:        time.Now().UTC(),
		State:          SandboxNotReady,
		Config:         cfg,
		Networks:       map[string]*EndpointSettings{},
		HostsPath:      filepath.Join(e.sandboxDir(id), "hosts"),
		ResolvConfPath: filepath.Join(e.sandboxDir(id), "resolv.conf"),
		HostnamePath:   filepath.Join(e.sandboxDir(id), "hostname"),
	}
	if sb.Config.Hostname == "" && !cfg.HostNetwork {
		sb.Config.Hostname = id[:12]
	}
	if err := os.MkdirAll(e.sandboxDir(id), 0o711); err != nil {
		return Sandbox{}, fmt.Errorf("create sandbox directory: %w", err)
	}
	if err := e.store.addSandbox(sb); err != nil {
		os.RemoveAll(e.sandboxDir(id))
		return Sandbox{}, err
	}
	defer func() {
		if retErr != nil {
			bg := context.Background()
			e.teardownSandbox(bg, sb)
			e.store.removeSandbox(id)
			os.RemoveAll(e.sandboxDir(id))
		}
	}()
	if err := e.setupSandbox(ctx, sb); err != nil {
		return Sandbox{}, err
	}
	sb.State = SandboxReady
	if err := e.store.putSandbox(sb); err != nil {
		return Sandbox{}, err
	}
	e.emitSandbox(ctx, "start", sb)
	return *sb, nil
}

// setupSandbox pins the sandbox's namespaces, joins its network and writes
// its files; what it makes can be found and undone by teardownSandbox
// after a crash: the network namespace's path follows from the sandbox's
// ID and the network from its config (both recorded by RunSandbox), and
// the pause process's pid is in its run directory (pause.pid) from its
// start, before the sandbox's record has it. The IPC/UTS pins
// and the pause process need nothing from the network, so they are made
// while the CNI plugins run (most of a pod's start), not after them.
func (e *Engine) setupSandbox(ctx context.Context, sb *Sandbox) error {
	cfg := sb.Config
	rundir := e.sandboxRunDir(sb.ID)
	if err := os.MkdirAll(rundir, 0o711); err != nil {
		return fmt.Errorf("create sandbox run directory: %w", err)
	}
	var atts []network.Attachment
	if !cfg.HostNetwork {
		ports := make([]network.PortMapping, 0, len(cfg.Ports))
		for _, p := range cfg.Ports {
			ports = append(ports, network.PortMapping{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
		}
		if err := e.net.CheckPorts(ports); err != nil {
			return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
		}
		var nsPath string
		if cfg.UserNS != nil {
			// Every namespace at once, inside the new user namespace;
			// recorded before CNI runs in it.
			if err := e.pinSandboxUserNS(ctx, sb); err != nil {
				return err
			}
			nsPath = sb.NetNSPath
		} else {
			// Not recorded: teardownSandbox finds it by the sandbox's ID.
			p, err := e.net.NewNetNS(ctx, sb.ID)
			if err != nil {
				return err
			}
			nsPath = p
		}
		// sb is the other goroutine's until it is done: this one only
		// reads cfg and nsPath meanwhile.
		done := make(chan error, 1)
		go func() { done <- e.pinAndPause(ctx, sb) }()
		var att network.Attachment
		var err error
		if cfg.Network != "" {
			att, err = e.net.Attach(ctx, network.AttachRequest{
				ContainerID: sb.ID, NetNS: nsPath, Network: cfg.Network, IfName: "eth0",
				Name: cfg.Hostname, Ports: ports,
			})
			if err != nil {
				err = fmt.Errorf("network %s: %w", cfg.Network, err)
			}
		}
		// Wait even on error: teardownSandbox needs the pause's pid.
		if perr := <-done; err == nil {
			err = perr
		}
		sb.NetNSPath = nsPath
		if err != nil {
			return err
		}
		if cfg.Network != "" {
			atts = append(atts, att)
			sb.IP = att.IP
			sb.Networks[cfg.Network] = &EndpointSettings{
				NetworkID: cfg.Network, Gateway: att.Gateway, IPAddress: att.IP,
				IPPrefixLen: att.PrefixLen, MacAddress: att.MAC, IfName: att.IfName,
			}
		}
	} else if err := e.pinAndPause(ctx, sb); err != nil {
		return err
	}
	return e.writeSandboxFiles(sb, atts)
}

// pinAndPause pins the sandbox's IPC and UTS namespaces (unless it has a
// user namespace, whose pins pinSandboxUserNS made) and starts its pause
// process when it shares a PID namespace; the pause's pid is in pause.pid
// before it returns, so that a teardown after a crash ends it (the
// sandbox's record gets it with its readiness: no write of its own, which
// took the store's lock and two fdatasyncs in the middle of CNI).
func (e *Engine) pinAndPause(ctx context.Context, sb *Sandbox) error {
	cfg := sb.Config
	if cfg.UserNS == nil {
		pins, err := pinNamespaces(e.sandboxRunDir(sb.ID), cfg.Hostname, !cfg.HostIPC, !cfg.HostNetwork)
		if err != nil {
			return err
		}
		sb.IPCPath, sb.UTSPath = pins.ipc, pins.uts
	}
	if cfg.SharePID && !cfg.HostPID && sb.PausePid == 0 {
		pid, err := e.startPause(ctx, sb)
		if err != nil {
			return err
		}
		sb.PausePid = pid
	}
	return nil
}

// writeSandboxFiles writes the hosts, resolv.conf and hostname files the
// sandbox's containers bind.
func (e *Engine) writeSandboxFiles(sb *Sandbox, atts []network.Attachment) error {
	cfg := sb.Config
	hostname := cfg.Hostname
	var hosts []byte
	if cfg.HostNetwork {
		h, _ := os.Hostname()
		hostname = h
		hosts, _ = os.ReadFile("/etc/hosts")
	} else {
		hosts = network.HostsFile(hostname, "", atts, nil)
	}
	var resolv []byte
	if cfg.HostNetwork && len(cfg.DNS) == 0 && len(cfg.DNSSearch) == 0 && len(cfg.DNSOptions) == 0 {
		resolv, _ = os.ReadFile("/etc/resolv.conf")
	} else {
		resolv = e.net.ResolvConf(atts, cfg.DNS, cfg.DNSSearch, cfg.DNSOptions)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{sb.HostnamePath, []byte(hostname + "\n")}, {sb.HostsPath, hosts}, {sb.ResolvConfPath, resolv}} {
		if err := writeFileAtomic(f.path, f.data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return nil
}

// teardownSandbox undoes what setupSandbox did, whatever of it was done;
// it is idempotent.
func (e *Engine) teardownSandbox(ctx context.Context, sb *Sandbox) {
	pid := sb.PausePid
	if pid == 0 {
		// Not in the record yet (a RunSandbox cut short): the file
		// startPause wrote says; stopPause checks it is this sandbox's.
		pid = pausePidFile(e.sandboxRunDir(sb.ID))
	}
	if pid > 0 {
		stopPause(pid, e.sandboxRunDir(sb.ID))
		sb.PausePid = 0
	}
	if !sb.Config.HostNetwork {
		nsPath := sb.NetNSPath
		if nsPath == "" {
			nsPath = filepath.Join(e.opts.RunRoot, "network", "netns", sb.ID)
		}
		if sb.Config.Network != "" {
			ports := make([]network.PortMapping, 0, len(sb.Config.Ports))
			for _, p := range sb.Config.Ports {
				ports = append(ports, network.PortMapping{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
			}
			req := network.AttachRequest{ContainerID: sb.ID, NetNS: nsPath, Network: sb.Config.Network, IfName: "eth0", Name: sb.Config.Hostname, Ports: ports}
			if err := e.net.Detach(ctx, req); err != nil {
				e.warn("sandbox %s: network %s: %v", sb.ID[:12], sb.Config.Network, err)
			}
		}
		if err := e.net.RemoveNetNS(ctx, sb.ID); err != nil {
			e.warn("sandbox %s: %v", sb.ID[:12], err)
		}
	}
	unpinNamespaces(e.sandboxRunDir(sb.ID))
	os.RemoveAll(e.sandboxRunDir(sb.ID))
	sb.NetNSPath, sb.IPCPath, sb.UTSPath, sb.UserNSPath = "", "", "", ""
	sb.IP, sb.AdditionalIPs = "", nil
	sb.Networks = map[string]*EndpointSettings{}
}

// sandboxContainers are the records of the containers in sandbox id.
func (e *Engine) sandboxContainers(id string) ([]*record, error) {
	all, err := e.store.list()
	if err != nil {
		return nil, err
	}
	var out []*record
	for _, r := range all {
		if r.SandboxID == id && r.ID != id {
			out = append(out, r)
		}
	}
	return out, nil
}

// StopSandbox stops every container of the sandbox (each gets timeout to
// exit after its stop signal) and releases its namespaces, network and
// ports; the record stays, not ready. Stopping a stopped sandbox is not an
// error.
func (e *Engine) StopSandbox(ctx context.Context, ref string, timeout time.Duration) error {
	sb, err := e.store.getSandbox(ref)
	if err != nil {
		return err
	}
	cs, err := e.sandboxContainers(sb.ID)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range cs {
		if err := e.Stop(ctx, r.ID, &timeout); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			errs = append(errs, fmt.Errorf("container %s: %w", r.ID[:12], err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	e.teardownSandbox(ctx, sb)
	wasReady := sb.State == SandboxReady
	sb.State = SandboxNotReady
	if err := e.store.putSandbox(sb); err != nil {
		return err
	}
	if wasReady {
		e.emitSandbox(ctx, "stop", sb)
	}
	return nil
}

// RemoveSandbox removes the sandbox and every container in it, stopping
// what still runs. It is ErrNotFound if there is no such sandbox.
func (e *Engine) RemoveSandbox(ctx context.Context, ref string) error {
	sb, err := e.store.getSandbox(ref)
	if err != nil {
		return err
	}
	if err := e.StopSandbox(ctx, sb.ID, 0); err != nil {
		return err
	}
	cs, err := e.sandboxContainers(sb.ID)
	if err != nil {
		return err
	}
	for _, r := range cs {
		if err := e.Remove(ctx, r.ID, RemoveOptions{Force: true, Volumes: true}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("container %s: %w", r.ID[:12], err)
		}
	}
	if err := e.store.removeSandbox(sb.ID); err != nil {
		return err
	}
	os.RemoveAll(e.sandboxDir(sb.ID))
	e.emitSandbox(ctx, "remove", sb)
	return nil
}

// InspectSandbox returns the sandbox by ID, name or unique ID prefix.
func (e *Engine) InspectSandbox(ctx context.Context, ref string) (Sandbox, error) {
	sb, err := e.store.getSandbox(ref)
	if err != nil {
		return Sandbox{}, err
	}
	e.checkPause(sb)
	return *sb, nil
}

// ListSandboxes returns every sandbox of the namespace, oldest first.
func (e *Engine) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	sbs, err := e.store.listSandboxes()
	if err != nil {
		return nil, err
	}
	out := make([]Sandbox, 0, len(sbs))
	for _, sb := range sbs {
		e.checkPause(sb)
		out = append(out, *sb)
	}
	return out, nil
}

// checkPause marks a ready sandbox not ready when its namespaces are gone
// (the machine rebooted: RUNROOT is empty) or its pause process died.
func (e *Engine) checkPause(sb *Sandbox) {
	if sb.State != SandboxReady {
		return
	}
	gone := sb.NetNSPath != "" && !fileExists(sb.NetNSPath)
	if sb.PausePid > 0 && !pauseAlive(sb.PausePid, e.sandboxRunDir(sb.ID)) {
		gone = true
	}
	if gone {
		sb.State = SandboxNotReady
	}
}

// SandboxNetNS is the path of the sandbox's network namespace ("" for the
// host's); ErrFailedPrecondition when the sandbox is not ready.
func (e *Engine) SandboxNetNS(ctx context.Context, ref string) (string, error) {
	sb, err := e.InspectSandbox(ctx, ref)
	if err != nil {
		return "", err
	}
	if sb.State != SandboxReady {
		return "", fmt.Errorf("sandbox %s is not ready: %w", sb.ID[:12], errdefs.ErrFailedPrecondition)
	}
	return sb.NetNSPath, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (e *Engine) emitSandbox(ctx context.Context, action string, sb *Sandbox) {
	e.emitEvent(Event{Type: "sandbox", Action: action, Actor: EventActor{ID: sb.ID, Attributes: map[string]string{"name": sb.Config.Name}}})
}

// validateSandboxSysctls refuses sysctls that would reach the host: those
// of a namespace the sandbox does not own.
func validateSandboxSysctls(cfg SandboxConfig) error {
	hc := HostConfig{Sysctls: cfg.Sysctls, NetworkMode: "sandbox"}
	if cfg.HostNetwork {
		hc.NetworkMode = "host"
	}
	if cfg.HostIPC {
		hc.IpcMode = "host"
	}
	_, err := validateSysctls(hc)
	return err
}

// joinSandbox points a container's record at its sandbox's namespaces and
// files.
func (e *Engine) joinSandbox(r *record, sb *Sandbox) {
	hc := &r.HostConfig
	r.SandboxID = sb.ID
	hc.NetworkMode = "sandbox:" + sb.ID
	if sb.Config.HostNetwork {
		hc.NetworkMode = "host"
		hc.UTSMode = "host"
	} else {
		hc.UTSMode = "sandbox:" + sb.ID
	}
	hc.IpcMode = "sandbox:" + sb.ID
	if sb.Config.HostIPC {
		hc.IpcMode = "host"
	}
	switch {
	case sb.Config.HostPID:
		hc.PidMode = "host"
	case sb.Config.SharePID:
		hc.PidMode = "sandbox:" + sb.ID
	}
	if len(sb.Config.Sysctls) > 0 {
		merged := map[string]string{}
		for k, v := range sb.Config.Sysctls {
			merged[k] = v
		}
		for k, v := range hc.Sysctls {
			merged[k] = v
		}
		hc.Sysctls = merged
	}
	r.Config.Hostname = sb.Config.Hostname
	r.HostsPath, r.ResolvConfPath, r.HostnamePath = sb.HostsPath, sb.ResolvConfPath, sb.HostnamePath
	r.CgroupParent = sb.Config.CgroupParent
	r.NetworkNames, r.Aliases, r.Ports = nil, nil, nil
}

// sandboxNamespaces resolves a container's "sandbox:ID" namespace modes
// into the sandbox's pinned namespace files.
func (e *Engine) sandboxNamespaces(r *record, in *SpecInput) error {
	hc := r.HostConfig
	var sb *Sandbox
	for _, mode := range []string{hc.IpcMode, hc.UTSMode, hc.PidMode} {
		id, ok := strings.CutPrefix(mode, "sandbox:")
		if !ok {
			continue
		}
		if sb == nil {
			s, err := e.store.getSandbox(id)
			if err != nil {
				return err
			}
			e.checkPause(s)
			if s.State != SandboxReady {
				return fmt.Errorf("sandbox %s is not ready: %w", s.ID[:12], errdefs.ErrFailedPrecondition)
			}
			sb = s
		}
	}
	if sb == nil {
		return nil
	}
	if strings.HasPrefix(hc.IpcMode, "sandbox:") {
		in.IPCNSPath = sb.IPCPath
	}
	if strings.HasPrefix(hc.UTSMode, "sandbox:") {
		in.UTSNSPath = sb.UTSPath
	}
	if strings.HasPrefix(hc.PidMode, "sandbox:") {
		if sb.PausePid == 0 {
			return fmt.Errorf("sandbox %s shares no PID namespace: %w", sb.ID[:12], errdefs.ErrFailedPrecondition)
		}
		in.PIDNSPath = fmt.Sprintf("/proc/%d/ns/pid", sb.PausePid)
	}
	return nil
}

// UserNSRuntime says whether the runtime name ("" for the default) takes
// sandboxes with a user namespace: berth-runtime joins the namespace by
// path and makes the idmapped binds; Debian 12's runc 1.1 and crun 1.8
// have no idmapped mounts, and runsc has namespaces of its own.
func (e *Engine) UserNSRuntime(name string) bool {
	_, bin, err := e.runtimeFor(name)
	return err == nil && filepath.Base(bin) == "berth-runtime"
}

// maxIDMapLines is the kernel's limit on the lines of a uid_map or gid_map.
const maxIDMapLines = 340

// validateSandboxUserNS refuses a user namespace the kernel would refuse,
// one that maps the host's root into the pod (the pod's root would be the
// host's), and one beside a host namespace (a network, IPC or PID
// namespace of the host's is not the pod's user namespace's to own).
func validateSandboxUserNS(cfg SandboxConfig) error {
	u := cfg.UserNS
	if u == nil {
		return nil
	}
	for _, c := range []struct {
		host bool
		what string
	}{{cfg.HostNetwork, "network"}, {cfg.HostIPC, "IPC"}, {cfg.HostPID, "PID"}} {
		if c.host {
			return fmt.Errorf("userNS: a sandbox with its own user namespace cannot use the host's %s namespace: %w", c.what, errdefs.ErrInvalidArgument)
		}
	}
	if err := validateIDMap("userNS.uidMappings", u.UIDMappings); err != nil {
		return err
	}
	return validateIDMap("userNS.gidMappings", u.GIDMappings)
}

func validateIDMap(field string, ms []specs.LinuxIDMapping) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	if len(ms) == 0 {
		return bad("no mapping")
	}
	if len(ms) > maxIDMapLines {
		return bad("%d mappings, over the kernel's %d", len(ms), maxIDMapLines)
	}
	const top = 1 << 32
	rootMapped := false
	for i, m := range ms {
		end := uint64(m.ContainerID) + uint64(m.Size)
		switch {
		case m.Size == 0:
			return bad("mapping %d has length 0", i)
		case end > top || uint64(m.HostID)+uint64(m.Size) > top:
			return bad("mapping %d (%d %d %d) runs past the 32-bit ID space", i, m.ContainerID, m.HostID, m.Size)
		case m.HostID == 0:
			return bad("mapping %d maps the host's root (host ID 0) into the sandbox", i)
		}
		if m.ContainerID == 0 {
			rootMapped = true
		}
		for j, o := range ms[:i] {
			if overlap(m.ContainerID, m.Size, o.ContainerID, o.Size) {
				return bad("mappings %d and %d overlap in container IDs", j, i)
			}
			if overlap(m.HostID, m.Size, o.HostID, o.Size) {
				return bad("mappings %d and %d overlap in host IDs", j, i)
			}
		}
	}
	if !rootMapped {
		return bad("container ID 0 (root) is not mapped")
	}
	return nil
}

func overlap(a, alen, b, blen uint32) bool {
	return uint64(a) < uint64(b)+uint64(blen) && uint64(b) < uint64(a)+uint64(alen)
}

// hostIDOf is the host ID that id of a user namespace with mappings ms is;
// ok is false when ms does not map it.
func hostIDOf(ms []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, m := range ms {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return m.HostID + (id - m.ContainerID), true
		}
	}
	return 0, false
}

// sandboxUserNS is the sandbox whose user namespace the container of r
// joins, nil when it keeps the host's.
func (e *Engine) sandboxUserNS(r *record) (*Sandbox, error) {
	// Every container of a sandbox with a user namespace has the
	// sandbox's IPC namespace (joinSandbox; no host IPC with a user
	// namespace); SandboxID alone is Docker's field, set on any
	// container.
	id, ok := strings.CutPrefix(r.HostConfig.IpcMode, "sandbox:")
	if !ok {
		return nil, nil
	}
	sb, err := e.store.getSandbox(id)
	if err != nil {
		return nil, err
	}
	if sb.Config.UserNS == nil {
		return nil, nil
	}
	if sb.UserNSPath == "" {
		return nil, fmt.Errorf("sandbox %s is not ready: its user namespace is gone: %w", sb.ID[:12], errdefs.ErrFailedPrecondition)
	}
	return sb, nil
}

// applySandboxUserNS puts the container of r into its sandbox's user
// namespace: the namespace to join, its mappings (which a runtime checks
// against the joined namespace), and the mappings of the binds that ask
// for an idmapped mount.
func (e *Engine) applySandboxUserNS(r *record, spec *specs.Spec) error {
	sb, err := e.sandboxUserNS(r)
	if err != nil || sb == nil {
		return err
	}
	u := sb.Config.UserNS
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: sb.UserNSPath})
	spec.Linux.UIDMappings, spec.Linux.GIDMappings = u.UIDMappings, u.GIDMappings
	spec.Root.Path = e.podRootfs(r.ID)
	mapped := map[string]bool{
		// The sandbox's /etc files, root's on the host, are the pod's
		// root's inside (as in a container of the host's namespace).
		sb.HostsPath: true, sb.ResolvConfPath: true, sb.HostnamePath: true,
	}
	for _, mp := range r.Mounts {
		// The engine's own volumes are mapped too: their files (an
		// image's, copied up) are root's on the host and must be the
		// pod's root's inside.
		if mp.IDMap || mp.Type == "volume" {
			mapped[mp.Source] = true
		}
	}
	for i := range spec.Mounts {
		if m := &spec.Mounts[i]; m.Type == "bind" && mapped[m.Source] {
			m.UIDMappings, m.GIDMappings = u.UIDMappings, u.GIDMappings
		}
	}
	return nil
}
