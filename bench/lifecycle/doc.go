// Command lifecycle measures what one short-lived container costs an OCI
// runtime: create → start → wait for exit → delete of a busybox /bin/true
// bundle, N times per runtime, for berth-runtime beside runc and crun.
//
// It drives every runtime through runc's command line only, and waits for the
// container the way containerd's shim does: each runtime is driven by a worker
// process that is a child subreaper, passes create --pid-file, and wait4()s the
// container init after start (the init is reparented to the worker when create
// exits). Peak RSS comes from extra, untimed containers whose runtime
// commands run under GNU time: a child's ru_maxrss starts at its forker's
// RSS, so only a small forker shows a small runtime's own peak.
//
// Invariants: everything it creates is named berth-bench-*, lives under one
// temporary directory and its own --root per runtime, and is deleted (with
// delete --force when a run fails midway) before it exits; leftover cgroups
// are reported as leaks. It never changes the host's mounts: the one mount it
// removes (cgroup2 at /sys/fs/cgroup/unified, for crun) is removed inside a
// private mount namespace.
//
// Usage:
//
//	go run ./bench/lifecycle [-n 100] [-warmup 3] [-berth PATH] [-runc PATH] [-crun PATH] [-limits] [-json] [-private-mountns]
package main
