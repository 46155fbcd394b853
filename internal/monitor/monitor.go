// Package monitor is Berth's per-container monitor, like Podman's conmon or
// containerd's shim, and the client the engine uses to drive it.
//
// One berth-monitor process runs per container. It creates and starts the
// container through an OCI runtime's runc-compatible command line, holds
// its stdio (pipes, or the pty master received over --console-socket),
// writes the CRI log (package logs), reaps the container's init as a child
// subreaper, records the exit code and OOM kill, carries out the restart
// policy, and serves attach clients on StateDir/attach.sock. It outlives
// the berth command that started it and exits when the container has
// exited and will not be restarted.
//
// Lifecycle, as the engine sees it:
//
//	Create  -> monitor runs `runtime create`; Status.State "created"
//	OpenAttach (optional, so a foreground run sees the first output)
//	StartCreated -> `runtime start`; Status.State "running"
//	Wait / Attach.Wait -> the exit
//
// Start is Create followed by StartCreated.
//
// Invariants: the container's output always reaches the log, whether or not
// anyone is attached; a slow or dead attach client is dropped, never waited
// for; the monitor never kills the container on its own (SIGTERM to the
// monitor is ignored); every runtime call is bounded by a timeout.
//
// This package imports only the standard library, golang.org/x/sys and the
// logs package: berth-monitor links it and its memory is paid per
// container.
package monitor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
)

// Config is what the engine tells a monitor: written as JSON to
// StateDir/monitor.json, the monitor is started as `berth-monitor FILE`.
type Config struct {
	ID          string        `json:"id"`                    // runtime container id
	Runtime     string        `json:"runtime"`               // OCI runtime binary (absolute path)
	RuntimeRoot string        `json:"runtimeRoot"`           // passed as --root to the runtime
	RuntimeArgs []string      `json:"runtimeArgs,omitempty"` // extra global flags before the command
	Bundle      string        `json:"bundle"`                // bundle dir with config.json (rootfs already mounted)
	Terminal    bool          `json:"terminal"`              // process.terminal is true: use --console-socket, hold the pty master
	Stdin       bool          `json:"stdin"`                 // keep the container's stdin open for attach (-i); otherwise /dev/null
	LogPath     string        `json:"logPath"`               // CRI-format log file
	LogMaxSize  int64         `json:"logMaxSize,omitempty"`  // rotate at this size (0: 10 MiB)
	LogMaxFiles int           `json:"logMaxFiles,omitempty"` // rotated files kept, LOG.1 .. LOG.N (0: 1)
	StateDir    string        `json:"stateDir"`              // volatile dir: attach.sock, monitor.pid, status.json
	ExitFile    string        `json:"exitFile"`              // persistent: Status written here atomically at every exit
	OOMFiles    []string      `json:"oomFiles,omitempty"`    // cgroup files with an "oom_kill N" line
	Restart     RestartPolicy `json:"restart"`
	// OOMParentFiles are the memory.events of the cgroup's parent, read
	// when OOMFiles are gone at the exit (see oom_linux.go).
	OOMParentFiles []string `json:"oomParentFiles,omitempty"`
	// ExitCommand, if set, is started (detached, in a session of its own)
	// as the monitor exits after its container ran and will not be
	// restarted: the engine's clean-up of the container's network and
	// mounts, and --rm, as Podman's conmon runs `podman container cleanup`.
	ExitCommand []string `json:"exitCommand,omitempty"`
	// Health, if set, is probed while the container runs.
	Health *HealthConfig `json:"health,omitempty"`
	// RuntimeWait learns the init's exit from `RUNTIME wait ID` instead of
	// the pid file: for a container the runtime runs inside another
	// container's sandbox (runsc's and kata's pod containers), whose pid
	// file names the shared sandbox process, which neither exits with
	// this container nor may be killed for it.
	RuntimeWait bool `json:"runtimeWait,omitempty"`
	// StartAtOnce runs `runtime start` right after `runtime create`, and
	// the launcher's report comes once the container runs (State
	// "running"): no start request, one round trip between launcher and
	// monitor less. Without it the monitor reports "created" and waits
	// for StartCreated (an attach goes in between).
	StartAtOnce bool `json:"startAtOnce,omitempty"`
}

// RestartPolicy is Docker's --restart: Name "", "no", "on-failure",
// "always" or "unless-stopped"; MaxRetries bounds on-failure when > 0.
type RestartPolicy struct {
	Name       string `json:"name"`
	MaxRetries int    `json:"maxRetries,omitempty"`
}

// States of Status.State.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StateRestarting = "restarting"
	StateExited     = "exited"
)

// Status is the monitor's view of its container, kept in
// StateDir/status.json (rewritten atomically at each change) and in
// Config.ExitFile (at each exit).
type Status struct {
	State         string    `json:"state"`
	Pid           int       `json:"pid"` // container init pid on the host (0 when not running)
	MonitorPid    int       `json:"monitorPid"`
	ExitCode      int       `json:"exitCode"` // 128+signal when killed by a signal
	OOMKilled     bool      `json:"oomKilled"`
	Error         string    `json:"error,omitempty"` // why the container could not start: the runtime's own message
	StartedAt     time.Time `json:"startedAt"`
	FinishedAt    time.Time `json:"finishedAt"`
	RestartCount  int       `json:"restartCount"`
	StoppedByUser bool      `json:"stoppedByUser,omitempty"`
}

// Files in StateDir.
const (
	configFile = "monitor.json"
	statusFile = "status.json"
	pidFile    = "monitor.pid"
	socketFile = "attach.sock"
)

// ReadStatus reads a Status file (status.json or an ExitFile).
func ReadStatus(path string) (Status, error) {
	var st Status
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return st, fmt.Errorf("read container status %s: %w", path, errdefs.ErrNotFound)
		}
		return st, fmt.Errorf("read container status: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("parse container status %s: %w", path, err)
	}
	return st, nil
}

// Validate checks that c is complete and its values usable; the error names
// the field at fault and wraps errdefs.ErrInvalidArgument.
func (c *Config) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("monitor config %s: %s: %w", field, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	if c.ID == "" || len(c.ID) > 1024 {
		return bad("id", "%q must be 1 to 1024 characters", c.ID)
	}
	for _, r := range c.ID {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') || c.ID == "." || c.ID == ".." {
			return bad("id", "%q holds a character outside [A-Za-z0-9_.-]", c.ID)
		}
	}
	for _, f := range []struct{ name, value string }{
		{"runtime", c.Runtime}, {"bundle", c.Bundle}, {"logPath", c.LogPath},
		{"stateDir", c.StateDir}, {"exitFile", c.ExitFile},
	} {
		if !filepath.IsAbs(f.value) {
			return bad(f.name, "%q is not an absolute path", f.value)
		}
	}
	if c.LogMaxSize < 0 || c.LogMaxFiles < 0 {
		return bad("logMaxSize", "%d/%d: negative", c.LogMaxSize, c.LogMaxFiles)
	}
	switch c.Restart.Name {
	case "", "no", "on-failure", "always", "unless-stopped":
	default:
		return bad("restart.name", "%q is not one of no, on-failure, always, unless-stopped", c.Restart.Name)
	}
	if c.Restart.MaxRetries < 0 {
		return bad("restart.maxRetries", "%d is negative", c.Restart.MaxRetries)
	}
	return nil
}

// writeFileAtomic replaces path with data: a reader sees the old or the new
// content, never a torn one, and after a crash the file is one of them.
func writeFileAtomic(path string, data []byte) error { return replaceFile(path, data, true) }

// writeStateFile is writeFileAtomic for the files of the state directory
// (monitor.json, monitor.pid, status.json), without the fsync: the state
// directory is volatile (under the run root, /run), and after a machine
// crash nothing in it describes a live process any more; a file lost or
// left empty by the crash reads as none (Alive and ReadStatus fail), as
// after any reboot. Readers still never see a torn file, and a monitor's
// own crash loses nothing (the page cache outlives it). Where the run
// root is on disk, each fsync cost a container start a millisecond or
// more.
func writeStateFile(path string, data []byte) error { return replaceFile(path, data, false) }

func replaceFile(path string, data []byte, durable bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// OOMFilesFor returns the Config.OOMFiles of a container whose cgroupsPath
// (cgroupfs driver, e.g. "/berth/<id>") is given, for the host's cgroup
// layout: memory.events on a unified (v2) host, memory.oom_control of the
// v1 memory hierarchy otherwise (v1 and hybrid hosts).
func OOMFilesFor(cgroupsPath string) []string {
	const root = "/sys/fs/cgroup"
	rel := filepath.Join("/", cgroupsPath)
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return []string{filepath.Join(root, rel, "memory.events")}
	}
	return []string{filepath.Join(root, "memory", rel, "memory.oom_control")}
}

// OOMParentFilesFor returns the Config.OOMParentFiles of a container whose
// cgroup (below the hierarchy's root) is given: its parent's memory.events
// on a unified (v2) host, whose counters include the descendants'; none
// on v1, whose memory.oom_control counts only its own.
func OOMParentFilesFor(cgroup string) []string {
	const root = "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
		return nil
	}
	return []string{filepath.Join(root, filepath.Dir(filepath.Join("/", cgroup)), "memory.events")}
}
