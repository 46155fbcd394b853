package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/runtime/initproc"
	"github.com/berth-project/berth/internal/seccomp"
)

// SelfCreate is create's work done by the container's init itself, so that
// a plain create starts one Go program instead of two: berth-runtime's C
// constructor (fastpath's prespawn.c) started this process in the
// container's namespaces (clone: their CLONE_NEW* flags, without the
// cgroup namespace) with create's arguments, and waits for its answer. It
// validates the spec as Create does, makes the cgroup and joins it, writes
// the state, and returns the init's config and the fd of its exec fifo;
// the caller (initproc.InitSelf) then sets the container up.
//
// A config that needs the runtime beside the init (hooks, a terminal,
// idmapped mounts, namespaces other than clone) gives
// initproc.ErrFallback before anything is made, and berth-runtime creates
// it the usual way. On any other error nothing is left: what was made is
// removed here, and after the state is saved (the last step) the Go code
// of berth-runtime removes the container (SelfCreateFailed).
func (r *Runtime) SelfCreate(id string, opt CreateOptions, clone uintptr) (_ *initproc.Config, _ int, retErr error) {
	if err := checkID(id); err != nil {
		return nil, -1, err
	}
	bundle, err := filepath.Abs(opt.Bundle)
	if err != nil {
		return nil, -1, err
	}
	spec, err := oci.LoadBundle(bundle)
	if err != nil {
		return nil, -1, err
	}
	flags, ok := selfCreatable(spec, bundle, clone)
	if !ok || r.SystemdCgroup || r.Rootless {
		return nil, -1, initproc.ErrFallback
	}
	var filter <-chan compiledFilter
	if spec.Linux.Seccomp != nil {
		if err := seccomp.Validate(spec.Linux.Seccomp); err != nil {
			return nil, -1, err
		}
		filter = compileSeccompAsync(spec.Linux.Seccomp)
	}
	cg, err := cgroups.New(cgroups.Config{ID: id, CgroupsPath: spec.Linux.CgroupsPath, Resources: spec.Linux.Resources, Annotations: spec.Annotations})
	if err != nil {
		return nil, -1, err
	}
	if err := checkNotFrozen(cg); err != nil {
		return nil, -1, err
	}
	// A cgroup that is there already goes the Go way: whether it holds
	// processes cannot be read from here, in the container's pid
	// namespace, where a v1 cgroup.procs lists only the processes that
	// namespace sees (checkCgroupEmpty). One made here is empty.
	for _, p := range cg.Paths() {
		if _, err := os.Stat(p); err == nil {
			return nil, -1, initproc.ErrFallback
		}
	}
	dir, err := r.makeStateDir(id)
	if err != nil {
		return nil, -1, err
	}
	fifo := -1
	defer func() {
		if retErr == nil {
			return
		}
		if fifo >= 0 {
			unix.Close(fifo)
		}
		// Not in it (JoinSelf comes back out when it fails): nothing
		// else is in it either (checkCgroupEmpty).
		cg.Destroy()
		os.RemoveAll(dir)
	}()
	// The cgroup is made and its limits written before this process
	// joins it: a limit the host refuses fails while it can still be
	// removed. Nothing of the container runs yet.
	if err := cg.Apply(-1); err != nil {
		return nil, -1, err
	}
	if err := cg.Set(spec.Linux.Resources); err != nil {
		return nil, -1, err
	}
	if fifo, err = makeExecFifo(dir); err != nil {
		return nil, -1, err
	}
	// The pid callers know: /proc is still the caller's procfs here,
	// while getpid answers in the container's pid namespace.
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return nil, -1, fmt.Errorf("own pid: %w", err)
	}
	pid, err := strconv.Atoi(self)
	if err != nil {
		return nil, -1, fmt.Errorf("own pid: %q", self)
	}
	p := &persisted{
		ID: id, Bundle: bundle, Rootfs: spec.Root.Path, Created: time.Now().UTC(),
		Owner: ownerName(), Spec: spec, CgroupPaths: cg.Paths(), Pid: pid,
	}
	if p.StartTime, _, err = procStartTime(pid); err != nil {
		return nil, -1, err
	}
	cfg := &initproc.Config{
		ID: id, Bundle: bundle, Spec: spec,
		NoPivot: opt.NoPivot, NoNewKeyring: opt.NoNewKeyring, CgroupPaths: p.CgroupPaths,
		// No runtime beside the init to wait for: no hooks (above),
		// and the filter is compiled here.
		NoHooksWait: true, CgroupNS: flags&unix.CLONE_NEWCGROUP != 0,
		State: p.specState(specs.StateCreated),
	}
	if filter != nil {
		if cfg.Seccomp, err = (<-filter).get(); err != nil {
			return nil, -1, err
		}
	}
	if spec.Process.OOMScoreAdj != nil {
		if err := writeOOMScoreAdj(pid, *spec.Process.OOMScoreAdj); err != nil {
			return nil, -1, err
		}
	}
	if err := cg.JoinSelf(); err != nil {
		return nil, -1, err
	}
	// Last: from here on the container exists for every other command,
	// and a failure is undone by deleting it (SelfCreateFailed).
	if err := r.save(p); err != nil {
		return nil, -1, err
	}
	if err := r.writeFastPath(p); err != nil {
		return nil, -1, err
	}
	return cfg, fifo, nil
}

// selfCreatable says whether the init can create spec itself: what
// Create would do beside the init is nothing but the cgroup and the state.
// flags are the spec's namespaces (clone and perhaps the cgroup one).
func selfCreatable(spec *specs.Spec, bundle string, clone uintptr) (flags uintptr, ok bool) {
	if spec.Process.Terminal || hooksAroundPivot(spec.Hooks) || !fastPathEligible(spec.Hooks) ||
		initproc.UsesHostMountNS(spec) || seccompNotifies(spec.Linux.Seccomp) {
		return 0, false
	}
	join, flags, err := namespacePlan(spec.Linux.Namespaces)
	if err != nil || len(join) > 0 || flags&^unix.CLONE_NEWCGROUP != clone || flags&(unix.CLONE_NEWUSER|unix.CLONE_NEWTIME) != 0 {
		return 0, false
	}
	files, late, err := idmapMounts(spec, bundle)
	for _, f := range files {
		f.Close()
	}
	return flags, err == nil && len(files) == 0 && len(late) == 0
}

// seccompNotifies says whether a filter has SCMP_ACT_NOTIFY rules, whose
// listener fd the init hands to the runtime to pass on.
func seccompNotifies(sc *specs.LinuxSeccomp) bool {
	if sc == nil {
		return false
	}
	if sc.ListenerPath != "" || sc.DefaultAction == specs.ActNotify {
		return true
	}
	for _, s := range sc.Syscalls {
		if s.Action == specs.ActNotify {
			return true
		}
	}
	return false
}

// SelfCreateFailure is how a create whose init did create's work failed,
// as berth-runtime's constructor saw it (fastpath.SelfCreateFailed).
type SelfCreateFailure struct {
	Why  SelfFailure
	Line string // the stage's "E ..." line, the init's JSON reply, or the error
	Pid  int    // the init, killed and reaped; 0 when there was none
}

// SelfFailure says what SelfCreateFailure.Line is. The values are
// prespawn.c's (berth_self_kind), which fastpath hands over as they are.
type SelfFailure int

const (
	SelfStageLine SelfFailure = iota + 1 // the stage's line: it made no init
	SelfReply                            // the init's JSON reply
	SelfTimeout                          // no line: the init did not answer in time
	SelfNoAnswer                         // no line: the init exited without an answer
	SelfMessage                          // the error itself
)

// SelfCreateFailed returns the error the Go create would give for f, after
// deleting the container if the init had saved it: only if its state names
// that init, so a create that failed on an id in use leaves the container
// of that id alone.
func (r *Runtime) SelfCreateFailed(ctx context.Context, id string, f SelfCreateFailure) error {
	var err error
	switch f.Why {
	case SelfStageLine:
		_, err = initPidLine(f.Line)
	case SelfReply:
		var m initproc.Reply
		if json.Unmarshal([]byte(f.Line), &m) != nil || m.Type != initproc.ReplyError {
			err = fmt.Errorf("init sent %q, expected %q", f.Line, initproc.ReplyReady)
		} else {
			err = errors.New(m.Error)
		}
	case SelfTimeout:
		err = errors.New("container init did not answer within 2m0s (its setup is stuck: a frozen cgroup, a mount or a hook that does not return?)")
	case SelfNoAnswer:
		err = errors.New("container init exited without saying why")
	default:
		err = errors.New(f.Line)
	}
	if f.Pid > 0 && checkID(id) == nil {
		if p, lerr := r.loadLifecycle(id); lerr == nil && p.Pid == f.Pid {
			if derr := r.Delete(ctx, id, true); derr != nil {
				err = fmt.Errorf("%w (and removing the container: %v)", err, derr)
			}
		}
	}
	return err
}
