//go:build cgo

package seccomp

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// x32SyscallBit marks a syscall made by an x32 process on x86_64.
const x32SyscallBit = 0x40000000

// enosysStub returns BPF to prepend to the filter so that, on the native
// architecture, syscalls numbered above every syscall the profile names
// fail with ENOSYS instead of the default action. Such syscalls are newer
// than the profile (or than libseccomp), and programs probe for new
// syscalls and fall back only on ENOSYS; EPERM would break them. This is
// runc's behaviour, reduced to the native architecture: other architectures
// of a multi-arch filter get the default action for unknown syscalls.
//
// Nothing is prepended when the default action allows syscalls anyway, when
// it already returns ENOSYS, or on architectures without a table here.
func enosysStub(cfg *specs.LinuxSeccomp, goarch string) ([]unix.SockFilter, error) {
	switch cfg.DefaultAction {
	case specs.ActAllow, specs.ActLog, specs.ActTrace:
		// A tracer handles ENOSYS itself; giving it ENOSYS would disrupt
		// emulation.
		return nil, nil
	case specs.ActErrno:
		if cfg.DefaultErrnoRet != nil && *cfg.DefaultErrnoRet == uint(unix.ENOSYS) {
			return nil, nil
		}
	}
	var auditArch uint32
	switch goarch {
	case "amd64":
		auditArch = unix.AUDIT_ARCH_X86_64
	case "arm64":
		auditArch = unix.AUDIT_ARCH_AARCH64
	default:
		return nil, nil
	}
	var last libseccomp.ScmpSyscall
	for _, sc := range cfg.Syscalls {
		for _, name := range sc.Names {
			if nr, err := libseccomp.GetSyscallFromName(name); err == nil && nr > last {
				last = nr
			}
		}
	}
	if last == 0 {
		return nil, nil
	}
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jgt   = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
		jset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		// Offsets in struct seccomp_data.
		offNr   = 0
		offArch = 4
	)
	enosys := unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)}
	// Jump offsets count from the next instruction; each block ends where
	// the libseccomp program starts.
	if auditArch == unix.AUDIT_ARCH_X86_64 {
		return []unix.SockFilter{
			{Code: ldAbs, K: offArch},
			{Code: jeq, K: auditArch, Jt: 0, Jf: 4},
			{Code: ldAbs, K: offNr},
			{Code: jset, K: x32SyscallBit, Jt: 2, Jf: 0},
			{Code: jgt, K: uint32(last), Jt: 0, Jf: 1},
			enosys,
		}, nil
	}
	return []unix.SockFilter{
		{Code: ldAbs, K: offArch},
		{Code: jeq, K: auditArch, Jt: 0, Jf: 3},
		{Code: ldAbs, K: offNr},
		{Code: jgt, K: uint32(last), Jt: 0, Jf: 1},
		enosys,
	}, nil
}
