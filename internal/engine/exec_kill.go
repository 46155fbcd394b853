package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// killExec is the Cancel of a foreground exec with KillOnCancel (its
// context ended: the CRI's ExecSync timeout). Killing the runtime alone, as
// exec.CommandContext does, would orphan the process it started in the
// container, which would go on running and holding the output pipes, so
// that Exec never returned. Instead the process itself is killed: the
// runtime, its parent, reaps it and exits with its status. The pid comes
// from the runtime's --pid-file and is trusted only while the runtime is
// still its parent (no reused pid is killed). Before the runtime has
// written it, the process is not running the command yet: the runtime
// is killed, and its half-made child ends with it (its set-up pipe
// closes).
func killExec(cmd *exec.Cmd, pidFile string) error {
	if b, err := os.ReadFile(pidFile); err == nil {
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 0 && parentPid(pid) == cmd.Process.Pid {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
				return fmt.Errorf("kill the exec'd process %d: %w", pid, err)
			}
			return nil
		}
	}
	return cmd.Process.Kill()
}

// parentPid is pid's parent from /proc/PID/stat (0 if it is gone).
func parentPid(pid int) int {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	return statPPid(stat)
}

// statPPid is the parent pid in a /proc/PID/stat line (0 if malformed).
func statPPid(stat []byte) int {
	// The command name may hold spaces and parentheses: the fields
	// after it start behind the last ')': state, then ppid.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// killInSandbox kills an exec'd process inside a runtime sandbox by the
// pid the runtime wrote (runsc's exec --internal-pid-file and kill --pid):
// killing `runsc exec` alone would leave the process running in the
// sandbox.
func (e *Engine) killInSandbox(r *record, pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return // not started yet: killing the runtime ends it
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), runtimeTimeout)
	defer cancel()
	if _, err := e.runtimeCmd(ctx, r, "kill", "--pid", strconv.Itoa(pid), r.ID, "KILL"); err != nil {
		e.warn("exec in %s: kill pid %d in the sandbox: %v", r.ID[:12], pid, err)
	}
}
