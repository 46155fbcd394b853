package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	stateFile = "state.json"
	fifoName  = "exec.fifo"
)

// persisted is what ROOT/ID/state.json holds.
type persisted struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Pid         int               `json:"pid"`
	StartTime   uint64            `json:"init_start_time"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	CgroupPaths map[string]string `json:"cgroup_paths"`
	Systemd     bool              `json:"systemd_cgroup,omitempty"`
	Rootless    bool              `json:"rootless,omitempty"`
	Spec        *specs.Spec       `json:"config"`
	// HostMountID is the mount the init made of the rootfs on itself in
	// the runtime's own mount namespace, for a config without a mount
	// namespace: delete detaches it, and every mount of the config with
	// it. Zero otherwise.
	HostMountID uint64 `json:"host_mount_id,omitempty"`
	// Hooks are run in the runtime's namespaces; the spec above keeps them.
}

// State is what `state` and `list` print: runc's containerState, field for
// field, so that containerd's and Podman's parsers accept it.
type State struct {
	Version     string               `json:"ociVersion"`
	ID          string               `json:"id"`
	Pid         int                  `json:"pid"`
	Status      specs.ContainerState `json:"status"`
	Bundle      string               `json:"bundle"`
	Rootfs      string               `json:"rootfs"`
	Created     time.Time            `json:"created"`
	Annotations map[string]string    `json:"annotations,omitempty"`
	Owner       string               `json:"owner"`
}

// Paused is the status of a container whose cgroup is frozen; it is not in
// the OCI spec but runc reports it and callers expect it.
const Paused specs.ContainerState = "paused"

// idChar says whether c may be in a container id: [\w+\-.] as runc has it.
// A loop, not a regexp: compiling one at package init costs every
// berth-runtime process, the container init included, ~0.3 ms of start-up.
func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '+' || c == '-' || c == '.'
}

// ErrNotExist is returned for a container ID that has no state.
var ErrNotExist = errors.New("container does not exist")

func checkID(id string) error {
	if id == "" {
		return errors.New("container id cannot be empty")
	}
	valid := id != "." && id != ".." && len(id) <= 1024
	for i := 0; valid && i < len(id); i++ {
		valid = idChar(id[i])
	}
	if !valid {
		return fmt.Errorf("invalid container id %q", id)
	}
	return nil
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

func (r *Runtime) load(id string) (*persisted, error) {
	var p persisted
	if err := r.readState(id, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// lifecycleSpec is the part of the config that start and delete use.
type lifecycleSpec struct {
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *struct {
		CgroupsPath string                `json:"cgroupsPath,omitempty"`
		Resources   *specs.LinuxResources `json:"resources,omitempty"`
	} `json:"linux,omitempty"`
}

// loadLifecycle is load for start and delete, which every container runs
// once: its Spec holds only the hooks, the annotations and
// linux.cgroupsPath and resources. encoding/json builds its decoder for
// each struct type it meets on first use, and for the whole runtime-spec
// that is about 100 page faults, 2 ms of a fresh process on a VM.
func (r *Runtime) loadLifecycle(id string) (*persisted, error) {
	var v struct {
		persisted
		// Shadows persisted.Spec: the shallower field takes "config".
		Spec lifecycleSpec `json:"config"`
	}
	if err := r.readState(id, &v); err != nil {
		return nil, err
	}
	p := &v.persisted
	p.Spec = &specs.Spec{Hooks: v.Spec.Hooks, Annotations: v.Spec.Annotations, Linux: &specs.Linux{}}
	if l := v.Spec.Linux; l != nil {
		p.Spec.Linux.CgroupsPath, p.Spec.Linux.Resources = l.CgroupsPath, l.Resources
	}
	return p, nil
}

func (r *Runtime) readState(id string, v any) error {
	if err := checkID(id); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(r.dir(id), stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("container %q: %w", id, ErrNotExist)
		}
		return fmt.Errorf("container %q: read state: %w", id, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("container %q: corrupt state: %w", id, err)
	}
	return nil
}

func (r *Runtime) save(p *persisted) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return writeStateFile(r.dir(p.ID), stateFile, b)
}

// writeStateFile replaces dir/name with data through a rename, so that a
// reader sees the old or the new file whole.
func writeStateFile(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+"-")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// status derives the container's status from the kernel.
func (r *Runtime) status(p *persisted) specs.ContainerState {
	if p.Pid <= 0 || !processAlive(p.Pid, p.StartTime) {
		return specs.StateStopped
	}
	if _, err := os.Lstat(filepath.Join(r.dir(p.ID), fifoName)); err == nil {
		return specs.StateCreated
	}
	if cg, err := r.cgroupOf(p); err == nil {
		if frozenNow(cg) {
			return Paused
		}
	}
	return specs.StateRunning
}

func (r *Runtime) publicState(p *persisted) *State { return stateOf(p, r.status(p)) }

// stateOf is the state `state` prints for p in status.
func stateOf(p *persisted, status specs.ContainerState) *State {
	st := &State{
		Version: specs.Version,
		ID:      p.ID,
		Status:  status,
		Bundle:  p.Bundle,
		Rootfs:  p.Rootfs,
		Created: p.Created,
		Owner:   p.Owner,
	}
	if p.Spec != nil {
		st.Annotations = p.Spec.Annotations
	}
	if st.Status != specs.StateStopped {
		st.Pid = p.Pid
	}
	return st
}

// specState is the state given to hooks and seccomp listeners.
func (p *persisted) specState(status specs.ContainerState) specs.State {
	s := specs.State{Version: specs.Version, ID: p.ID, Status: status, Bundle: p.Bundle}
	if status != specs.StateStopped {
		s.Pid = p.Pid
	}
	if p.Spec != nil {
		s.Annotations = p.Spec.Annotations
	}
	return s
}

// processAlive says whether pid is still the process that started at
// startTime (clock ticks since boot, field 22 of /proc/PID/stat) and not a
// zombie.
func processAlive(pid int, startTime uint64) bool {
	st, state, err := procStartTime(pid)
	if err != nil {
		return false
	}
	if state == 'Z' || state == 'X' {
		return false
	}
	return startTime == 0 || st == startTime
}

func procStartTime(pid int) (uint64, byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return start, fields[0][0], nil
}

// lockDir takes an exclusive lock on the container's directory for the
// duration of a state-changing command.
func lockDir(dir string) (func(), error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return func() { unix.Close(fd) }, nil
}
