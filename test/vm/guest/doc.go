// Package guest holds tests that run inside the test VM of package vm (Linux
// with only the unified cgroup hierarchy), never on the host: they change the
// machine's root cgroup. Its test files carry the build tag berthvm so that a
// plain `go test ./...` does not build them; TestCgroupV2VM in test/vm builds
// them with `go test -c -tags berthvm` and runs the binary in the VM as root.
//
// In the VM the binary finds BERTH_VM_GUEST=1 in its environment and, when
// the host test was given a runtime in BERTH_RUNTIME, berth-runtime at the
// path in BERTH_RUNTIME (/berth/bin/berth-runtime) and busybox at
// /bin/busybox. Tests that need berth-runtime call berthRuntime(t), which
// skips them when none was given.
package guest
