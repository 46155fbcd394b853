package seccomp

import (
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultProfile is Docker's default seccomp profile for a container with
// Docker's default capabilities, on this machine's architecture and kernel.
func DefaultProfile() *specs.LinuxSeccomp {
	return DefaultProfileFor(DockerDefaultCaps())
}

// DefaultProfileFor is Docker's default seccomp profile resolved for a
// container whose bounding set is caps ("CAP_SYS_ADMIN"; the prefix may be
// left out): the runtime-spec cannot express Docker's capability
// conditions, so they are decided here, as Docker does at container
// creation. Architecture and kernel conditions are decided for the running
// machine. The result is the caller's to modify.
func DefaultProfileFor(caps []string) *specs.LinuxSeccomp {
	return resolveProfile(caps, runtime.GOARCH, runningKernel())
}

// runningKernel is the kernel's release; zero (older than any minimum, so
// minKernel-gated syscalls stay denied) if it cannot be read.
func runningKernel() kernelVersion {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return kernelVersion{}
	}
	k, _ := parseKernel(unix.ByteSliceToString(u.Release[:]))
	return k
}

// Harden gives s Berth's secure defaults, as Docker and Podman apply them:
// Docker's default capabilities (bounding, effective and permitted; no
// inheritable or ambient), no_new_privs, and the default seccomp profile
// resolved for those capabilities. A profile already in s is kept.
func Harden(s *specs.Spec) {
	caps := DockerDefaultCaps()
	if s.Process != nil {
		s.Process.Capabilities = &specs.LinuxCapabilities{
			Bounding: caps, Effective: caps, Permitted: caps,
		}
		s.Process.NoNewPrivileges = true
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	if s.Linux.Seccomp == nil {
		s.Linux.Seccomp = DefaultProfileFor(caps)
	}
}
