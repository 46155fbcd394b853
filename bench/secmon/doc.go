// Command secmon benchmarks the runtime security monitor
// (internal/secmon): the overhead it puts on a container doing 10,000
// fork+execs and 10,000 TCP connect+close to a loopback server, with no
// rules, with alert rules (every event goes to the agent, which
// evaluates CEL and writes nothing) and with deny/kill rules (decided in
// the kernel, nothing matches); the time from an exec that matches an
// alert rule to its line in the alerts log (median, p99); and the agent's
// resident memory.
//
// It builds bench/secmon/worker (static, bind-mounted into the
// container) and a busybox image, runs everything with bin/berth under a
// temporary root, with the modes taking turns, and removes it all at the
// end. Needs root and `make build`. See bench/README.md.
package main
