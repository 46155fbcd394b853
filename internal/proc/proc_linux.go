// Package proc reads what /proc says of a process, for the places that
// must tell a process they started (a pause process, a DNS server) from
// one that has ended or has taken its number since.
package proc

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"
)

// Running says whether pid exists and has not exited: a zombie, which
// waits for its parent to reap it, has.
func Running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may itself
	// contain ") ".
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	return stat[i+2] != 'Z' && stat[i+2] != 'X'
}

// argsWait bounds how long Args waits for a starting process's command
// line.
const argsWait = time.Second

// Args is pid's command line, or nil once it has ended (a zombie has
// none). Right after os.StartProcess returns, the command line can still
// read empty: StartProcess returns once the exec has closed the child's
// close-on-exec pipe, and the kernel sets up the new image's arguments
// after that. Args waits that out while the process runs, for at most a
// second; a caller that took the empty line for a gone process would leave
// the one it just started running.
func Args(pid int) []string {
	deadline := time.Now().Add(argsWait)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return nil
		}
		if len(b) > 0 {
			return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		}
		if !Running(pid) || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}
