package oci

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Real-time signals as the C library numbers them (glibc keeps 32 and 33
// for itself), as runc and Docker name them.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// ParseSignal accepts a signal as people and runtimes write it: "KILL",
// "SIGKILL", "kill", "9", "SIGRTMIN+3", "RTMAX-1". "0" is signal 0, which
// checks a process exists without signalling it; callers that need a real
// signal refuse it.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > sigRTMax {
			return 0, fmt.Errorf("invalid signal %q: numbers are 0 to %d", s, sigRTMax)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	for _, rt := range []struct {
		name string
		base int
	}{{"SIGRTMIN", sigRTMin}, {"SIGRTMAX", sigRTMax}} {
		rest, ok := strings.CutPrefix(name, rt.name)
		if !ok {
			continue
		}
		n := rt.base
		if rest != "" {
			off, err := strconv.Atoi(rest)
			if err != nil || (rest[0] != '+' && rest[0] != '-') {
				break
			}
			n += off
		}
		if n < sigRTMin || n > sigRTMax {
			return 0, fmt.Errorf("invalid signal %q: real-time signals are SIGRTMIN to SIGRTMAX", s)
		}
		return unix.Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
