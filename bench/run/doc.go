// Command run benchmarks `berth run` as a user meets it, beside Podman
// (crun and runc) and containerd's runc shim, on one machine in one run:
//
//   - the latency of `run --rm IMAGE true`, with --network none and with
//     each engine's default bridge network, the engines taking turns;
//   - for many detached `sleep` containers, the total time to start them,
//     the resident memory of the per-container supervisor (berth-monitor,
//     conmon, containerd-shim-runc-v2), and the time of `ps`.
//
// The image (Debian's static busybox) is built here and served by Debian's
// docker-registry on 127.0.0.1; every engine pulls it into a store of its
// own under a temporary directory. Everything the benchmark starts is
// removed at the end, also when it fails, and every command has a
// timeout. Needs root. See bench/README.md.
package main
