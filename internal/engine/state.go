package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/lockfile"
	"github.com/berth-project/berth/internal/monitor"
	"github.com/berth-project/berth/internal/proc"
)

// runtimeTimeout bounds one call of the OCI runtime.
const runtimeTimeout = 30 * time.Second

// liveState computes r's state from what is really there: the monitor (is
// it alive, what does it say), the container's process, and the exit
// record the monitor leaves in the persistent directory. It never trusts a
// file alone: after a reboot (the run directory is gone) or a kill -9 of
// the monitor, it says what is true.
func (e *Engine) liveState(r *record) State {
	st, _ := e.live(r)
	return st
}

// live is liveState with how often the monitor restarted the container,
// read from the same files.
func (e *Engine) live(r *record) (State, int) {
	st := r.State
	st.Running, st.Restarting, st.Paused, st.Pid, st.MonitorPid = false, false, false, 0, 0
	rundir := e.runDir(r.ID)
	status, statusErr := monitor.ReadStatus(filepath.Join(rundir, "status.json"))
	exit, exitErr := monitor.ReadStatus(e.exitFilePath(r.ID))
	monPid, alive := monitor.Alive(rundir)
	switch {
	case alive && statusErr == nil && status.State == monitor.StateRunning:
		st.Status, st.Running, st.Pid, st.MonitorPid = "running", true, status.Pid, monPid
		st.StartedAt = status.StartedAt
		if h, err := monitor.ReadHealth(rundir); err == nil {
			st.Health = &h
		}
	case alive && statusErr == nil && status.State == monitor.StateRestarting:
		st.Status, st.Restarting, st.MonitorPid = "restarting", true, monPid
		st.ExitCode, st.OOMKilled, st.FinishedAt = status.ExitCode, status.OOMKilled, status.FinishedAt
	case alive:
		// Created by the runtime, not started yet (a start in progress),
		// or exited and cleaning up.
		st.Status, st.MonitorPid = "created", monPid
		if statusErr == nil && status.State == monitor.StateExited {
			st.Status, st.ExitCode, st.OOMKilled, st.FinishedAt = "exited", status.ExitCode, status.OOMKilled, status.FinishedAt
		}
	case statusErr == nil && status.Pid > 0 && status.State == monitor.StateRunning && processOf(status.Pid, r.ID):
		// The monitor is gone (killed) but the container runs on.
		st.Status, st.Running, st.Pid = "running", true, status.Pid
		st.StartedAt = status.StartedAt
	case exitErr == nil && (st.StartedAt.IsZero() || !exit.FinishedAt.Before(st.StartedAt)):
		st.Status = "exited"
		st.ExitCode, st.OOMKilled, st.FinishedAt, st.Error = exit.ExitCode, exit.OOMKilled, exit.FinishedAt, exit.Error
		if !exit.StartedAt.IsZero() {
			st.StartedAt = exit.StartedAt
		}
	case !st.StartedAt.IsZero():
		// Started once, and no monitor, no process and no exit record
		// remain: the machine rebooted, or the monitor was killed and the
		// container died with no one to record its end.
		st.Status = "exited"
		if st.ExitCode == 0 {
			st.ExitCode = 255
		}
		if statusErr == nil && status.State == monitor.StateRunning {
			st.Error = "the container's monitor died; its exit code is unknown"
		}
	default:
		st.Status = "created"
	}
	restarts := 0
	if statusErr == nil {
		restarts = status.RestartCount
	} else if exitErr == nil {
		restarts = exit.RestartCount
	}
	return st, restarts
}

// processOf reports whether pid is a process of container id: it is alive
// and in the container's cgroup, so a reused pid is not taken for it.
func processOf(pid int, id string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	if !bytes.Contains(b, []byte(id)) {
		return false
	}
	// A zombie is dead for our purposes.
	return proc.Running(pid)
}

// inspectRecord is r as the API shows it, with its live state.
func (e *Engine) inspectRecord(r *record) Container {
	c := r.Container
	c.State, c.RestartCount = e.live(r)
	if c.Mounts == nil {
		c.Mounts = []MountPoint{}
	}
	if !c.State.Running && !c.State.Restarting {
		// Addresses belong to a running container only.
		c.NetworkSettings.IPAddress, c.NetworkSettings.Gateway = "", ""
		nets := map[string]*EndpointSettings{}
		for _, n := range r.NetworkNames {
			nets[n] = &EndpointSettings{Aliases: r.Aliases[n], NetworkID: n}
		}
		c.NetworkSettings.Networks = nets
		c.NetworkSettings.Ports = map[string][]PortBinding{}
		c.NetworkSettings.SandboxKey = ""
	}
	return c
}

// lockContainer serialises start, stop and remove of one container across
// processes; the lock file lives in the persistent directory.
func (e *Engine) lockContainer(ctx context.Context, id string) (func(), error) {
	dir := e.containerDir(id)
	if _, err := os.Stat(dir); err != nil {
		// Removed meanwhile: do not make its directory again.
		return nil, fmt.Errorf("no such container: %s: %w", id, errdefs.ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	l, err := lockfile.Acquire(ctx, filepath.Join(dir, "lock"), true, nil)
	if err != nil {
		return nil, fmt.Errorf("container %s is busy (another berth command works on it): %w", id[:12], err)
	}
	return func() { l.Release() }, nil
}

// runtimeCmd runs the container's OCI runtime with args and returns its
// stdout; the error carries its stderr.
func (e *Engine) runtimeCmd(ctx context.Context, r *record, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, runtimeTimeout)
	defer cancel()
	full := append(e.runtimeGlobal(r), args...)
	cmd := exec.CommandContext(ctx, r.Runtime, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %s", filepath.Base(r.Runtime), args[0], msg)
	}
	return stdout.Bytes(), nil
}

// warn reports a failure that does not stop the operation (cleanup).
func (e *Engine) warn(format string, a ...any) {
	if e.opts.Warn != nil {
		e.opts.Warn(fmt.Sprintf(format, a...))
	}
}

// selfArgs is the berth command, with the global flags that find this
// engine's state, for the helpers the monitor and network run.
func (e *Engine) selfArgs() []string {
	return append(append([]string{}, e.opts.Self...),
		"--root", e.opts.Root, "--runroot", e.opts.RunRoot, "--namespace", e.opts.Namespace)
}
