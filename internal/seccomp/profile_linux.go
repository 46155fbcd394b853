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
