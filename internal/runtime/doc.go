// Package runtime is berth-runtime's container state machine: create, start,
// run, exec, kill, delete, state, list and ps over containers kept under a
// state root directory, and the container init process those commands start.
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
package runtime
