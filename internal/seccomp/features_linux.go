//go:build cgo

package seccomp

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/seccomp/filter"
)

// Features describes this package for `berth-runtime features`: what the
// runtime recognises, and which filter flags this kernel supports.
func Features() *features.Seccomp {
	enabled := true
	major, minor, micro := libseccompVersion()
	lib := version{major, minor, micro}
	f := &features.Seccomp{Enabled: &enabled}
	for _, a := range knownActions {
		f.Actions = append(f.Actions, string(a))
	}
	for _, o := range knownOperators {
		f.Operators = append(f.Operators, string(o))
	}
	for a, min := range archMinLibseccomp {
		if !lib.less(min) {
			f.Archs = append(f.Archs, string(a))
		}
	}
	slices.Sort(f.Archs)
	for _, fl := range knownFlags {
		f.KnownFlags = append(f.KnownFlags, string(fl))
		if kernelSupportsFlag(fl) {
			f.SupportedFlags = append(f.SupportedFlags, string(fl))
		}
	}
	return f
}

// kernelSupportsFlag asks the kernel whether it knows a spec flag.
func kernelSupportsFlag(flag specs.LinuxSeccompFlag) bool {
	var bits uintptr
	switch flag {
	case flagTsync:
		bits = unix.SECCOMP_FILTER_FLAG_TSYNC
	case specs.LinuxSeccompFlagLog:
		bits = unix.SECCOMP_FILTER_FLAG_LOG
	case specs.LinuxSeccompFlagSpecAllow:
		bits = unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
	case specs.LinuxSeccompFlagWaitKillableRecv:
		// Only valid together with a listener.
		bits = unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	default:
		return false
	}
	return filter.KernelSupportsFlags(bits)
}
