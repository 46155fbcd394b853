// Package initproc is the container's init process on the Go side: it
// takes its configuration from the runtime over the sync socket
// (messages.go), mounts the rootfs and pivots into it, runs the hooks that
// run in the container, sets the console, capabilities, limits, Landlock
// and the seccomp filter the runtime compiled, reports ready and waits for
// start on exec.fifo, and execs the container's process; for `exec` it
// does the last of those steps in a running container.
//
// nsenter.c has already joined or made the namespaces when Init runs. The
// package is linked into two binaries: berth-runtime (`berth-runtime
// init`) and berth-runtime-init, which holds nothing else and so starts
// sooner. It must stay small: it imports no cgroup library, no libseccomp
// and no CLI, and package runtime (the runtime's side) imports it, never
// the reverse.
package initproc
