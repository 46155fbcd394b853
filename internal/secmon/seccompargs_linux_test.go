//go:build cgo

package secmon

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/seccomp"
)

// bpfVerdict runs a compiled seccomp program on one call, as the
// kernel would (the classic BPF subset libseccomp emits).
func bpfVerdict(t *testing.T, code []unix.SockFilter, arch, nr uint32, args [6]uint64) uint32 {
	t.Helper()
	var data [64]byte // struct seccomp_data
	binary.NativeEndian.PutUint32(data[0:], nr)
	binary.NativeEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.NativeEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(code); pc++ {
		in := code[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.NativeEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		default:
			var taken bool
			switch in.Code {
			case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
				taken = acc == in.K
			case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
				taken = acc > in.K
			case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
				taken = acc >= in.K
			case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
				taken = acc&in.K != 0
			default:
				t.Fatalf("BPF opcode %#x at %d", in.Code, pc)
			}
			if taken {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		}
	}
	t.Fatal("the BPF program ran off its end")
	return 0
}

// compiled compiles a profile with Berth's seccomp compiler (libseccomp).
func compiled(t *testing.T, sc *specs.LinuxSeccomp) []unix.SockFilter {
	t.Helper()
	prog, err := seccomp.Compile(sc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := prog.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b = b[len(seccomp.ProgramFormat)+8:]
	code := make([]unix.SockFilter, len(b)/8)
	for i := range code {
		code[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b[8*i:]), Jt: b[8*i+2], Jf: b[8*i+3], K: binary.NativeEndian.Uint32(b[8*i+4:])}
	}
	return code
}

// TestSeccompDenyThroughLibseccomp compiles random deny conditions into
// profiles of four shapes with the runtime's own compiler and checks the
// verdict of the BPF on chosen arguments against the rule's CEL, evaluated
// on what the kernel reads (the low half of a 32-bit argument). It is what
// shows that libseccomp checks the deny rules before the catch-all rule
// that gives the call its previous treatment.
func TestSeccompDenyThroughLibseccomp(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the test runs x86_64 BPF; this machine is " + runtime.GOARCH)
	}
	eperm, enosys := uint(1), uint(38)
	profiles := map[string]func() *specs.LinuxSeccomp{
		"docker": func() *specs.LinuxSeccomp { return seccomp.DefaultProfile() },
		"none":   func() *specs.LinuxSeccomp { return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow} },
		"enosys": func() *specs.LinuxSeccomp {
			return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &enosys, Syscalls: []specs.LinuxSyscall{{Names: []string{"setresuid", "setreuid", "setuid", "setns", "unshare", "capset"}, Action: specs.ActAllow}}}
		},
		"eperm-log": func() *specs.LinuxSeccomp {
			return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &eperm, Syscalls: []specs.LinuxSyscall{{Names: []string{"setresuid", "setreuid", "setuid", "setns", "unshare", "capset"}, Action: specs.ActLog}}}
		},
	}
	calls := map[string]string{"setuid": EventSetuid, "setreuid": EventSetuid, "setresuid": EventSetuid, "capset": EventSetuid, "setns": EventNamespace, "unshare": EventNamespace}
	consts := []string{"0", "1", "5", "1000", "4294967295", "2147483648"}
	narrow := []uint64{0, 1, 5, 999, 1000, 1001, 0xffffffff, 0x7fffffff, 0x80000000, 1 << 32, 1<<32 | 5, 1<<32 | 1000, 0xffffffff_ffffffff, 0xffffffff_00000000}
	wide := []uint64{0, 1, 4, 5, 6, 999, 1000, 1001, 0xffffffff, 0x80000000, 1 << 32, 1<<40 | 5}
	r := rand.New(rand.NewPCG(7, 11))
	var gen func(call string, depth int) string
	gen = func(call string, depth int) string {
		n := len(argWidths[call])
		switch k := r.IntN(10); {
		case depth > 0 && k < 2:
			return "(" + gen(call, depth-1) + " && " + gen(call, depth-1) + ")"
		case depth > 0 && k < 4:
			return "(" + gen(call, depth-1) + " || " + gen(call, depth-1) + ")"
		case depth > 0 && k < 5:
			return "!(" + gen(call, depth-1) + ")"
		case k < 6:
			return fmt.Sprintf("syscall.name %s %q", []string{"==", "!="}[r.IntN(2)], []string{call, "setns", "setuid"}[r.IntN(3)])
		case k < 7:
			return fmt.Sprintf("syscall.args[%d] in [%s, %s]", r.IntN(n), consts[r.IntN(len(consts))], consts[r.IntN(len(consts))])
		}
		i, ops := r.IntN(n), []string{"==", "!=", "<", "<=", ">", ">="}
		if argWidths[call][i] == 'l' {
			ops = ops[:1] // 64-bit arguments take == only
		}
		return fmt.Sprintf("syscall.args[%d] %s %s", i, ops[r.IntN(len(ops))], consts[r.IntN(len(consts))])
	}
	checked, refused := 0, 0
	for iter := 0; iter < 120; iter++ {
		call := []string{"setuid", "setreuid", "setresuid", "capset", "setns", "unshare"}[r.IntN(6)]
		cond := gen(call, 3)
		if r.IntN(2) == 0 {
			cond = fmt.Sprintf("syscall.name == %q && (%s)", call, cond)
		}
		rules := fmt.Sprintf("rules:\n- name: r\n  event: %s\n  condition: '%s'\n  action: deny\n", calls[call], cond)
		rs, err := ParseRules([]byte(rules), "r.yaml")
		if err != nil {
			// Too many rules for seccomp, or a range on a 64-bit
			// argument of another call of the kind: refused.
			if !strings.Contains(err.Error(), "seccomp rules") && !strings.Contains(err.Error(), "64 bits wide") {
				t.Fatalf("%s: %v", cond, err)
			}
			refused++ // too many rules for seccomp: refused, as it should
			continue
		}
		plan, err := rs.Plan(Container{ID: "c"})
		if err != nil {
			t.Fatal(err)
		}
		for name, mk := range profiles {
			sc := mk()
			before := compiled(t, mk())
			if err := mergeSeccompDenies(sc, plan.Seccomp); err != nil {
				t.Fatalf("%s: %v", cond, err)
			}
			code := compiled(t, sc)
			for range 40 {
				var args [6]uint64
				view := make([]int64, 4)
				for i, w := range argWidths[call] {
					if w == 'w' {
						args[i] = narrow[r.IntN(len(narrow))]
						view[i] = int64(uint32(args[i]))
					} else {
						args[i] = wide[r.IntN(len(wide))]
						view[i] = int64(args[i])
					}
				}
				nr := sysNumbers[call]
				deny, err := rs.Eval(0, Input{Syscall: &SyscallVars{Name: call, Args: view}})
				if err != nil {
					t.Fatal(err)
				}
				was := bpfVerdict(t, before, unix.AUDIT_ARCH_X86_64, nr, args)
				want := was
				if deny && was&unix.SECCOMP_RET_ACTION_FULL != unix.SECCOMP_RET_ERRNO {
					want = unix.SECCOMP_RET_ERRNO | 1
					if _, conditional := plan.Seccomp[0].When[call]; conditional && (name == "docker" || name == "eperm-log") {
						want = unix.SECCOMP_RET_ERRNO | 13
					}
				}
				if got := bpfVerdict(t, code, unix.AUDIT_ARCH_X86_64, nr, args); got != want {
					t.Fatalf("profile %s, %s(%#x): %s: got %#x, want %#x (was %#x)\nrules %+v", name, call, args[:len(argWidths[call])], cond, got, want, was, plan.Seccomp)
				}
				checked++
			}
		}
	}
	t.Logf("%d verdicts checked, %d conditions refused as too large", checked, refused)
}

// The x86 ABI's setuid32 (the 32-bit ids that ABI's programs use) is
// denied as setuid is, under Docker's default profile, which allows it.
func TestSeccompDenySetuid32(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the test runs x86 BPF; this machine is " + runtime.GOARCH)
	}
	p := planOf(t, noRootRule)
	sc := seccomp.DefaultProfile()
	if err := mergeSeccompDenies(sc, p.Seccomp); err != nil {
		t.Fatal(err)
	}
	code := compiled(t, sc)
	const setuid32, setresuid32 = 213, 208 // arch/x86/entry/syscalls/syscall_32.tbl
	for _, c := range []struct {
		nr   uint32
		args [6]uint64
		want uint32
	}{
		{setuid32, [6]uint64{0}, unix.SECCOMP_RET_ERRNO | 13},
		{setuid32, [6]uint64{1000}, unix.SECCOMP_RET_ALLOW},
		{setresuid32, [6]uint64{0xffffffff, 0, 0xffffffff}, unix.SECCOMP_RET_ERRNO | 13},
		{setresuid32, [6]uint64{0xffffffff, 1000, 0xffffffff}, unix.SECCOMP_RET_ALLOW},
	} {
		if got := bpfVerdict(t, code, unix.AUDIT_ARCH_I386, c.nr, c.args); got != c.want {
			t.Errorf("i386 %d%v: got %#x, want %#x", c.nr, c.args[:3], got, c.want)
		}
	}
}
