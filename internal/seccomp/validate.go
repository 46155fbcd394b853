package seccomp

import (
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxArgs is the number of arguments a Linux syscall has.
const maxArgs = 6

// maxRetData is the largest value the 16-bit SECCOMP_RET_DATA field holds:
// the errno of SCMP_ACT_ERRNO and the message of SCMP_ACT_TRACE.
const maxRetData = 0xffff

// flagTsync is not in the runtime-spec, but runc accepts it; Load always
// synchronises threads, so it is accepted and changes nothing.
const flagTsync specs.LinuxSeccompFlag = "SECCOMP_FILTER_FLAG_TSYNC"

var knownActions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
	specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
}

var knownOperators = []specs.LinuxSeccompOperator{
	specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
	specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
}

var knownFlags = []specs.LinuxSeccompFlag{
	specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow,
	specs.LinuxSeccompFlagWaitKillableRecv, flagTsync,
}

// version is a libseccomp release.
type version struct{ major, minor, micro uint }

func (v version) less(o version) bool {
	if v.major != o.major {
		return v.major < o.major
	}
	if v.minor != o.minor {
		return v.minor < o.minor
	}
	return v.micro < o.micro
}

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.micro) }

// archMinLibseccomp lists the architectures of the runtime-spec and the
// libseccomp release that first knows each; zero means every supported one.
var archMinLibseccomp = map[specs.Arch]version{
	specs.ArchX86: {}, specs.ArchX86_64: {}, specs.ArchX32: {}, specs.ArchARM: {},
	specs.ArchAARCH64: {}, specs.ArchMIPS: {}, specs.ArchMIPS64: {},
	specs.ArchMIPS64N32: {}, specs.ArchMIPSEL: {}, specs.ArchMIPSEL64: {},
	specs.ArchMIPSEL64N32: {}, specs.ArchPPC: {}, specs.ArchPPC64: {},
	specs.ArchPPC64LE: {}, specs.ArchS390: {}, specs.ArchS390X: {},
	specs.ArchPARISC: {}, specs.ArchPARISC64: {}, specs.ArchRISCV64: {},
	specs.ArchLOONGARCH64: {2, 6, 0}, specs.ArchM68K: {2, 6, 0},
	specs.ArchSH: {2, 6, 0}, specs.ArchSHEB: {2, 6, 0},
}

// notifyForbidden are the syscalls the container init uses to hand the
// listener fd back to the runtime after the filter is loaded; notifying on
// them would block the init forever, waiting for an agent that never got the
// fd. runc refuses "write" for the same reason.
var notifyForbidden = []string{"write", "sendmsg"}

// validate checks cfg against the runtime-spec, the linked libseccomp and
// the kernel's flags. It is pure so that it can be tested with any library
// version and kernel.
func validate(cfg *specs.LinuxSeccomp, lib version, kernelHas func(specs.LinuxSeccompFlag) bool) error {
	if cfg == nil {
		return nil
	}
	const p = "linux.seccomp"
	switch {
	case cfg.DefaultAction == "":
		return fmt.Errorf("%s.defaultAction: required", p)
	case !slices.Contains(knownActions, cfg.DefaultAction):
		return fmt.Errorf("%s.defaultAction: unknown action %q", p, cfg.DefaultAction)
	case cfg.DefaultAction == specs.ActNotify:
		// The init could not even hand over the listener.
		return fmt.Errorf("%s.defaultAction: %s cannot be the default action", p, specs.ActNotify)
	}
	if err := checkErrnoRet(p+".defaultErrnoRet", cfg.DefaultAction, cfg.DefaultErrnoRet); err != nil {
		return err
	}
	for i, a := range cfg.Architectures {
		min, ok := archMinLibseccomp[a]
		if !ok {
			return fmt.Errorf("%s.architectures[%d]: unknown architecture %q", p, i, a)
		}
		if lib.less(min) {
			return fmt.Errorf("%s.architectures[%d]: %s needs libseccomp %s, this runtime has %s", p, i, a, min, lib)
		}
	}
	notify := -1
	for i, sc := range cfg.Syscalls {
		if err := validateSyscall(fmt.Sprintf("%s.syscalls[%d]", p, i), sc); err != nil {
			return err
		}
		if sc.Action == specs.ActNotify && notify < 0 {
			notify = i
		}
	}
	for i, f := range cfg.Flags {
		if !slices.Contains(knownFlags, f) {
			return fmt.Errorf("%s.flags[%d]: unknown flag %q", p, i, f)
		}
		if f == specs.LinuxSeccompFlagWaitKillableRecv && notify < 0 {
			return fmt.Errorf("%s.flags[%d]: %s needs a syscall with action %s", p, i, f, specs.ActNotify)
		}
		if !kernelHas(f) {
			return fmt.Errorf("%s.flags[%d]: %s is not supported by this kernel", p, i, f)
		}
	}
	switch {
	case cfg.ListenerPath == "" && notify >= 0:
		return fmt.Errorf("%s.syscalls[%d].action: %s needs %s.listenerPath", p, notify, specs.ActNotify, p)
	case len(cfg.ListenerPath) > maxSocketPath:
		return fmt.Errorf("%s.listenerPath: %d bytes, longer than a unix socket path can be (%d)", p, len(cfg.ListenerPath), maxSocketPath)
	}
	return nil
}

// maxSocketPath is the room for a path in sockaddr_un, less the final NUL.
const maxSocketPath = 107

func validateSyscall(p string, sc specs.LinuxSyscall) error {
	if len(sc.Names) == 0 {
		return fmt.Errorf("%s.names: at least one syscall name is required", p)
	}
	for j, n := range sc.Names {
		if n == "" {
			return fmt.Errorf("%s.names[%d]: empty syscall name", p, j)
		}
		if sc.Action == specs.ActNotify && slices.Contains(notifyForbidden, n) {
			// runc's words ("cannot be used for the write syscall").
			return fmt.Errorf("%s.names[%d]: %s cannot be used for the %s syscall: the container init needs it to hand over the listener", p, j, specs.ActNotify, n)
		}
	}
	if !slices.Contains(knownActions, sc.Action) {
		return fmt.Errorf("%s.action: unknown action %q", p, sc.Action)
	}
	if err := checkErrnoRet(p+".errnoRet", sc.Action, sc.ErrnoRet); err != nil {
		return err
	}
	if len(sc.Args) > maxArgs {
		return fmt.Errorf("%s.args: %d conditions, at most %d are allowed", p, len(sc.Args), maxArgs)
	}
	for j, a := range sc.Args {
		if a.Index >= maxArgs {
			return fmt.Errorf("%s.args[%d].index: %d is out of range (0 to %d)", p, j, a.Index, maxArgs-1)
		}
		if !slices.Contains(knownOperators, a.Op) {
			return fmt.Errorf("%s.args[%d].op: unknown operator %q", p, j, a.Op)
		}
	}
	return nil
}

func checkErrnoRet(field string, action specs.LinuxSeccompAction, ret *uint) error {
	if ret == nil {
		return nil
	}
	if action != specs.ActErrno && action != specs.ActTrace {
		return fmt.Errorf("%s: only %s and %s take an errno, not %s", field, specs.ActErrno, specs.ActTrace, action)
	}
	if *ret > maxRetData {
		return fmt.Errorf("%s: %d is out of range (0 to %d)", field, *ret, maxRetData)
	}
	return nil
}
