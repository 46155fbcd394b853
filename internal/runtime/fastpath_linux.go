package runtime

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/runtime/initproc"
)

// fastPathFile, in a container's state directory, lets `start`, `delete`,
// `kill` and `state` do their work in C before the Go runtime starts (fastpath/fastpath.c):
// a Go process costs ~10 ms of start-up on a VM, most of each command. It
// holds what those two commands need, in a line format that C reads
// without a JSON parser. It is written only for containers whose start and
// delete are the plain case (no poststart or poststop hooks, cgroupfs
// driver, not rootless); the C side checks everything else it needs and
// leaves any other case to the Go code, which is unchanged.
const fastPathFile = "fastpath"

// fastPathMagic is the first line; the digit is the format version, which
// the C reader must know.
const fastPathMagic = "berth-fastpath 1"

// writeFastPath records p for the C fast path, or does nothing where the
// Go path must run. The file is complete or absent: it is renamed into
// place and ends with an "end" line the reader requires.
func (r *Runtime) writeFastPath(p *persisted) error {
	if r.SystemdCgroup || r.Rootless || p.Pid <= 0 || p.StartTime == 0 {
		return nil
	}
	if !fastPathEligible(p.Spec.Hooks) {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\npid %d\nstart %d\n", fastPathMagic, p.Pid, p.StartTime)
	var cgPath string
	if p.Spec.Linux != nil {
		cgPath = p.Spec.Linux.CgroupsPath
	}
	underDefault := cgroups.UnderDefault(cgPath, p.ID, false)
	for _, path := range p.CgroupPaths {
		// Only plain cgroupfs directories: the C side removes them.
		if !strings.HasPrefix(path, "/sys/fs/cgroup/") || strings.ContainsAny(path, "\n") ||
			filepath.Clean(path) != path || strings.Contains(path, "..") {
			return nil
		}
		fmt.Fprintf(&b, "cgroup %s\n", path)
		if underDefault {
			// cgroups.Manager.Destroy removes the shared default
			// parent with the last container in it.
			fmt.Fprintf(&b, "parent %s\n", filepath.Dir(path))
		}
	}
	var hooks []specs.Hook
	if p.Spec.Hooks != nil {
		hooks = p.Spec.Hooks.StartContainer
	}
	fmt.Fprintf(&b, "bound %d\n", int((initStepTimeout+initproc.HooksBound(hooks))/time.Second))
	if ownPidNamespace(p.Spec) {
		b.WriteString("pidns own\n")
	}
	b.WriteString("end\n")
	// The state template first: the C side reads it only for a container
	// whose fastpath file exists.
	tmpl, err := MarshalState(stateOf(p, stateTemplateStatus))
	if err != nil {
		return err
	}
	if err := writeStateFile(r.dir(p.ID), fastPathStateFile, tmpl); err != nil {
		return err
	}
	return writeStateFile(r.dir(p.ID), fastPathFile, []byte(b.String()))
}

// fastPathStateFile holds what `state` prints for the container, as
// MarshalState writes it, with stateTemplateStatus for its status: the C
// side puts in the status it finds (and pid 0 once stopped), so that
// `state`, which CRI-O, Podman and Docker call again and again, is
// answered without the Go runtime and exactly as the Go path would.
const fastPathStateFile = "fastpath-state"

// stateTemplateStatus marks the status in fastPathStateFile; JSON writes
// it as "\u0001", which no status is.
const stateTemplateStatus specs.ContainerState = "\x01"

// MarshalState is how `state` prints a state: indented JSON and a newline.
func MarshalState(st *State) ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// fastPathEligible says whether hooks leave start and delete plain: the C
// side runs no hooks.
func fastPathEligible(h *specs.Hooks) bool {
	return h == nil || (len(h.Poststart) == 0 && len(h.Poststop) == 0)
}
