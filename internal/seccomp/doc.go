// Package seccomp turns the runtime-spec's linux.seccomp section into a
// seccomp BPF filter, loads it into the calling process, hands a user
// notification listener to its agent, and provides Docker's default profile.
//
// The package has three phases that run in different processes:
//
//   - Validate runs in the runtime before anything is started. It is a pure
//     check: every fault in the configuration is reported there, naming the
//     field, so that Load in the container init only fails for reasons of the
//     host (kernel too old, out of memory).
//   - Compile and Load run in the container init, after no_new_privs is set
//     and right before execve. The filter is built with libseccomp, patched
//     so that syscalls newer than the profile return ENOSYS (as runc does),
//     and installed with seccomp(2) and SECCOMP_FILTER_FLAG_TSYNC so that it
//     covers every thread of the Go process.
//   - SendListener runs in the runtime: it passes the listener fd that the
//     init handed back to the seccomp agent at linux.seccomp.listenerPath.
//
// Syscall names that libseccomp does not know are skipped, not errors: a
// profile lists syscalls of many kernels and architectures.
package seccomp
