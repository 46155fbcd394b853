package engine

import (
	"encoding/json"
	"time"

	"github.com/berth-project/berth/internal/monitor"
)

// The types below are the engine's API and its stored records. Their JSON
// names are Docker's (`docker inspect`), so that `berth inspect` answers the
// templates and scripts people already have: .State.Status, .State.Pid,
// .Config.Env, .HostConfig.Memory, .NetworkSettings.Networks.NAME.IPAddress.
// Field sets are those Berth implements; Docker's others are absent, not
// zero.

// Config is what a container runs: Docker's container.Config. The CLI fills
// it from flags (run/create), the engine completes it from the image.
type Config struct {
	Hostname     string              `json:"Hostname"`
	Domainname   string              `json:"Domainname"`
	User         string              `json:"User"`
	AttachStdin  bool                `json:"AttachStdin"`
	AttachStdout bool                `json:"AttachStdout"`
	AttachStderr bool                `json:"AttachStderr"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"` // "80/tcp"
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StdinOnce    bool                `json:"StdinOnce"`
	Env          []string            `json:"Env"`
	// Cmd and Entrypoint: nil means "the image's"; Entrypoint set to an
	// empty slice (--entrypoint "") clears the image's entrypoint.
	Cmd         []string            `json:"Cmd"`
	Healthcheck *HealthConfig       `json:"Healthcheck,omitempty"`
	Image       string              `json:"Image"` // as the user named it
	Volumes     map[string]struct{} `json:"Volumes,omitempty"`
	WorkingDir  string              `json:"WorkingDir"`
	Entrypoint  []string            `json:"Entrypoint"`
	Labels      map[string]string   `json:"Labels"`
	StopSignal  string              `json:"StopSignal,omitempty"`
	StopTimeout *int                `json:"StopTimeout,omitempty"` // seconds; nil: 10
}

// HealthConfig is Docker's healthcheck: Test is ["CMD", args...],
// ["CMD-SHELL", "cmd"] or ["NONE"].
type HealthConfig struct {
	Test        []string      `json:"Test,omitempty"`
	Interval    time.Duration `json:"Interval,omitempty"`
	Timeout     time.Duration `json:"Timeout,omitempty"`
	StartPeriod time.Duration `json:"StartPeriod,omitempty"`
	Retries     int           `json:"Retries,omitempty"`
}

// HostConfig is how the host runs the container: Docker's
// container.HostConfig.
type HostConfig struct {
	// Binds are "-v" values as given: "name:/ctr[:ro]", "/host:/ctr[:ro]"
	// or "/ctr" (an anonymous volume). The engine turns them into Mounts.
	Binds         []string                 `json:"Binds"`
	NetworkMode   string                   `json:"NetworkMode"`  // "bridge" (default), "none", "host", a network name, "container:ID"
	PortBindings  map[string][]PortBinding `json:"PortBindings"` // "80/tcp" → host bindings
	RestartPolicy RestartPolicy            `json:"RestartPolicy"`
	AutoRemove    bool                     `json:"AutoRemove"`
	// Mounts are --mount values and --tmpfs, parsed.
	Mounts          []Mount           `json:"Mounts,omitempty"`
	Tmpfs           map[string]string `json:"Tmpfs,omitempty"` // path → options ("size=64m")
	CapAdd          []string          `json:"CapAdd"`
	CapDrop         []string          `json:"CapDrop"`
	DNS             []string          `json:"Dns"`
	DNSOptions      []string          `json:"DnsOptions"`
	DNSSearch       []string          `json:"DnsSearch"`
	ExtraHosts      []string          `json:"ExtraHosts"` // "host:ip"
	IpcMode         string            `json:"IpcMode"`    // "private" (default), "host", "container:ID", "shareable"
	PidMode         string            `json:"PidMode"`    // "" (private), "host", "container:ID"
	UTSMode         string            `json:"UTSMode"`    // "" or "host"
	Privileged      bool              `json:"Privileged"`
	PublishAllPorts bool              `json:"PublishAllPorts"`
	ReadonlyRootfs  bool              `json:"ReadonlyRootfs"`
	SecurityOpt     []string          `json:"SecurityOpt"` // "no-new-privileges", "seccomp=FILE", "seccomp=unconfined"
	Runtime         string            `json:"Runtime"`     // a configured runtime's name; "" = the default
	Init            *bool             `json:"Init,omitempty"`
	Sysctls         map[string]string `json:"Sysctls,omitempty"`
	// GroupAdd are supplementary groups (numeric IDs or names in the
	// image's /etc/group) added to the user's own.
	GroupAdd []string `json:"GroupAdd,omitempty"`
	// SupplementalGroupsPolicy is Kubernetes' pod field: "Merge" adds
	// the groups the image's /etc/group gives the user to GroupAdd,
	// "Strict" uses GroupAdd alone; both put the primary group among the
	// supplementary ones, as Kubernetes expects. "" is Docker's: Merge
	// without the primary group.
	SupplementalGroupsPolicy string `json:"SupplementalGroupsPolicy,omitempty"`
	// Devices are host devices given to the container (--device).
	Devices []DeviceMapping `json:"Devices,omitempty"`
	// OomScoreAdj is the container's oom_score_adj (0: inherited).
	OomScoreAdj int `json:"OomScoreAdj,omitempty"`
	// MaskedPaths and ReadonlyPaths replace Docker's defaults when not
	// nil (an empty list: none).
	MaskedPaths   []string `json:"MaskedPaths,omitempty"`
	ReadonlyPaths []string `json:"ReadonlyPaths,omitempty"`
	// Annotations go to the runtime in the spec (Docker's
	// HostConfig.Annotations): the CRI's io.kubernetes.cri.* for runtimes
	// that run pods in a sandbox of their own (runsc, kata).
	Annotations map[string]string `json:"Annotations,omitempty"`
	Resources
}

// Resources are the limits: Docker's container.Resources.
type Resources struct {
	Memory            int64  `json:"Memory"`     // bytes; 0 = unlimited
	MemorySwap        int64  `json:"MemorySwap"` // memory+swap; -1 = unlimited swap; 0 = twice Memory (Docker)
	MemoryReservation int64  `json:"MemoryReservation"`
	NanoCPUs          int64  `json:"NanoCpus"` // --cpus × 1e9
	CPUShares         int64  `json:"CpuShares"`
	CPUSetCPUs        string `json:"CpusetCpus"`
	CPUSetMems        string `json:"CpusetMems,omitempty"`
	// CPUPeriod and CPUQuota (microseconds) are the CFS bandwidth limit
	// as kubelet sets it; NanoCPUs is the same as a CPU count.
	CPUPeriod int64  `json:"CpuPeriod,omitempty"`
	CPUQuota  int64  `json:"CpuQuota,omitempty"`
	PidsLimit *int64 `json:"PidsLimit"`
}

// PortBinding is one host side of a published port.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"` // "" or "0": a free port is chosen
}

// RestartPolicy is Docker's: Name "no" (or ""), "always", "unless-stopped",
// "on-failure" (MaximumRetryCount > 0 bounds it).
type RestartPolicy struct {
	Name              string `json:"Name"`
	MaximumRetryCount int    `json:"MaximumRetryCount"`
}

// Mount is a --mount value: Docker's mount.Mount.
type Mount struct {
	Type     string `json:"Type"`             // "bind", "volume", "tmpfs", "image" (always read-only)
	Source   string `json:"Source,omitempty"` // for "image": the image's name or ID
	Target   string `json:"Target"`
	ReadOnly bool   `json:"ReadOnly,omitempty"`
	// TmpfsSize in bytes (tmpfs only); TmpfsMode its permission bits.
	TmpfsSize int64  `json:"TmpfsSize,omitempty"`
	TmpfsMode uint32 `json:"TmpfsMode,omitempty"`
	// BindPropagation is a bind's: rprivate (default), rshared, rslave.
	BindPropagation string `json:"BindPropagation,omitempty"`
	// ImageSubPath is the directory of the image mounted ("image" only;
	// "": its root).
	ImageSubPath string `json:"ImageSubPath,omitempty"`
	// IDMap makes a bind in a sandbox with a user namespace an idmapped
	// mount with the namespace's mappings: the host's IDs are seen as the
	// same IDs inside (kubelet's volumes of hostUsers: false pods).
	IDMap bool `json:"IDMap,omitempty"`
}

// EndpointConfig is what a container asks of one network (Docker's
// network.EndpointSettings input half).
type EndpointConfig struct {
	Aliases []string `json:"Aliases"`
}

// CreateOptions is a request to create a container: Docker's
// ContainerCreate(config, hostConfig, networkingConfig, name) plus the
// engine's own knobs.
type CreateOptions struct {
	Name       string
	Config     Config
	HostConfig HostConfig
	// Networks are the networks to join besides HostConfig.NetworkMode's
	// (--network given twice, `network connect` before start); aliases by
	// network name. The NetworkMode network's aliases go here too.
	Networks map[string]EndpointConfig
	// Pull is "missing" (default), "always" or "never".
	Pull string
	// PullProgress, if set, receives the image pull's progress.
	PullProgress func(PullEvent)
	// Platform to pull ("" = this machine's).
	Platform string
	// SandboxID joins an existing sandbox's namespaces (the CRI server's
	// pods); "" gives the container a sandbox of its own, as `berth run`.
	SandboxID string
	// LogPath, if set, is where the container's log goes (the CRI's
	// path); else ROOT/containers/ID/container.log.
	LogPath string
	// Extra is the front end's own record of the container (the CRI
	// server's metadata, labels and annotations), kept verbatim.
	Extra json.RawMessage
}

// PullEvent is a layer's progress during an implicit pull.
type PullEvent struct {
	Layer          string // digest
	Status         string
	Current, Total int64
}

// Container is a container's record and `berth inspect`'s answer.
type Container struct {
	ID              string          `json:"Id"`
	Created         time.Time       `json:"Created"`
	Path            string          `json:"Path"`
	Args            []string        `json:"Args"`
	State           State           `json:"State"`
	Image           string          `json:"Image"` // image ID (config digest)
	ResolvConfPath  string          `json:"ResolvConfPath"`
	HostnamePath    string          `json:"HostnamePath"`
	HostsPath       string          `json:"HostsPath"`
	LogPath         string          `json:"LogPath"`
	Name            string          `json:"Name"` // "/name", as Docker
	RestartCount    int             `json:"RestartCount"`
	Driver          string          `json:"Driver"` // "overlay"
	Platform        string          `json:"Platform"`
	Namespace       string          `json:"Namespace"`       // Berth: the engine namespace ("default", "k8s.io")
	SandboxID       string          `json:"SandboxId"`       // Berth: the sandbox whose namespaces it shares
	Runtime         string          `json:"Runtime"`         // Berth: the runtime binary actually used
	Extra           json.RawMessage `json:"Extra,omitempty"` // Berth: the front end's own record (CreateOptions.Extra)
	Mounts          []MountPoint    `json:"Mounts"`
	Config          Config          `json:"Config"`
	HostConfig      HostConfig      `json:"HostConfig"`
	NetworkSettings NetworkSettings `json:"NetworkSettings"`
}

// State is a container's state, computed when asked from the record, the
// monitor's status and the processes that are really there.
type State struct {
	Status     string        `json:"Status"` // created, running, paused, restarting, removing, exited, dead
	Running    bool          `json:"Running"`
	Paused     bool          `json:"Paused"`
	Restarting bool          `json:"Restarting"`
	OOMKilled  bool          `json:"OOMKilled"`
	Dead       bool          `json:"Dead"`
	Pid        int           `json:"Pid"`
	ExitCode   int           `json:"ExitCode"`
	Error      string        `json:"Error"`
	StartedAt  time.Time     `json:"StartedAt"`
	FinishedAt time.Time     `json:"FinishedAt"`
	Health     *HealthStatus `json:"Health,omitempty"`
	// MonitorPid is Berth's: the container's monitor process (0 if none).
	MonitorPid int `json:"MonitorPid,omitempty"`
}

// HealthStatus is Docker's .State.Health, as the monitor keeps it.
type HealthStatus = monitor.Health

// HealthLog is one probe's result.
type HealthLog = monitor.HealthLog

// MountPoint is a mount as `inspect` shows it (.Mounts).
type MountPoint struct {
	Type        string `json:"Type"`           // bind, volume, tmpfs, image
	Name        string `json:"Name,omitempty"` // volume: its name; image: the image
	Source      string `json:"Source"`         // image: its view snapshot
	Destination string `json:"Destination"`
	Driver      string `json:"Driver,omitempty"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation"`
	SubPath     string `json:"SubPath,omitempty"` // image: the directory of it mounted
	IDMap       bool   `json:"IDMap,omitempty"`   // see Mount.IDMap
}

// NetworkSettings is .NetworkSettings.
type NetworkSettings struct {
	SandboxKey string                       `json:"SandboxKey"` // the netns path
	Ports      map[string][]PortBinding     `json:"Ports"`      // what was really bound ("80/tcp" → 0.0.0.0:32768)
	Networks   map[string]*EndpointSettings `json:"Networks"`
	IPAddress  string                       `json:"IPAddress"` // the first network's, as Docker's default bridge
	Gateway    string                       `json:"Gateway"`
}

// EndpointSettings is one network's attachment (.NetworkSettings.Networks.NAME).
type EndpointSettings struct {
	Aliases     []string `json:"Aliases"`
	NetworkID   string   `json:"NetworkID"`
	Gateway     string   `json:"Gateway"`
	IPAddress   string   `json:"IPAddress"`
	IPPrefixLen int      `json:"IPPrefixLen"`
	MacAddress  string   `json:"MacAddress"`
	IfName      string   `json:"IfName,omitempty"`
	DNSNames    []string `json:"DNSNames"`
}

// Summary is a row of `berth ps`.
type Summary struct {
	ID        string            `json:"Id"`
	Names     []string          `json:"Names"`
	Image     string            `json:"Image"`
	ImageID   string            `json:"ImageID"`
	Command   string            `json:"Command"`
	Created   time.Time         `json:"Created"`
	State     string            `json:"State"`
	Status    string            `json:"Status"` // "Up 3 minutes", "Exited (0) 2 seconds ago"
	ExitCode  int               `json:"ExitCode"`
	Ports     []PortSummary     `json:"Ports"`
	Labels    map[string]string `json:"Labels"`
	Networks  []string          `json:"Networks"`
	Mounts    []string          `json:"Mounts"`
	Namespace string            `json:"Namespace"`
}

// PortSummary is a published port in `ps`.
type PortSummary struct {
	IP          string `json:"IP,omitempty"`
	PrivatePort uint16 `json:"PrivatePort"`
	PublicPort  uint16 `json:"PublicPort,omitempty"`
	Type        string `json:"Type"`
}

// ListOptions filter `ps`.
type ListOptions struct {
	All bool
	// Filters are Docker's: "name", "id", "label" (k or k=v), "status",
	// "exited" (code), "ancestor", "network", "volume"; several values of
	// one key are alternatives, different keys must all match.
	Filters map[string][]string
	Limit   int
}

// ExecOptions is `berth exec`.
type ExecOptions struct {
	Cmd         []string
	Env         []string
	User        string
	WorkingDir  string
	Tty         bool
	Interactive bool
	Detach      bool
	Privileged  bool
	// KillOnCancel kills the process when ctx ends (the CRI: an ExecSync
	// timeout, as containerd does); otherwise it is left running, as
	// docker exec leaves it when the CLI goes (see exec_kill.go).
	KillOnCancel bool
}

// Event is one line of `berth events`: Docker's events message shape.
type Event struct {
	Type     string     `json:"Type"`   // container, network, volume, image
	Action   string     `json:"Action"` // create, start, die, stop, kill, destroy, oom, restart, health_status: healthy ...
	Actor    EventActor `json:"Actor"`
	Scope    string     `json:"scope"` // "local"
	Time     int64      `json:"time"`
	TimeNano int64      `json:"timeNano"`
	Status   string     `json:"status,omitempty"` // Docker's legacy fields
	ID       string     `json:"id,omitempty"`
	From     string     `json:"from,omitempty"`
}

// EventActor is what an event is about.
type EventActor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"` // name, image, exitCode, signal...
}

// Stats is one sample of `berth stats`.
type Stats struct {
	ID         string    `json:"ID"`
	Name       string    `json:"Name"`
	Read       time.Time `json:"read"`
	CPUNanos   uint64    `json:"cpu_usage_ns"` // total CPU time
	CPUPercent float64   `json:"CPUPerc"`
	MemUsage   uint64    `json:"mem_usage"`
	MemLimit   uint64    `json:"mem_limit"`
	MemPercent float64   `json:"MemPerc"`
	NetRx      uint64    `json:"net_rx"`
	NetTx      uint64    `json:"net_tx"`
	BlockRead  uint64    `json:"block_read"`
	BlockWrite uint64    `json:"block_write"`
	Pids       uint64    `json:"PIDs"`
	OnlineCPUs int       `json:"online_cpus"`
}
