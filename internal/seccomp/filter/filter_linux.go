// Package filter is a compiled seccomp filter: its encoding for the trip from
// the runtime, which compiles it (package seccomp, with libseccomp), to the
// container's init, which installs it with seccomp(2). It holds no libseccomp
// and no cgo, so the container init's binary stays small.
package filter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Program is a compiled filter, ready to be installed by Load.
type Program struct {
	insns []unix.SockFilter
	flags uintptr
}

// New is the program of insns, installed with the seccomp(2) flags.
func New(insns []unix.SockFilter, flags uintptr) *Program {
	return &Program{insns: insns, flags: flags}
}

// Insns are the program's instructions.
func (p *Program) Insns() []unix.SockFilter { return p.insns }

// Format names the encoding of MarshalBinary, for keys of caches of
// marshalled programs.
const Format = magic

// magic starts a marshalled Program; the digit is the format version.
const magic = "berth-seccomp-1\n"

// MaxInsns is the longest program seccomp(2) accepts (BPF_MAXINSNS).
const MaxInsns = 4096

// InsnSize is the size of a struct sock_filter.
const InsnSize = 8

// knownLoadFlags are the seccomp(2) flags a program may carry.
const knownLoadFlags = unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG |
	unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER |
	unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV

// MarshalBinary encodes the program for Unmarshal. Compiling a large
// profile with libseccomp takes milliseconds (about 16 ms for Docker's
// default profile with its three x86 architectures), so a runtime may
// compile once, cache the bytes keyed by the configuration, and send them to
// the container init instead of the configuration. The encoding is for this
// machine only: it is in host byte order and specific to this architecture.
func (p *Program) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, len(magic)+8+InsnSize*len(p.insns))
	b = append(b, magic...)
	b = binary.NativeEndian.AppendUint64(b, uint64(p.flags))
	for _, in := range p.insns {
		b = binary.NativeEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return b, nil
}

// Unmarshal decodes what MarshalBinary produced. It checks the shape
// (instruction count, flags), not the BPF itself: the kernel verifies that.
func Unmarshal(data []byte) (*Program, error) {
	rest, ok := bytes.CutPrefix(data, []byte(magic))
	if !ok {
		return nil, errors.New("decode seccomp program: not a berth seccomp program")
	}
	if len(rest) < 8 {
		return nil, errors.New("decode seccomp program: truncated header")
	}
	flags := binary.NativeEndian.Uint64(rest)
	rest = rest[8:]
	if flags&^uint64(knownLoadFlags) != 0 {
		return nil, fmt.Errorf("decode seccomp program: unknown flags %#x", flags&^uint64(knownLoadFlags))
	}
	if n := len(rest) / InsnSize; len(rest)%InsnSize != 0 || n == 0 || n > MaxInsns {
		return nil, fmt.Errorf("decode seccomp program: %d bytes of instructions, want 1 to %d instructions of %d bytes", len(rest), MaxInsns, InsnSize)
	}
	return &Program{flags: uintptr(flags), insns: DecodeInsns(rest)}, nil
}

// DecodeInsns reads whole sock_filter structs in host byte order.
func DecodeInsns(raw []byte) []unix.SockFilter {
	insns := make([]unix.SockFilter, len(raw)/InsnSize)
	for i := range insns {
		b := raw[i*InsnSize:]
		insns[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(b[0:]),
			Jt:   b[2],
			Jf:   b[3],
			K:    binary.NativeEndian.Uint32(b[4:]),
		}
	}
	return insns
}

// Load installs the program in the calling process with TSYNC, so the filter
// applies to every thread of the Go runtime, and returns the listener fd or
// -1. Nothing is allocated after the filter is in place.
//
// The kernel requires no_new_privs or CAP_SYS_ADMIN. So when the container
// keeps new privileges, the init must load before it drops capabilities
// (as runc does), and the profile must allow what the init does afterwards
// (capset, setuid, setgroups, ... up to execve).
func (p *Program) Load() (notifyFd int, err error) {
	if len(p.insns) == 0 {
		return -1, errors.New("load seccomp filter: empty program")
	}
	fprog := unix.SockFprog{Len: uint16(len(p.insns)), Filter: &p.insns[0]}
	r, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, p.flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(p.insns)
	if errno != 0 {
		if errno == unix.EINVAL && !KernelSupportsFlags(p.flags) {
			return -1, fmt.Errorf("load seccomp filter: this kernel does not support the flags %s: %w", flagNames(p.flags), errno)
		}
		return -1, fmt.Errorf("load seccomp filter: %w", errno)
	}
	if p.flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
		return int(r), nil
	}
	if r != 0 {
		// Without TSYNC_ESRCH the kernel names the thread it could not sync.
		return -1, fmt.Errorf("load seccomp filter: thread %d could not be synchronised", r)
	}
	return -1, nil
}

// HasListener says whether loading the program returns a user-notification
// listener fd (the profile has SCMP_ACT_NOTIFY rules).
func (p *Program) HasListener() bool {
	return p.flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
}

// KernelSupportsFlags asks the kernel without installing anything:
// seccomp(2) checks the flags before it reads the program, so a NULL program
// fails with EFAULT when the flags are valid and EINVAL when not.
func KernelSupportsFlags(bits uintptr) bool {
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, bits, 0)
	return errno == unix.EFAULT
}

func flagNames(flags uintptr) string {
	names := []struct {
		bit  uintptr
		name string
	}{
		{unix.SECCOMP_FILTER_FLAG_TSYNC, "TSYNC"},
		{unix.SECCOMP_FILTER_FLAG_LOG, "LOG"},
		{unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW, "SPEC_ALLOW"},
		{unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, "NEW_LISTENER"},
		{unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH, "TSYNC_ESRCH"},
		{unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, "WAIT_KILLABLE_RECV"},
	}
	var out []string
	for _, n := range names {
		if flags&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, "|")
}
