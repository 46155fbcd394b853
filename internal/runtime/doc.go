// Package runtime is berth-runtime's container state machine: create, start,
// run, exec, kill, delete, state, list and ps over containers kept under a
// state root directory. The container init those commands start is package
// initproc, run from berth-runtime-init or berth-runtime (initbin_linux.go).
//
// Invariants:
//   - A container exists exactly while ROOT/ID exists; state.json in it is
//     written atomically (temp file + rename) and never half-written.
//   - A container's status is derived, never stored: the init process alive
//     (checked by pid and start time, so a recycled pid is not mistaken for
//     it) and exec.fifo present means created, alive without it running,
//     frozen cgroup paused, otherwise stopped.
//   - Every create failure removes everything the create made: the init
//     process, the cgroup, and ROOT/ID.
//   - start and delete of a container with no poststart/poststop hooks on
//     the cgroupfs driver are done in C before the Go runtime starts
//     (fastpath/fastpath.c, from ROOT/ID/fastpath that create writes); that
//     code returns to the Go code before any side effect in every case it
//     does not handle, and the Go code stays complete on its own.
//   - The init never compiles seccomp filters: the runtime compiles them
//     (or takes them from /run/berth-runtime/seccomp, keyed by the binary,
//     the profile and the kernel) and the init installs the bytes.
package runtime
