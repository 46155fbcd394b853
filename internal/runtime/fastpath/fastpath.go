// Package fastpath answers berth-runtime's plain `start`, `delete`, `kill`
// and `state` in C, in a constructor that runs before the Go runtime starts
// (see fastpath.c), and leaves every other case to the Go code. For a
// plain `create` another constructor starts the init's namespace stage
// before the Go runtime (prespawn.c), which the Go code adopts or
// discards (runtime.Prespawn), or, for the plainest configs, has the init
// do create's work (runtime.SelfCreate) without starting the Go runtime.
// Only
// cmd/berth-runtime imports it: the container init's own binary
// (cmd/berth-runtime-init) takes no commands.
package fastpath

/*
#cgo CFLAGS: -Wall -O2
#include <stdlib.h>
#include "prespawn.h"
*/
import "C"

import (
	"os"
	"syscall"
	"unsafe"
)

// Prespawned hands over, once, the container init's stage that prespawn.c
// started for this `create` before the Go runtime: the runtime's end of its
// socket, its pid, the CLONE_NEW* flags of the namespaces prespawn.c read
// in config.json, and the init binary it runs (for its build ID). ok is
// false when none was started.
func Prespawned() (sock *os.File, pid int, flags uintptr, binary *os.File, ok bool) {
	if C.berth_pre_sock < 0 {
		return nil, 0, 0, nil, false
	}
	// Non-blocking, so that os.File puts it in the poller and reads and
	// writes on it can have deadlines.
	if err := syscall.SetNonblock(int(C.berth_pre_sock), true); err != nil {
		return nil, 0, 0, nil, false
	}
	sock = os.NewFile(uintptr(C.berth_pre_sock), "init-parent")
	binary = os.NewFile(uintptr(C.berth_pre_bin), "berth-runtime-init")
	pid, flags = int(C.berth_pre_pid), uintptr(C.berth_pre_flags)
	C.berth_pre_sock, C.berth_pre_bin, C.berth_pre_pid = -1, -1, -1
	return sock, pid, flags, binary, true
}

// SelfCreateFailed hands over, once, a create whose init did create's
// work and failed (prespawn.c's self_create): how (berth_self_kind, which
// runtime.SelfFailure numbers alike), the line that says why, and the init's pid (-1 when there was none).
// ok is false when there was no such create.
func SelfCreateFailed() (kind int, line string, pid int, ok bool) {
	if C.berth_self_kind == 0 {
		return 0, "", 0, false
	}
	kind, pid = int(C.berth_self_kind), int(C.berth_self_pid)
	if C.berth_self_line != nil {
		line = C.GoString(C.berth_self_line)
		C.free(unsafe.Pointer(C.berth_self_line))
	}
	C.berth_self_kind, C.berth_self_line = 0, nil
	return kind, line, pid, true
}

// scanNamespaces is prespawn.c's reading of a config.json (for tests).
func scanNamespaces(data []byte) (uintptr, bool) {
	var flags C.ulong
	var p *C.char
	if len(data) > 0 {
		p = (*C.char)(unsafe.Pointer(&data[0]))
	}
	if C.berth_pre_scan(p, C.size_t(len(data)), &flags) == 0 {
		return 0, false
	}
	return uintptr(flags), true
}

// looksPlain is prespawn.c's guess whether the init can create a config
// itself (for tests).
func looksPlain(data []byte) bool {
	var p *C.char
	if len(data) > 0 {
		p = (*C.char)(unsafe.Pointer(&data[0]))
	}
	return C.berth_pre_plain(p, C.size_t(len(data))) != 0
}
