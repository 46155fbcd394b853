package secmon

import (
	"encoding/json"
	"time"
)

// Default places of the one agent per host.
const (
	DefaultAgentDir = "/run/berth-secmon"
	DefaultPinDir   = "/sys/fs/bpf/berth"
)

// Registration is what the agent knows of one container with rules. The
// engine writes it (all but the cgroup) before the container is created;
// the createRuntime hook adds the cgroup and hands it to the agent, which
// keeps it in AGENTDIR/containers/ID.json to survive its own restarts.
type Registration struct {
	Container Container `json:"container"`
	Rules     []Rule    `json:"rules"`
	// Webhook, if set, is POSTed each alert as JSON.
	Webhook string `json:"webhook,omitempty"`
	// AlertsPath is the JSON-lines log of alerts (the engine's
	// ROOT/secmon/alerts.jsonl); EventsPath the engine's events log,
	// Namespace the engine's namespace for those events.
	AlertsPath string `json:"alertsPath"`
	EventsPath string `json:"eventsPath,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	// Rootfs is the container's root on the host, stripped from the
	// paths the host sees of the container's executables.
	Rootfs    string `json:"rootfs,omitempty"`
	CgroupDir string `json:"cgroupDir,omitempty"`
	CgroupID  uint64 `json:"cgroupID,omitempty"`
	// LSM says the engine's plan leaves exec or open denies to the
	// agent's BPF LSM programs (and gave the runtime no Landlock for
	// them): an agent that would not carry them out must refuse.
	LSM bool `json:"lsm,omitempty"`
}

// Alert is one line of the alerts log and of `berth monitor events`.
type Alert struct {
	Time   time.Time `json:"time"`
	Rule   string    `json:"rule"`
	Action string    `json:"action"`
	// Scope is "container" when a kill took the whole container.
	Scope       string        `json:"scope,omitempty"`
	Event       string        `json:"event"`
	Container   string        `json:"container"`
	Name        string        `json:"name,omitempty"`
	Image       string        `json:"image,omitempty"`
	ImageDigest string        `json:"imageDigest,omitempty"`
	Pod         *Pod          `json:"pod,omitempty"`
	Process     AlertProcess  `json:"process"`
	Exec        *AlertExec    `json:"exec,omitempty"`
	Connect     *AlertConnect `json:"connect,omitempty"`
	Syscall     *AlertSyscall `json:"syscall,omitempty"`
	File        *AlertFile    `json:"file,omitempty"`
	Exit        *AlertExit    `json:"exit,omitempty"`
	// DelayMicros is the time from the kernel's event to this line.
	DelayMicros int64 `json:"delayMicros"`
}

// AlertProcess is the acting process.
type AlertProcess struct {
	Pid  int      `json:"pid"`
	PPid int      `json:"ppid,omitempty"`
	Path string   `json:"path"`
	Argv []string `json:"argv"`
	UID  int      `json:"uid"`
	Comm string   `json:"comm,omitempty"`
	// Parent is the parent process (exec events): its comm from the
	// kernel, its path read by the agent (best effort).
	Parent *AlertParent `json:"parent,omitempty"`
}

// AlertParent is the parent of an exec'ing process.
type AlertParent struct {
	Pid  int    `json:"pid"`
	Name string `json:"name,omitempty"`
	Path string `json:"path,omitempty"`
}

// AlertExit is a process's end: its exit status, or the signal that
// killed it (then Code is 0).
type AlertExit struct {
	Code   int  `json:"code"`
	Signal int  `json:"signal"`
	Core   bool `json:"core,omitempty"`
}

// AlertExec is an exec's details.
type AlertExec struct {
	Path  string `json:"path"`
	Drift bool   `json:"drift"`
}

// AlertSyscall is a system call's details.
type AlertSyscall struct {
	Name string  `json:"name"`
	Args []int64 `json:"args"`
}

// AlertFile is an open's details.
type AlertFile struct {
	Path  string `json:"path"`
	Write bool   `json:"write"`
}

// AlertConnect is a connect's details, or an accept's: then Address is
// the peer's, Port the local port and PeerPort the peer's.
type AlertConnect struct {
	Address  string `json:"address"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
	PeerPort int    `json:"peerPort,omitempty"`
}

// request and response are the agent's protocol: one JSON object a line
// on AGENTDIR/agent.sock.
type request struct {
	Op  string        `json:"op"` // "add", "remove", "stats", "ping"
	ID  string        `json:"id,omitempty"`
	Reg *Registration `json:"reg,omitempty"`
}

type response struct {
	Error string `json:"error,omitempty"`
	// LSM answers an add: the agent carries out the container's exec
	// and open denies with its BPF LSM programs. An agent of a version
	// before them never says so, and the hook refuses the container.
	LSM   bool            `json:"lsm,omitempty"`
	Stats json.RawMessage `json:"stats,omitempty"`
}

// Stats are the agent's counters, for the metrics endpoint.
type Stats struct {
	Containers int `json:"containers"`
	// Alerts counts alert lines by rule name and action.
	Alerts map[string]map[string]uint64 `json:"alerts"`
	// Lost counts events the kernel had no ring-buffer room for, or no
	// event slot (those are counted in SlotFull too).
	Lost uint64 `json:"lost"`
	// SlotFull counts program runs that found no event slot free (kern's
	// SlotFull): each failed closed where a deny or kill rule could
	// apply (refused, killed, dropped) and lost its report.
	SlotFull uint64 `json:"slotFull"`
	// Skipped counts program runs the kernel skipped (kern's Skipped):
	// for a BPF LSM program, an operation not judged.
	Skipped uint64 `json:"skipped"`
	// WebhookErrors counts failed (or dropped) webhook posts.
	WebhookErrors uint64 `json:"webhookErrors"`
	// EngineEventsDropped counts alerts not copied to the engine's
	// events log (over the per-container rate).
	EngineEventsDropped uint64 `json:"engineEventsDropped"`
}
