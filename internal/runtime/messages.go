package runtime

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Messages between the runtime and the Go part of the init, one JSON object
// each, on the sync socket.

const (
	msgConfig    = "config"     // runtime → init: what to set up
	msgHooksDone = "hooks-done" // runtime → init: prestart/createRuntime hooks ran

	replyHooks   = "hooks"   // init → runtime: mounts done, run the runtime-namespace hooks
	replySeccomp = "seccomp" // init → runtime: a seccomp listener fd to hand on
	replyReady   = "ready"   // init → runtime: set up, about to wait for start (or exec)
	replyError   = "error"   // init → runtime: setup failed; Error says why
)

type initMessage struct {
	Type   string      `json:"type"`
	Config *initConfig `json:"config,omitempty"`
}

type initConfig struct {
	Exec         bool              `json:"exec,omitempty"`
	ID           string            `json:"id"`
	Bundle       string            `json:"bundle"`
	Spec         *specs.Spec       `json:"spec"`
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
	// MountFds: for mounts[i], the fd of an idmapped mount to attach.
	MountFds map[int]int `json:"mount_fds,omitempty"`
	// RootFd, for an exec'd process of a container without a mount
	// namespace of its own: an O_PATH fd of the init's root to chroot to.
	RootFd int `json:"root_fd,omitempty"`
	// Seccomp is linux.seccomp compiled by the runtime (seccomp.Program's
	// MarshalBinary): the init installs it and never compiles, so the
	// libseccomp work stays off the path between start and the exec.
	Seccomp []byte `json:"seccomp,omitempty"`
}

type initReply struct {
	Type  string `json:"type"`
	Error string `json:"error,omitempty"`
	Fd    int    `json:"fd,omitempty"`
}
