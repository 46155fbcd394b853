//go:build cgo

package seccomp

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// x32SyscallBit marks a syscall made by an x32 process on x86_64.
const x32SyscallBit = 0x40000000

// stubArch is one seccomp_data.arch value of the filter and the highest
// syscall number the profile names for it; zero means none. On x86_64,
// lastX32 is the highest x32 number (x32SyscallBit included).
type stubArch struct {
	audit         uint32
	last, lastX32 uint32
}

// enosysStub returns BPF to prepend to the filter so that syscalls numbered
// above every syscall the profile names for their architecture fail with
// ENOSYS instead of the default action. Such syscalls are newer than the
// profile (or than libseccomp), and programs probe for new syscalls and fall
// back only on ENOSYS; EPERM would break them. This is runc's behaviour,
// including its limits: numbers are compared, not kernel versions, so a
// syscall added out of order (close_range) is not recognised as new.
//
// Nothing is prepended when the default action allows syscalls anyway or
// already returns ENOSYS.
func enosysStub(cfg *specs.LinuxSeccomp) ([]unix.SockFilter, error) {
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
	native, err := libseccomp.GetNativeArch()
	if err != nil {
		return nil, fmt.Errorf("compile seccomp filter: native architecture: %w", err)
	}
	arches := []libseccomp.ScmpArch{native}
	for _, a := range cfg.Architectures {
		arches = append(arches, archInfos[a].scmp)
	}
	var stub []stubArch
	done := map[libseccomp.ScmpArch]bool{}
	for _, arch := range arches {
		audit, ok := auditArch(arch)
		if !ok || done[arch] {
			continue
		}
		done[arch] = true
		last := lastSyscall(cfg, arch)
		if last == 0 {
			continue
		}
		i := 0
		for i < len(stub) && stub[i].audit != audit {
			i++
		}
		if i == len(stub) {
			stub = append(stub, stubArch{audit: audit})
		}
		if arch == libseccomp.ArchX32 {
			// libseccomp's x32 numbers carry the bit already.
			stub[i].lastX32 = last | x32SyscallBit
		} else {
			stub[i].last = last
		}
	}
	return assembleStub(stub)
}

// lastSyscall is the highest number, on arch, of a syscall cfg names.
func lastSyscall(cfg *specs.LinuxSeccomp, arch libseccomp.ScmpArch) uint32 {
	var last uint32
	for _, sc := range cfg.Syscalls {
		for _, name := range sc.Names {
			// Negative numbers are libseccomp's stand-ins for syscalls
			// that arch lacks.
			if nr, err := libseccomp.GetSyscallFromNameByArch(name, arch); err == nil && nr > 0 && uint32(nr) > last {
				last = uint32(nr)
			}
		}
	}
	return last
}

// stubInsn is an instruction whose jumps name labels; "" is the next
// instruction. Labels: "arch<i>", "x32<i>", "enosys" and "filter", the first
// instruction after the stub.
type stubInsn struct {
	label  string
	code   uint16
	k      uint32
	jt, jf string
}

func assembleStub(arches []stubArch) ([]unix.SockFilter, error) {
	if len(arches) == 0 {
		return nil, nil
	}
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		ja    = unix.BPF_JMP | unix.BPF_JA
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jgt   = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
		jset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		// Offsets in struct seccomp_data.
		offNr   = 0
		offArch = 4
	)
	prog := []stubInsn{{code: ldAbs, k: offArch}}
	for i, a := range arches {
		prog = append(prog, stubInsn{code: jeq, k: a.audit, jt: fmt.Sprint("arch", i)})
	}
	prog = append(prog, stubInsn{code: ja, jt: "filter"})
	for i, a := range arches {
		arch, x32 := fmt.Sprint("arch", i), fmt.Sprint("x32", i)
		prog = append(prog, stubInsn{label: arch, code: ldAbs, k: offNr})
		if a.audit == unix.AUDIT_ARCH_X86_64 {
			switch {
			case a.lastX32 == 0:
				prog = append(prog, stubInsn{code: jset, k: x32SyscallBit, jt: "filter"})
			case a.last == 0:
				prog = append(prog, stubInsn{code: jset, k: x32SyscallBit, jf: "filter"})
			default:
				prog = append(prog, stubInsn{code: jset, k: x32SyscallBit, jt: x32})
			}
		}
		if a.last != 0 {
			prog = append(prog, stubInsn{code: jgt, k: a.last, jt: "enosys", jf: "filter"})
		}
		if a.lastX32 != 0 {
			prog = append(prog, stubInsn{label: x32, code: jgt, k: a.lastX32, jt: "enosys", jf: "filter"})
		}
	}
	prog = append(prog, stubInsn{label: "enosys", code: ret, k: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)})

	at := map[string]int{"filter": len(prog)}
	for i, in := range prog {
		if in.label != "" {
			at[in.label] = i
		}
	}
	out := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		out[i] = unix.SockFilter{Code: in.code, K: in.k}
		jt, err := jumpOffset(at, i, in.jt)
		if err != nil {
			return nil, err
		}
		jf, err := jumpOffset(at, i, in.jf)
		if err != nil {
			return nil, err
		}
		if in.code == ja {
			out[i].K = uint32(jt)
			continue
		}
		out[i].Jt, out[i].Jf = uint8(jt), uint8(jf)
	}
	return out, nil
}

// jumpOffset is the BPF offset from instruction i to label: jumps count
// from the next instruction and only go forward.
func jumpOffset(at map[string]int, i int, label string) (int, error) {
	if label == "" {
		return 0, nil
	}
	target, ok := at[label]
	off := target - (i + 1)
	if !ok || off < 0 || off > 255 {
		return 0, fmt.Errorf("compile seccomp filter: ENOSYS stub jump to %s out of range (%d)", label, off)
	}
	return off, nil
}
