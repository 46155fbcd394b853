package initproc

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Environment variables through which the runtime hands the init its file
// descriptors. The C constructor reads _BERTH_INITPIPE (nsenter.c).
const (
	EnvInitPipe = "_BERTH_INITPIPE"
	EnvFifoFd   = "_BERTH_FIFOFD"
	EnvConsole  = "_BERTH_CONSOLEFD"
	EnvPreserve = "_BERTH_PRESERVE_FDS"
	EnvLogFd    = "_BERTH_LOGFD"
	// EnvLateMounts: the runtime sends, before the config, one message
	// with at most this many fds of bind mounts (Config.LateMounts).
	EnvLateMounts = "_BERTH_LATE_MOUNTS"
	// EnvPrespawned: the init was started before the runtime read the
	// spec (fastpath/prespawn.c, which sets it); the runtime sends, before
	// the config, one message with the exec fifo's fd.
	EnvPrespawned = "_BERTH_PREFDS"
)

// Messages between the runtime and the Go part of the init, one JSON object
// each, on the sync socket.

const (
	MsgConfig    = "config"     // runtime → init: what to set up
	MsgHooksDone = "hooks-done" // runtime → init: prestart/createRuntime hooks ran

	ReplyHooks   = "hooks"   // init → runtime: mounts done, run the runtime-namespace hooks
	ReplySeccomp = "seccomp" // init → runtime: a seccomp listener fd to hand on
	ReplyReady   = "ready"   // init → runtime: set up, about to wait for start (or exec)
	ReplyError   = "error"   // init → runtime: setup failed; Error says why
	// init → berth-runtime's constructor: a self-create (InitSelf) that
	// cannot take this config; nothing was made.
	ReplyFallback = "fallback"
)

type Message struct {
	Type   string  `json:"type"`
	Config *Config `json:"config,omitempty"`
}

type Config struct {
	Exec   bool   `json:"exec,omitempty"`
	ID     string `json:"id"`
	Bundle string `json:"bundle"`
	// Spec is sent as Wire (WireSpec), which spawn fills in and the
	// init turns back into Spec.
	Spec         *specs.Spec       `json:"-"`
	Wire         *WireSpec         `json:"spec"`
	Process      *specs.Process    `json:"process,omitempty"` // exec only: a container's init takes Spec.Process
	NoPivot      bool              `json:"no_pivot,omitempty"`
	NoNewKeyring bool              `json:"no_new_keyring,omitempty"`
	CgroupPaths  map[string]string `json:"cgroup_paths,omitempty"`
	State        specs.State       `json:"state"` // for hooks run by the init
	// NoHooksWait: nothing happens between the init's mounts and its
	// pivot_root on the runtime's side (no prestart, createRuntime,
	// createContainer or startContainer hooks, no seccomp filter to
	// hand over, not a rootfs bound in the host's mount namespace), so
	// the init goes on without the hooks/hooks-done exchange.
	NoHooksWait bool `json:"no_hooks_wait,omitempty"`
	// CgroupNS: make the container's cgroup namespace, first thing. An
	// init the runtime started before reading the spec (a prespawned
	// stage) was put in the container's cgroup only after it was forked,
	// and a cgroup namespace is rooted where its maker is.
	CgroupNS bool `json:"cgroupns,omitempty"`
	// MountFds: for mounts[i], the fd of an idmapped mount to attach.
	MountFds map[int]int `json:"mount_fds,omitempty"`
	// LateMounts: the mounts, by index, that the fds the runtime sent
	// before the config are for, in their order (added to MountFds).
	LateMounts []int `json:"late_mounts,omitempty"`
	// RootFd, for an exec'd process of a container without a mount
	// namespace of its own: an O_PATH fd of the init's root to chroot to.
	RootFd int `json:"root_fd,omitempty"`
	// Seccomp is linux.seccomp compiled by the runtime (seccomp.Program's
	// MarshalBinary): the init installs it and never compiles, so the
	// libseccomp work stays off the path between start and the exec.
	Seccomp []byte `json:"seccomp,omitempty"`
}

type Reply struct {
	Type  string `json:"type"`
	Error string `json:"error,omitempty"`
	Fd    int    `json:"fd,omitempty"`
}

// WireSpec is what the init receives of the container's spec: specs.Spec
// without the parts only the runtime reads. encoding/json builds its
// field tables and encoders for the whole type graph of what it decodes,
// not only for the fields present: for specs.Spec that is every platform's
// section and every cgroup resource type, ~240 KB of allocation and ~60
// more page faults in every create's init before it can mount anything.
// The init then decodes this smaller graph (initSpecOmits lists what is
// left out and why; a test fails when runtime-spec grows a field that is
// in neither).
type WireSpec struct {
	Version     string            `json:"ociVersion"`
	Process     *specs.Process    `json:"process,omitempty"`
	Root        *specs.Root       `json:"root,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	Domainname  string            `json:"domainname,omitempty"`
	Mounts      []specs.Mount     `json:"mounts,omitempty"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *initLinux        `json:"linux,omitempty"`
}

// initLinux is specs.Linux as the init needs it.
type initLinux struct {
	UIDMappings       []specs.LinuxIDMapping           `json:"uidMappings,omitempty"`
	GIDMappings       []specs.LinuxIDMapping           `json:"gidMappings,omitempty"`
	Sysctl            map[string]string                `json:"sysctl,omitempty"`
	CgroupsPath       string                           `json:"cgroupsPath,omitempty"`
	Namespaces        []specs.LinuxNamespace           `json:"namespaces,omitempty"`
	Devices           []specs.LinuxDevice              `json:"devices,omitempty"`
	RootfsPropagation string                           `json:"rootfsPropagation,omitempty"`
	MaskedPaths       []string                         `json:"maskedPaths,omitempty"`
	ReadonlyPaths     []string                         `json:"readonlyPaths,omitempty"`
	MountLabel        string                           `json:"mountLabel,omitempty"`
	Personality       *specs.LinuxPersonality          `json:"personality,omitempty"`
	TimeOffsets       map[string]specs.LinuxTimeOffset `json:"timeOffsets,omitempty"`
	// Cpus is linux.resources.cpu.cpus, for the error of a scheduler
	// the kernel refuses because of it (the cgroup itself is the
	// runtime's).
	Cpus string `json:"cpus,omitempty"`
	// Seccomp says that linux.seccomp is set: the init installs the
	// filter the runtime compiled (Config.Seccomp) and must refuse
	// to go on without one; it never reads the profile itself.
	Seccomp bool `json:"seccomp,omitempty"`
}

// initSpecOmits are the fields of specs.Spec and specs.Linux that the
// init never reads: other platforms' sections, and what the runtime does
// on the host (cgroup resources, RDT, memory policy, network devices).
var initSpecOmits = map[string]bool{
	"Spec.Solaris": true, "Spec.Windows": true, "Spec.VM": true, "Spec.ZOS": true, "Spec.FreeBSD": true,
	"Linux.Resources": true, "Linux.NetDevices": true, "Linux.IntelRdt": true, "Linux.MemoryPolicy": true,
}

// NewWireSpec is the part of s that the init gets.
func NewWireSpec(s *specs.Spec) *WireSpec {
	if s == nil {
		return nil
	}
	w := &WireSpec{
		Version: s.Version, Process: s.Process, Root: s.Root, Hostname: s.Hostname,
		Domainname: s.Domainname, Mounts: s.Mounts, Hooks: s.Hooks, Annotations: s.Annotations,
	}
	if l := s.Linux; l != nil {
		w.Linux = &initLinux{
			UIDMappings: l.UIDMappings, GIDMappings: l.GIDMappings, Sysctl: l.Sysctl,
			CgroupsPath: l.CgroupsPath, Namespaces: l.Namespaces, Devices: l.Devices,
			RootfsPropagation: l.RootfsPropagation, MaskedPaths: l.MaskedPaths,
			ReadonlyPaths: l.ReadonlyPaths, MountLabel: l.MountLabel,
			Personality: l.Personality, TimeOffsets: l.TimeOffsets, Seccomp: l.Seccomp != nil,
		}
		if r := l.Resources; r != nil && r.CPU != nil {
			w.Linux.Cpus = r.CPU.Cpus
		}
	}
	return w
}

// spec is w as a specs.Spec for the init's code. linux.seccomp, when set,
// is an empty profile: the init only tests it for nil.
func (w *WireSpec) spec() *specs.Spec {
	if w == nil {
		return nil
	}
	s := &specs.Spec{
		Version: w.Version, Process: w.Process, Root: w.Root, Hostname: w.Hostname,
		Domainname: w.Domainname, Mounts: w.Mounts, Hooks: w.Hooks, Annotations: w.Annotations,
	}
	if l := w.Linux; l != nil {
		s.Linux = &specs.Linux{
			UIDMappings: l.UIDMappings, GIDMappings: l.GIDMappings, Sysctl: l.Sysctl,
			CgroupsPath: l.CgroupsPath, Namespaces: l.Namespaces, Devices: l.Devices,
			RootfsPropagation: l.RootfsPropagation, MaskedPaths: l.MaskedPaths,
			ReadonlyPaths: l.ReadonlyPaths, MountLabel: l.MountLabel,
			Personality: l.Personality, TimeOffsets: l.TimeOffsets,
		}
		if l.Seccomp {
			s.Linux.Seccomp = &specs.LinuxSeccomp{}
		}
		if l.Cpus != "" {
			s.Linux.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: l.Cpus}}
		}
	}
	return s
}
