package engine

import (
	"time"

	"github.com/berth-project/berth/internal/secmon"
)

// NetworkCreateOptions is `berth network create`.
type NetworkCreateOptions struct {
	Name     string
	Driver   string // "bridge" (the only one)
	Subnet   string // CIDR; "" picks a free one
	Gateway  string
	Internal bool
	Labels   map[string]string
	NoDNS    bool // no DNS server for container names
}

// NetworkResource is a network as `network inspect` shows it (Docker's
// field names).
type NetworkResource struct {
	Name       string                      `json:"Name"`
	ID         string                      `json:"Id"`
	Created    time.Time                   `json:"Created"`
	Scope      string                      `json:"Scope"` // "local"
	Driver     string                      `json:"Driver"`
	IPAM       IPAM                        `json:"IPAM"`
	Internal   bool                        `json:"Internal"`
	Containers map[string]NetworkContainer `json:"Containers"`
	Labels     map[string]string           `json:"Labels"`
	// ConfigFile is Berth's: the CNI conflist behind the network.
	ConfigFile string `json:"ConfigFile,omitempty"`
	DNSEnabled bool   `json:"DNSEnabled"`
}

// IPAM is a network's address plan.
type IPAM struct {
	Driver string       `json:"Driver"`
	Config []IPAMConfig `json:"Config"`
}

// IPAMConfig is one subnet.
type IPAMConfig struct {
	Subnet  string `json:"Subnet"`
	Gateway string `json:"Gateway,omitempty"`
}

// NetworkContainer is a container on a network.
type NetworkContainer struct {
	Name        string `json:"Name"`
	IPv4Address string `json:"IPv4Address"`
	MacAddress  string `json:"MacAddress"`
}

// VolumeCreateOptions is `berth volume create`.
type VolumeCreateOptions struct {
	Name   string // "" = a random name
	Labels map[string]string
}

// Volume is a volume as `volume inspect` shows it.
type Volume struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"`
	Mountpoint string            `json:"Mountpoint"`
	CreatedAt  time.Time         `json:"CreatedAt"`
	Labels     map[string]string `json:"Labels"`
	Scope      string            `json:"Scope"`
	Options    map[string]string `json:"Options"`
	// Anonymous is Berth's: made for one container's `-v /path`.
	Anonymous bool `json:"Anonymous,omitempty"`
}

// Info is `berth system info`.
type Info struct {
	ID                string            `json:"ID"`
	Containers        int               `json:"Containers"`
	ContainersRunning int               `json:"ContainersRunning"`
	ContainersPaused  int               `json:"ContainersPaused"`
	ContainersStopped int               `json:"ContainersStopped"`
	Images            int               `json:"Images"`
	Driver            string            `json:"Driver"`
	CgroupDriver      string            `json:"CgroupDriver"`
	CgroupVersion     string            `json:"CgroupVersion"`
	KernelVersion     string            `json:"KernelVersion"`
	OperatingSystem   string            `json:"OperatingSystem"`
	Architecture      string            `json:"Architecture"`
	NCPU              int               `json:"NCPU"`
	MemTotal          int64             `json:"MemTotal"`
	RootDir           string            `json:"DockerRootDir"`
	RunRoot           string            `json:"RunRoot"`
	Namespace         string            `json:"Namespace"`
	Runtimes          map[string]string `json:"Runtimes"`
	DefaultRuntime    string            `json:"DefaultRuntime"`
	SecurityOptions   []string          `json:"SecurityOptions"`
	ServerVersion     string            `json:"ServerVersion"`
	// RuntimeMonitor is Berth's: how each event kind and action of the
	// runtime monitor's rules is carried out on this host, or why not.
	RuntimeMonitor []secmon.Mechanism `json:"RuntimeMonitor,omitempty"`
}

// DiskUsage is `berth system df`.
type DiskUsage struct {
	Images     DiskUsageRow `json:"Images"`
	Containers DiskUsageRow `json:"Containers"`
	Volumes    DiskUsageRow `json:"Volumes"`
}

// DiskUsageRow is one kind of object's use of disk.
type DiskUsageRow struct {
	Total       int   `json:"TotalCount"`
	Active      int   `json:"Active"`
	Size        int64 `json:"Size"`
	Reclaimable int64 `json:"Reclaimable"`
}

// PruneOptions is `berth system prune`.
type PruneOptions struct {
	All     bool // also unused images, not only dangling ones
	Volumes bool // also unused (anonymous, or all with All) volumes
}

// PruneReport says what a prune removed.
type PruneReport struct {
	Containers     []string `json:"ContainersDeleted"`
	Networks       []string `json:"NetworksDeleted"`
	Volumes        []string `json:"VolumesDeleted"`
	Images         []string `json:"ImagesDeleted"`
	SpaceReclaimed int64    `json:"SpaceReclaimed"`
}
