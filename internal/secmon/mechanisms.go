package secmon

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	"github.com/berth-project/berth/internal/secmon/kern"
	"github.com/berth-project/berth/internal/secmon/landlock"
)

// Mechanism says how an action on an event kind is carried out on this
// kind of host, or why it is not.
type Mechanism struct {
	Event     string `json:"event"`
	Action    string `json:"action"`
	Mechanism string `json:"mechanism,omitempty"`
	// Reason is why the action is refused, when Mechanism is empty.
	Reason string `json:"reason,omitempty"`
}

// syscallEvents are the event kinds that are one or a few system calls,
// denied by seccomp in the container's filter.
var syscallEvents = map[string][]string{
	EventPtrace:    {"ptrace", "process_vm_readv", "process_vm_writev"},
	EventMount:     {"mount", "umount2", "fsmount", "move_mount", "open_tree", "fsopen", "fsconfig", "mount_setattr"},
	EventModule:    {"init_module", "finit_module", "delete_module"},
	EventBPF:       {"bpf"},
	EventNamespace: {"setns", "unshare"},
	EventSetuid:    {"setuid", "setreuid", "setresuid", "setfsuid", "setgid", "setregid", "setresgid", "setfsgid", "capset"},
}

// host is what the kernel offers, as probes that each say why a feature
// is missing ("" when it is there). They run only when a rule needs
// them (the BPF LSM probe loads the kernel's BTF), once per process.
type host struct {
	lsm, connectKill func() string
	landlock         func() string
}

// thisHost probes the running kernel. A BPF LSM probe that succeeded is
// remembered for the boot in the agent's directory (kern.ProbeLSMCached);
// within a process the answer is read once, so every rule of a plan gets
// the same one.
func thisHost() host {
	return host{lsm: probeLSM, connectKill: kern.ProbeConnectKill, landlock: landlockMissing}
}

var probeLSM = sync.OnceValue(func() string {
	return kern.ProbeLSMCached(filepath.Join(DefaultAgentDir, "lsm-probe"))
})

// Mechanisms is the table of what each action on each event kind uses;
// `berth system info` and the README show it.
func Mechanisms() []Mechanism {
	h := thisHost()
	var ms []Mechanism
	for _, ev := range eventKinds {
		for _, act := range []string{ActionAlert, ActionDeny, ActionKill} {
			m := Mechanism{Event: ev, Action: act}
			m.Mechanism, m.Reason = h.mechanism(ev, act)
			ms = append(ms, m)
		}
	}
	return ms
}

func (h host) mechanism(ev, act string) (mech, reason string) {
	switch ev {
	case EventExec:
		switch act {
		case ActionAlert:
			return "BPF raw tracepoint sched_process_exec, filtered by cgroup id; CEL in the agent", ""
		case ActionKill:
			return "BPF raw tracepoint sched_process_exec: bpf_send_signal(SIGKILL) before the new image runs; with scope: container the agent then kills the container's cgroup (cgroup.kill)", ""
		default:
			lsm := h.lsm()
			if lsm == "" {
				return "BPF LSM bprm_check_security, for each binary an exec loads (a script, then its interpreter): execve fails with EACCES; conditions as for kill (exec.path ==, in, startsWith; exec.drift; exec.parent.name; container fields), checked in the kernel, under any OCI runtime", ""
			}
			if reason := h.landlock(); reason != "" {
				return "", "exec deny needs a hook before the exec completes: " + lsm + ", and " + reason + "; use kill"
			}
			return "Landlock (EXECUTE), applied by berth-runtime before the container's first instruction (BPF LSM is missing: " + lsm + "); static paths only (==, in, startsWith); alert from the execve attempt (raw tracepoint sys_enter)", ""
		}
	case EventConnect:
		switch act {
		case ActionAlert:
			return "BPF cgroup/connect4, connect6, sendmsg4 and sendmsg6 (UDP sent without connect) on the container's cgroup; CEL in the agent", ""
		case ActionDeny:
			return "BPF cgroup/connect4, connect6, sendmsg4 and sendmsg6 on the container's cgroup: connect or sendto fails with EPERM", ""
		default:
			if reason := h.connectKill(); reason != "" {
				return "", "connect kill: " + reason + "; use deny"
			}
			return "BPF cgroup/connect4, connect6, sendmsg4 and sendmsg6: bpf_send_signal(SIGKILL) and the connect fails; with scope: container the agent then kills the container's cgroup (cgroup.kill)", ""
		}
	}
	if _, ok := syscallEvents[ev]; ok {
		switch act {
		case ActionDeny:
			return "seccomp in the container's filter: EPERM (EACCES for a deny on arguments under a profile whose default action is already EPERM, e.g. Docker's); conditions on container fields, syscall.name (==, !=, in) and syscall.args[0..3] against constants (32-bit arguments on their low half: ==, !=, <, <=, >, >=, in; 64-bit ones: ==, in); the alert from the refused call (raw tracepoint sys_exit, a failure with EPERM or EACCES, judged by the rule's condition in the agent)", ""
		case ActionAlert:
			if len(sysNumbers) == 0 {
				return "", "Berth does not know this architecture's system call numbers"
			}
			return "BPF raw tracepoint sys_enter, filtered by cgroup id and call number; CEL in the agent", ""
		}
		return "", fmt.Sprintf("%s kill: a signal sent at system call entry does not stop the call (the kernel runs it, then the process dies); use deny", ev)
	}
	switch ev {
	case EventOpen:
		if act == ActionAlert && len(sysNumbers) > 0 {
			return "BPF raw tracepoint sys_enter on the open family, opens for writing only; CEL in the agent", ""
		}
		if act == ActionDeny {
			lsm := h.lsm()
			if lsm == "" {
				return "BPF LSM file_open: an open for writing fails with EACCES; file.path (==, in, startsWith, as the container sees it) and file.write, container fields, checked in the kernel, under any OCI runtime", ""
			}
			if reason := h.landlock(); reason != "" {
				return "", "open deny needs a hook before the open: " + lsm + ", and " + reason
			}
			return "Landlock (WRITE_FILE, TRUNCATE, MAKE_*, REMOVE_*), applied by berth-runtime before the container's first instruction (BPF LSM is missing: " + lsm + "); opens for writing, static paths only (==, in, startsWith); alert from the open attempt (raw tracepoint sys_enter)", ""
		}
		return "", "open kill: a signal sent at system call entry does not stop the open (the kernel runs it, then the process dies); use deny"
	case EventAccept:
		switch act {
		case ActionAlert:
			return "BPF raw tracepoint inet_sock_set_state (TCP SYN_RECV to ESTABLISHED), filtered by the socket's cgroup id; CEL in the agent (connect.address and the peer's port are the peer's, connect.port the local port; no process: the handshake completes in softirq)", ""
		case ActionDeny:
			return "BPF cgroup_skb/ingress on the container's cgroup drops the inbound TCP SYNs the rule matches (the handshake never completes: the peer times out); conditions on connect.address, connect.port (local) and connect.protocol only; IPv4, and IPv6 behind up to 6 extension headers", ""
		}
		return "", "accept kill: the handshake completes in the kernel, in softirq, in no process's context, before accept(2): there is no process to kill; use deny"
	case EventExit:
		if act == ActionAlert {
			return "BPF raw tracepoint sched_process_exit (the last thread of a process), filtered by cgroup id; conditions on exit.code and exit.signal checked in the kernel, so only the exits they match reach the agent; CEL in the agent (no executable path: the memory map is gone; the comm stays)", ""
		}
		return "", "exit " + act + ": the process is already gone when it exits; there is nothing to refuse or kill"
	}
	return "", "unknown event"
}

// landlockMissing says why Landlock cannot carry out a deny here, or "".
func landlockMissing() string {
	switch abi := landlock.ABI(); {
	case abi == 0:
		return "this kernel has no Landlock"
	case abi < 3:
		return fmt.Sprintf("this kernel's Landlock is ABI %d (3 or later handles truncate)", abi)
	}
	return ""
}

// can refuses a rule whose action on its event this host cannot do.
func (h host) can(r Rule) error {
	if _, reason := h.mechanism(r.Event, r.Action); reason != "" {
		return fmt.Errorf("action %s on %s refused: %s", r.Action, r.Event, reason)
	}
	return nil
}

func isSyscallEvent(ev string) bool {
	_, ok := syscallEvents[ev]
	return ok
}

// SyscallsOf lists the system calls a syscall event kind covers.
func SyscallsOf(ev string) []string { return slices.Clone(syscallEvents[ev]) }
