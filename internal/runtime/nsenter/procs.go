package nsenter

// int berth_restore_affinity(void);
import "C"

import (
	"os"
	goruntime "runtime"
	"syscall"
)

// Every berth-runtime process is short-lived and does its work on one
// goroutine at a time, so one P is enough. With a P per CPU the runtime
// starts more threads during package initialisation (net/netip's
// unique.Make wakes a second P, which needs a new thread) and gives each P
// its own spans: more page faults, more RSS and, on a loaded machine, more
// waiting in every create. The runtime sizes itself from the CPUs the
// process may use unless GOMAXPROCS is set, so procs.c runs the process
// on one CPU until this initialiser, the first of the binary whose
// dependencies are ready (the spec initialises packages in import-path
// order): package initialisation then takes ~5.6 ms instead of ~9.9 on
// this loaded VM (GODEBUG=inittrace). Here every thread gets its CPUs
// back, before any Go code runs that could start a process; the command
// fails rather than leave a thread, or a container it starts, on one
// CPU. GOMAXPROCS(1) keeps the runtime from raising it again later. A
// GOMAXPROCS the caller set is kept.
//
// The main goroutine's stack is grown here too, while it is a few frames
// deep. Each time a goroutine's stack grows the runtime copies it and
// walks every frame on it through the function tables (.gopclntab): grown
// step by step in the middle of create's deep calls (the CLI, JSON
// decoding of the spec, the cgroup library), those walks touch pages all
// over the 2.9 MB table, and the kernel maps 64 KiB around each. Grown
// once here, create maps 13 fewer of those windows (31 → 18, ~0.8 MiB of
// RSS) and the container's init 6 fewer.
func init() {
	if rc := C.berth_restore_affinity(); rc != 0 {
		os.Stderr.WriteString("berth-runtime: restore the CPU affinity of the runtime's threads: " + syscall.Errno(-rc).Error() + "\n")
		os.Exit(1)
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		goruntime.GOMAXPROCS(1)
	}
	growStack(0)
}

// stackReserve is the frame that growStack makes the stack hold: the main
// goroutine then has a 64 KiB stack, more than create's and the init's
// deepest calls need.
const stackReserve = 32 << 10

// growStack makes the calling goroutine's stack hold a stackReserve frame.
// The array is read at an index the compiler cannot know, so the frame is
// kept.
//
//go:noinline
func growStack(i int) byte {
	var buf [stackReserve]byte
	buf[i] = 1
	return buf[(i+1)%len(buf)]
}
