// Package seccomp turns the runtime-spec's linux.seccomp section into a
// seccomp BPF filter, loads it into the calling process, hands a user
// notification listener to its agent, and provides Docker's default profile.
//
// The package has three phases that run in different processes:
//
//   - Validate runs in the runtime before anything is started. It is a pure
//     check: every fault in the configuration is reported there, naming the
//     field, so that Load in the container init only fails for reasons that
//     cannot be known earlier (out of memory).
//   - Load runs in the container init, after no_new_privs is set and right
//     before execve. Compile builds the filter with libseccomp and patches
//     it so that syscalls newer than the profile return ENOSYS (as runc
//     does); Program.Load installs it with seccomp(2) and
//     SECCOMP_FILTER_FLAG_TSYNC so that it covers every thread of the Go
//     process. Compiling a large profile takes milliseconds, so the runtime
//     may compile (and cache) instead and send the init the bytes of
//     Program.MarshalBinary.
//   - SendListener runs in the runtime: it passes the listener fd that the
//     init handed back to the seccomp agent at linux.seccomp.listenerPath.
//
// DefaultProfileFor is Docker's default profile resolved for a capability
// set; Features describes the package for the runtime's features document.
//
// Everything that needs libseccomp builds only with cgo; without it the
// package still offers the default profile and SendListener, so that
// programs other than the runtime need no cgo.
//
// Syscall names that libseccomp does not know are skipped, not errors: a
// profile lists syscalls of many kernels and architectures.
package seccomp
