//go:build cgo

package seccomp

import (
	"encoding/binary"
	"runtime"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// run interprets a seccomp program for one syscall, as the kernel would, so
// that architectures the test machine cannot call (i386, x32) are checked
// too. It knows the classic BPF subset seccomp filters use.
func run(t *testing.T, prog []unix.SockFilter, arch uint32, nr uint32, args ...uint64) uint32 {
	t.Helper()
	var data [64]byte // struct seccomp_data
	binary.NativeEndian.PutUint32(data[0:], nr)
	binary.NativeEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.NativeEndian.PutUint64(data[16+8*i:], a)
	}
	var acc, x uint32
	var mem [16]uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		jump := func(cond bool) {
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		}
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.NativeEndian.Uint32(data[in.K:])
		case unix.BPF_LD | unix.BPF_MEM:
			acc = mem[in.K]
		case unix.BPF_ST:
			mem[in.K] = acc
		case unix.BPF_MISC | unix.BPF_TAX:
			x = acc
		case unix.BPF_MISC | unix.BPF_TXA:
			acc = x
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			jump(acc == in.K)
		case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
			jump(acc > in.K)
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			jump(acc >= in.K)
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			jump(acc&in.K != 0)
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("instruction %d: opcode %#x not known to the test interpreter", pc, in.Code)
		}
	}
	t.Fatal("program ran off its end")
	return 0
}

const (
	retAllow   = unix.SECCOMP_RET_ALLOW
	retKill    = unix.SECCOMP_RET_KILL_THREAD
	retEPERM   = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS  = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	archI386   = unix.AUDIT_ARCH_I386
	archX86_64 = unix.AUDIT_ARCH_X86_64
	x32        = x32SyscallBit
)

// TestDefaultProfileBPF checks the compiled default profile for the three
// x86 ABIs it covers, numbers from the kernel's syscall tables.
func TestDefaultProfileBPF(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the expected syscall numbers are x86's; this machine is " + runtime.GOARCH)
	}
	prog, err := Compile(DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		arch uint32
		nr   uint32
		args []uint64
		want uint32
	}{
		{"x86_64 read", archX86_64, 0, nil, retAllow},
		{"x86_64 keyctl", archX86_64, 250, nil, retEPERM},
		{"x86_64 mount", archX86_64, 165, nil, retEPERM},
		{"x86_64 unshare", archX86_64, 272, nil, retEPERM},
		{"x86_64 clone thread", archX86_64, 56, []uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}, retAllow},
		{"x86_64 clone new user namespace", archX86_64, 56, []uint64{unix.CLONE_NEWUSER}, retEPERM},
		{"x86_64 clone flags above 32 bits", archX86_64, 56, []uint64{1 << 40}, retAllow},
		{"x86_64 clone3", archX86_64, 435, nil, retENOSYS},
		{"x86_64 personality query", archX86_64, 135, []uint64{0xffffffff}, retAllow},
		{"x86_64 personality ADDR_NO_RANDOMIZE", archX86_64, 135, []uint64{0x0040000}, retEPERM},
		{"x86_64 socket AF_VSOCK", archX86_64, 41, []uint64{40}, retEPERM},
		{"x86_64 socket AF_INET", archX86_64, 41, []uint64{unix.AF_INET}, retAllow},
		{"x86_64 syscall 1000", archX86_64, 1000, nil, retENOSYS},
		{"i386 read", archI386, 3, nil, retAllow},
		{"i386 keyctl", archI386, 288, nil, retEPERM},
		{"i386 socketcall", archI386, 102, nil, retAllow},
		{"i386 syscall 1000", archI386, 1000, nil, retENOSYS},
		{"x32 read", archX86_64, x32 | 0, nil, retAllow},
		{"x32 keyctl", archX86_64, x32 | 250, nil, retEPERM},
		{"x32 syscall 1000", archX86_64, x32 | 1000, nil, retENOSYS},
		{"aarch64 is not in the filter", unix.AUDIT_ARCH_AARCH64, 63, nil, retKill},
	} {
		if got := run(t, prog.Insns(), tc.arch, tc.nr, tc.args...); got != tc.want {
			t.Errorf("%s: got %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

// TestENOSYSStub checks which default actions get the stub and which
// architectures it covers.
func TestENOSYSStub(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the expected syscall numbers are x86's; this machine is " + runtime.GOARCH)
	}
	// read is 0 and getpid 39 on x86_64, 3 and 20 on i386.
	rules := []specs.LinuxSyscall{{Names: []string{"read", "getpid"}, Action: specs.ActAllow}}
	kill := specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Syscalls: rules}
	errno5 := specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: uintp(5), Syscalls: rules}
	x32Only := specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX32}}
	for _, tc := range []struct {
		name     string
		cfg      *specs.LinuxSeccomp
		arch, nr uint32
		want     uint32
	}{
		{"kill: newer than the profile", &kill, archX86_64, 40, retENOSYS},
		{"kill: older than the profile", &kill, archX86_64, 38, unix.SECCOMP_RET_KILL_PROCESS},
		{"kill: named", &kill, archX86_64, 39, retAllow},
		{"kill: x32 not in the filter", &kill, archX86_64, x32 | 1000, retKill},
		{"errno 5: newer", &errno5, archX86_64, 500, retENOSYS},
		{"errno 5: older", &errno5, archX86_64, 1, unix.SECCOMP_RET_ERRNO | 5},
		{"x32: newer", &x32Only, archX86_64, x32 | 40, retENOSYS},
		{"x32: older", &x32Only, archX86_64, x32 | 1, retEPERM},
		{"x32: named", &x32Only, archX86_64, x32 | 39, retAllow},
		{"x32: i386 not in the filter", &x32Only, archI386, 20, retKill},
	} {
		prog, err := Compile(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := run(t, prog.Insns(), tc.arch, tc.nr); got != tc.want {
			t.Errorf("%s: got %#x, want %#x", tc.name, got, tc.want)
		}
	}

	for _, cfg := range []specs.LinuxSeccomp{
		{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mount"}, Action: specs.ActErrno}}},
		{DefaultAction: specs.ActLog, Syscalls: rules},
		{DefaultAction: specs.ActTrace, Syscalls: rules},
		{DefaultAction: specs.ActErrno, DefaultErrnoRet: uintp(uint(unix.ENOSYS)), Syscalls: rules},
		{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"no_such_syscall_berth"}, Action: specs.ActAllow}}},
	} {
		if stub, err := enosysStub(&cfg); err != nil || stub != nil {
			t.Errorf("default %s, %d rules: stub %v, %v; want none", cfg.DefaultAction, len(cfg.Syscalls), stub, err)
		}
	}
}

// TestRuleCombination pins how rules for one syscall combine: the first of
// two rules with the same conditions wins, and that clash does not drop the
// rule's other conditions.
func TestRuleCombination(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the expected syscall numbers are x86's; this machine is " + runtime.GOARCH)
	}
	eq := func(v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: 0, Op: specs.OpEqualTo, Value: v}
	}
	prog, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpgid"}, Action: specs.ActErrno, ErrnoRet: uintp(5), Args: []specs.LinuxSeccompArg{eq(5)}},
			{Names: []string{"getpgid"}, Action: specs.ActErrno, ErrnoRet: uintp(6), Args: []specs.LinuxSeccompArg{eq(5), eq(7)}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	const getpgid = 121
	for arg, want := range map[uint64]uint32{
		5: unix.SECCOMP_RET_ERRNO | 5,
		7: unix.SECCOMP_RET_ERRNO | 6,
		6: retAllow,
	} {
		if got := run(t, prog.Insns(), archX86_64, getpgid, arg); got != want {
			t.Errorf("getpgid(%d): got %#x, want %#x", arg, got, want)
		}
	}
}
