//go:build cgo

package seccomp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// programMagic starts a marshalled Program; the digit is the format version.
const programMagic = "berth-seccomp-1\n"

// ProgramFormat names the encoding of MarshalBinary, for keys of caches of
// marshalled programs.
const ProgramFormat = programMagic

// knownLoadFlags are the seccomp(2) flags Compile may set.
const knownLoadFlags = unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG |
	unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER |
	unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV

// MarshalBinary encodes the program for UnmarshalProgram. Compiling a large
// profile with libseccomp takes milliseconds (about 16 ms for Docker's
// default profile with its three x86 architectures), so a runtime may
// compile once, cache the bytes keyed by the configuration, and send them to
// the container init instead of the configuration. The encoding is for this
// machine only: it is in host byte order and specific to this architecture.
func (p *Program) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, len(programMagic)+8+insnSize*len(p.insns))
	b = append(b, programMagic...)
	b = binary.NativeEndian.AppendUint64(b, uint64(p.flags))
	for _, in := range p.insns {
		b = binary.NativeEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return b, nil
}

// UnmarshalProgram decodes what MarshalBinary produced. It checks the shape
// (instruction count, flags), not the BPF itself: the kernel verifies that.
func UnmarshalProgram(data []byte) (*Program, error) {
	rest, ok := bytes.CutPrefix(data, []byte(programMagic))
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
	if n := len(rest) / insnSize; len(rest)%insnSize != 0 || n == 0 || n > maxInsns {
		return nil, fmt.Errorf("decode seccomp program: %d bytes of instructions, want 1 to %d instructions of %d bytes", len(rest), maxInsns, insnSize)
	}
	return &Program{flags: uintptr(flags), insns: decodeInsns(rest)}, nil
}

// maxInsns is the longest program seccomp(2) accepts (BPF_MAXINSNS).
const maxInsns = 4096
