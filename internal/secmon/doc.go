// Package secmon is Berth's runtime security monitor: rules that watch what
// a container's processes do (exec, connect, ...), and alert on it, deny it
// in the kernel or kill the process.
//
// The pieces:
//   - rules.go: the rules file (YAML, a CEL condition per rule), parsed and
//     type-checked at load; a rule asking for something this host cannot
//     do in the kernel is refused then, with the reason, never downgraded.
//   - plan.go: a container's rules compiled, with the container's own
//     fields fixed, into what the kernel checks (truth tables over path,
//     drift, CIDR, port and protocol atoms, see kern/secmon.bpf.c) and
//     what user space evaluates (alert rules).
//   - mechanisms.go: how each action on each event kind is carried out on
//     this kernel (BPF programs, BPF LSM where the kernel runs it, Landlock
//     in berth-runtime where it does not, seccomp), from probes of the
//     kernel made only when a rule needs them.
//   - lockplan.go: exec and open denies reduced to Landlock paths, for
//     kernels without BPF LSM.
//   - kern/: the BPF programs and their generated Go.
//   - agent/: the one agent per host that holds the programs (pinned under
//     /sys/fs/bpf/berth), fills the maps per container and writes alerts.
//   - client_linux.go: what the engine and the OCI hook call.
//
// Invariants: a container with kernel rules is in the maps before its
// first user instruction (the createRuntime hook blocks until the agent
// says so, and fails the start otherwise); the engine and the agent
// choose the same mechanisms (the registration says which the engine
// chose, and the agent refuses what it would not carry out); the kernel
// decision never
// depends on user space being alive; with the last container gone every
// pin is removed.
package secmon
