//go:build cgo

package seccomp

import (
	"errors"
	"fmt"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"

	"github.com/berth-project/berth/internal/seccomp/filter"
	"golang.org/x/sys/unix"
)

// Validate reports the first fault in cfg as one error naming the field,
// e.g. `linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO"`.
// Besides the spec it checks what this host can do: architectures the
// linked libseccomp knows, flags the kernel supports (asked without
// installing anything). It has no side effects; a nil cfg is valid.
func Validate(cfg *specs.LinuxSeccomp) error {
	major, minor, micro := libseccompVersion()
	return validate(cfg, version{major, minor, micro}, kernelSupportsFlag)
}

func libseccompVersion() (major, minor, micro uint) { return libseccomp.GetLibraryVersion() }

// LibraryVersion is the version of the libseccomp that Compile uses.
func LibraryVersion() (major, minor, micro uint) { return libseccompVersion() }

// Compile validates cfg and builds its BPF program. It does everything that
// may allocate or fail for reasons of the configuration, so that a caller
// can compile early and keep only the seccomp(2) call for right before
// execve.
func Compile(cfg *specs.LinuxSeccomp) (*Program, error) {
	if cfg == nil {
		return nil, errors.New("compile seccomp filter: no linux.seccomp configuration")
	}
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	insns, err := buildFilter(cfg)
	if err != nil {
		return nil, err
	}
	stub, err := enosysStub(cfg)
	if err != nil {
		return nil, err
	}
	all := append(stub, insns...)
	if len(all) > filter.MaxInsns {
		return nil, fmt.Errorf("compile seccomp filter: %d BPF instructions, more than the kernel's limit of %d: the profile is too large", len(all), filter.MaxInsns)
	}
	var flags uintptr = unix.SECCOMP_FILTER_FLAG_TSYNC
	for _, f := range cfg.Flags {
		switch f {
		case specs.LinuxSeccompFlagLog:
			flags |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case specs.LinuxSeccompFlagWaitKillableRecv:
			flags |= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
		}
	}
	if hasNotify(cfg) {
		// The kernel refuses TSYNC with a listener unless a failed thread
		// sync is reported as ESRCH (the listener fd takes the return value).
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
	}
	return filter.New(all, flags), nil
}

// Load compiles cfg and installs it in the calling process, on all threads.
// It returns the user-notification listener fd (close-on-exec, so it does
// not reach the container's program), or -1 when no rule has
// SCMP_ACT_NOTIFY.
//
// The kernel requires no_new_privs or CAP_SYS_ADMIN. So when the container
// keeps new privileges, the init must load before it drops capabilities
// (as runc does), and the profile must allow what the init does afterwards
// (capset, setuid, setgroups, ... up to execve).
func Load(cfg *specs.LinuxSeccomp) (notifyFd int, err error) {
	prog, err := Compile(cfg)
	if err != nil {
		return -1, err
	}
	return prog.Load()
}

func hasNotify(cfg *specs.LinuxSeccomp) bool {
	for _, sc := range cfg.Syscalls {
		if sc.Action == specs.ActNotify {
			return true
		}
	}
	return false
}

// archInfo is what Compile needs of a runtime-spec architecture:
// libseccomp's token and the seccomp_data.arch value the kernel reports.
// x32 shares x86_64's and is told apart by x32SyscallBit.
type archInfo struct {
	scmp  libseccomp.ScmpArch
	audit uint32
}

var archInfos = map[specs.Arch]archInfo{
	specs.ArchX86:         {libseccomp.ArchX86, unix.AUDIT_ARCH_I386},
	specs.ArchX86_64:      {libseccomp.ArchAMD64, unix.AUDIT_ARCH_X86_64},
	specs.ArchX32:         {libseccomp.ArchX32, unix.AUDIT_ARCH_X86_64},
	specs.ArchARM:         {libseccomp.ArchARM, unix.AUDIT_ARCH_ARM},
	specs.ArchAARCH64:     {libseccomp.ArchARM64, unix.AUDIT_ARCH_AARCH64},
	specs.ArchMIPS:        {libseccomp.ArchMIPS, unix.AUDIT_ARCH_MIPS},
	specs.ArchMIPS64:      {libseccomp.ArchMIPS64, unix.AUDIT_ARCH_MIPS64},
	specs.ArchMIPS64N32:   {libseccomp.ArchMIPS64N32, unix.AUDIT_ARCH_MIPS64N32},
	specs.ArchMIPSEL:      {libseccomp.ArchMIPSEL, unix.AUDIT_ARCH_MIPSEL},
	specs.ArchMIPSEL64:    {libseccomp.ArchMIPSEL64, unix.AUDIT_ARCH_MIPSEL64},
	specs.ArchMIPSEL64N32: {libseccomp.ArchMIPSEL64N32, unix.AUDIT_ARCH_MIPSEL64N32},
	specs.ArchPPC:         {libseccomp.ArchPPC, unix.AUDIT_ARCH_PPC},
	specs.ArchPPC64:       {libseccomp.ArchPPC64, unix.AUDIT_ARCH_PPC64},
	specs.ArchPPC64LE:     {libseccomp.ArchPPC64LE, unix.AUDIT_ARCH_PPC64LE},
	specs.ArchS390:        {libseccomp.ArchS390, unix.AUDIT_ARCH_S390},
	specs.ArchS390X:       {libseccomp.ArchS390X, unix.AUDIT_ARCH_S390X},
	specs.ArchPARISC:      {libseccomp.ArchPARISC, unix.AUDIT_ARCH_PARISC},
	specs.ArchPARISC64:    {libseccomp.ArchPARISC64, unix.AUDIT_ARCH_PARISC64},
	specs.ArchRISCV64:     {libseccomp.ArchRISCV64, unix.AUDIT_ARCH_RISCV64},
	specs.ArchLOONGARCH64: {libseccomp.ArchLOONGARCH64, unix.AUDIT_ARCH_LOONGARCH64},
	specs.ArchM68K:        {libseccomp.ArchM68K, unix.AUDIT_ARCH_M68K},
	specs.ArchSH:          {libseccomp.ArchSH, unix.AUDIT_ARCH_SHEL},
	specs.ArchSHEB:        {libseccomp.ArchSHEB, unix.AUDIT_ARCH_SH},
}

// auditArch is the seccomp_data.arch value of a libseccomp architecture.
func auditArch(a libseccomp.ScmpArch) (uint32, bool) {
	for _, info := range archInfos {
		if info.scmp == a {
			return info.audit, true
		}
	}
	return 0, false
}

var scmpOps = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual: libseccomp.CompareNotEqual, specs.OpLessThan: libseccomp.CompareLess,
	specs.OpLessEqual: libseccomp.CompareLessOrEqual, specs.OpEqualTo: libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual, specs.OpGreaterThan: libseccomp.CompareGreater,
	specs.OpMaskedEqual: libseccomp.CompareMaskedEqual,
}

// scmpAction converts a validated action. SCMP_ACT_ERRNO and SCMP_ACT_TRACE
// without errnoRet return EPERM, as in runc.
func scmpAction(a specs.LinuxSeccompAction, errnoRet *uint) libseccomp.ScmpAction {
	ret := uint(unix.EPERM)
	if errnoRet != nil {
		ret = *errnoRet
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActKillThread
	case specs.ActKillProcess:
		return libseccomp.ActKillProcess
	case specs.ActTrap:
		return libseccomp.ActTrap
	case specs.ActErrno:
		return libseccomp.ActErrno.SetReturnCode(int16(uint16(ret)))
	case specs.ActTrace:
		return libseccomp.ActTrace.SetReturnCode(int16(uint16(ret)))
	case specs.ActLog:
		return libseccomp.ActLog
	case specs.ActNotify:
		return libseccomp.ActNotify
	default:
		return libseccomp.ActAllow
	}
}

// buildFilter compiles a validated cfg with libseccomp and returns its BPF.
func buildFilter(cfg *specs.LinuxSeccomp) ([]unix.SockFilter, error) {
	def := scmpAction(cfg.DefaultAction, cfg.DefaultErrnoRet)
	filter, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, fmt.Errorf("create seccomp filter: %w", err)
	}
	defer filter.Release()
	for i, a := range cfg.Architectures {
		if err := filter.AddArch(archInfos[a].scmp); err != nil {
			return nil, fmt.Errorf("linux.seccomp.architectures[%d]: add %s: %w", i, a, err)
		}
	}
	// A binary tree of syscalls turns the linear scan of a long profile
	// (Docker's: up to ~330 comparisons per syscall) into a search; it costs
	// compile time (16 ms instead of 12 for Docker's). libseccomp up to
	// 2.5.4 miscompiles it for filters with no rules, hence the threshold
	// (runc's, counted in names as runc's rules have one name each).
	// Failure only costs speed on old libseccomp.
	if countNames(cfg) > 32 {
		_ = filter.SetOptimize(2)
	}
	for i, sc := range cfg.Syscalls {
		if err := addRule(filter, sc, def); err != nil {
			return nil, fmt.Errorf("linux.seccomp.syscalls[%d]: %w", i, err)
		}
	}
	return exportBPF(filter)
}

func countNames(cfg *specs.LinuxSeccomp) int {
	n := 0
	for _, sc := range cfg.Syscalls {
		n += len(sc.Names)
	}
	return n
}

// addRule adds one syscalls[] entry. Conditions on distinct arguments are
// ANDed in one rule; when two conditions test the same argument, each
// condition becomes a rule of its own, so they are ORed. That is runc's
// behaviour. Rules for one syscall combine as libseccomp combines them: the
// first of two rules with the same conditions wins, and an unconditional
// rule replaces the conditional ones.
func addRule(filter *libseccomp.ScmpFilter, sc specs.LinuxSyscall, def libseccomp.ScmpAction) error {
	act := scmpAction(sc.Action, sc.ErrnoRet)
	if act == def {
		// libseccomp refuses rules that repeat the default action.
		return nil
	}
	conds := make([]libseccomp.ScmpCondition, 0, len(sc.Args))
	var seen [maxArgs]bool
	sameArg := false
	for _, a := range sc.Args {
		c, err := libseccomp.MakeCondition(a.Index, scmpOps[a.Op], a.Value, a.ValueTwo)
		if err != nil {
			return fmt.Errorf("condition on argument %d: %w", a.Index, err)
		}
		sameArg = sameArg || seen[a.Index]
		seen[a.Index] = true
		conds = append(conds, c)
	}
	// A group is the conditions of one libseccomp rule.
	groups := [][]libseccomp.ScmpCondition{conds}
	if sameArg {
		groups = groups[:0]
		for _, c := range conds {
			groups = append(groups, []libseccomp.ScmpCondition{c})
		}
	}
	for _, name := range sc.Names {
		nr, err := libseccomp.GetSyscallFromName(name)
		if err != nil {
			continue // not a syscall of this libseccomp; skipped as runc does
		}
		for _, g := range groups {
			if len(g) == 0 {
				err = filter.AddRule(nr, act)
			} else {
				err = filter.AddRuleConditional(nr, act, g)
			}
			if errors.Is(err, unix.EEXIST) {
				// The same conditions with another action came earlier;
				// the first rule wins, as libseccomp does for
				// unconditional rules.
				err = nil
			}
			if err != nil {
				return fmt.Errorf("add rule for syscall %q: %w", name, err)
			}
		}
	}
	return nil
}

// exportBPF reads the filter's program through a memfd: libseccomp 2.5 can
// only export to a file descriptor.
func exportBPF(sf *libseccomp.ScmpFilter) ([]unix.SockFilter, error) {
	fd, err := unix.MemfdCreate("berth-seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("export seccomp filter: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth-seccomp-bpf")
	defer f.Close()
	if err := sf.ExportBPF(f); err != nil {
		return nil, fmt.Errorf("export seccomp filter: %w", err)
	}
	// Read through the fd itself: /proc may not be mounted in the init.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("export seccomp filter: rewind: %w", err)
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("export seccomp filter: read back: %w", err)
	}
	if len(raw) == 0 || len(raw)%filter.InsnSize != 0 {
		return nil, fmt.Errorf("export seccomp filter: %d bytes is not a BPF program", len(raw))
	}
	return filter.DecodeInsns(raw), nil
}
