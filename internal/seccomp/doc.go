// Package seccomp turns the runtime-spec's linux.seccomp section into a
// seccomp BPF filter (which package filter installs), hands a user
// notification listener to its agent, and provides Docker's default profile.
//
// The package has three phases that run in different processes:
//
//   - Validate runs in the runtime before anything is started. It is a pure
//     check: every fault in the configuration is reported there, naming the
//     field, so that Load in the container init only fails for reasons that
//     cannot be known earlier (out of memory).
//   - Compile runs in the runtime: it builds the filter with libseccomp and
//     patches it so that syscalls newer than the profile return ENOSYS (as
//     runc does). The runtime caches and sends the container init the bytes
//     of Program.MarshalBinary (Program is package filter's, which has no
//     libseccomp in it); the init's Program.Load installs them with
//     seccomp(2) and SECCOMP_FILTER_FLAG_TSYNC, after no_new_privs is set
//     and right before execve, so that the filter covers every thread of
//     the Go process.
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
