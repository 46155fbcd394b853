// Command cri benchmarks CRI runtimes as kubelet meets them, through
// k8s.io/cri-client, on one machine in one run: containerd 1.6 with runc
// (the reference) and berthd, each given by its endpoint.
//
// For each runtime it measures:
//
//   - pod start: the time from RunPodSandbox to a started container
//     (RunPodSandbox + CreateContainer + StartContainer) of a one-container
//     pod, for -pods pods one after the other (the runtimes taking turns,
//     pod by pod, so load on the machine falls on both alike) and for
//     -parallel pods started at once;
//   - stop+remove: StopContainer, RemoveContainer, StopPodSandbox and
//     RemovePodSandbox of each pod, as kubelet does;
//   - memory: the RSS (and PSS) summed over the runtime's own processes,
//     idle and with -pods pods running: the daemon and the processes
//     whose command line names its socket or state directory (containerd's
//     shims, berthd's monitors), and their children outside containers.
//     Processes in another mount namespace (the pods' own) are not counted.
//
// It prints p50/p90/mean per runtime and berthd's ratios to containerd.
// The images come from the loopback registry test/critest/run.sh serves
// (run.sh registry; run.sh containerd; run.sh berthd) and are pulled
// before any timing. Every pod the benchmark makes is removed at the end,
// also when it fails or is interrupted, and every call has a timeout.
// Needs root (to read other processes' memory). See README.md.
package main
