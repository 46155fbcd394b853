package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/cgroups"
)

// Every wait of the runtime ends within a bound, so that a broken or hostile
// party (a frozen cgroup, a hook that never exits, an init stuck in a mount)
// fails the command with an error instead of hanging its caller: containerd's
// shim or kubelet's pod worker would hang with it.
const (
	// initStepTimeout bounds each step of the init's setup that runs no
	// hooks: namespace setup, the mounts, the final setup before ready.
	initStepTimeout = time.Minute
	// reapTimeout bounds waiting for a killed setup process to exit.
	reapTimeout = 5 * time.Second
)

// waitCmd waits for cmd at most d; past that it kills it and gives up
// waiting (a process in a frozen cgroup cannot die until thawed).
func waitCmd(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		return fmt.Errorf("process %d did not exit within %s", cmd.Process.Pid, d)
	}
}

// errFrozenCgroup is runc's wording, which callers and runc's tests match.
const errFrozenCgroup = "container's cgroup unexpectedly frozen"

// checkNotFrozen refuses a cgroup that is frozen before the container is
// in it, or would be at creation because an ancestor is: the init would
// freeze in the middle of its setup (runc's cgroups.bats "should refuse
// pre-existing frozen cgroup"). It reads the files once, without the
// cgroup library's waits for a freeze to settle.
func checkNotFrozen(cg *cgroups.Manager) error {
	for controller, p := range cg.Paths() {
		// Only the v1 freezer hierarchy and the v2 one ("") have a
		// freezer: reading every other controller's directories and
		// their ancestors finds nothing and costs ~40 failed opens in
		// every create on a v1 host.
		if controller != "freezer" && controller != "" {
			continue
		}
		for dir := filepath.Clean(p); strings.HasPrefix(dir, "/sys/fs/cgroup/"); dir = filepath.Dir(dir) {
			if frozen, how := dirFrozen(dir); frozen {
				return fmt.Errorf("%s: %s is frozen (%s; left paused by an earlier user?): thaw it or use another linux.cgroupsPath", errFrozenCgroup, dir, how)
			}
		}
	}
	return nil
}

// checkCgroupEmpty refuses a cgroup that already holds processes, as runc
// does ("container's cgroup is not empty"): two containers in one cgroup
// would share limits, and delete or kill --all of one would reach the
// other's processes.
func checkCgroupEmpty(cg *cgroups.Manager) error {
	for _, p := range cg.Paths() {
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			continue // no such cgroup yet
		}
		if n := len(strings.Fields(string(b))); n > 0 {
			return fmt.Errorf("container's cgroup is not empty: %s has %d processes; use another linux.cgroupsPath", p, n)
		}
	}
	return nil
}

// dirFrozen reads the freezer of one cgroup directory, v1 or v2; a missing
// file (no freezer there, or no such cgroup yet) is not frozen.
func dirFrozen(dir string) (bool, string) {
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup.freeze")); err == nil {
		if bytes.Equal(bytes.TrimSpace(b), []byte("1")) {
			return true, "cgroup.freeze is 1"
		}
		return false, ""
	}
	if b, err := os.ReadFile(filepath.Join(dir, "freezer.state")); err == nil {
		if s := string(bytes.TrimSpace(b)); s != "THAWED" {
			return true, "freezer.state is " + s
		}
	}
	return false, ""
}

// cgroupPathsFrozen says one of a container's cgroups is frozen or
// freezing, by its own request or an ancestor's (v1): its init cannot run.
func cgroupPathsFrozen(paths map[string]string) bool {
	for _, p := range paths {
		if frozen, _ := dirFrozen(p); frozen {
			return true
		}
	}
	return false
}

// frozenNow says whether a container's cgroup is frozen or freezing by
// its own request (paused), reading each freezer once: the library's v1
// reader loops for as long as the state is FREEZING, which a task that
// cannot freeze keeps for good, and its v2 reader waits up to 10 s for the
// freeze to settle.
func frozenNow(cg *cgroups.Manager) bool {
	if p := cg.Path("freezer"); p != "" {
		b, err := os.ReadFile(filepath.Join(p, "freezer.state"))
		switch s := string(bytes.TrimSpace(b)); {
		case err != nil || s == "THAWED":
		case s == "FROZEN":
			// Frozen through an ancestor only is not paused.
			self, err := os.ReadFile(filepath.Join(p, "freezer.self_freezing"))
			if err != nil || !bytes.Equal(bytes.TrimSpace(self), []byte("0")) {
				return true
			}
		default: // FREEZING: a pause under way
			return true
		}
	}
	if p := cg.Path(""); p != "" {
		b, err := os.ReadFile(filepath.Join(p, "cgroup.freeze"))
		return err == nil && bytes.Equal(bytes.TrimSpace(b), []byte("1"))
	}
	return false
}

// isTimeout says err is a deadline passing.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
