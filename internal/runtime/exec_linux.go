package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/runtime/initproc"
)

// ExecOptions are the flags of `exec` that are not part of the process.
type ExecOptions struct {
	PidFile       string
	ConsoleSocket string
	ConsoleFile   *os.File
	// PidfdSocket is a unix socket that gets a pidfd of the process once
	// it runs (runc 1.2's --pidfd-socket).
	PidfdSocket string
	PreserveFds int
	Stdio       [3]*os.File
	// IgnorePaused execs in a paused container too: the process joins
	// the frozen cgroup and runs once the container is resumed; the
	// exec waits for that within its usual bound.
	IgnorePaused bool
	// SubCgroups puts the process in existing cgroups below the
	// container's (runc's exec --cgroup): controller to path, or "" to
	// one path on every hierarchy.
	SubCgroups map[string]string
}

// BaseProcess is the container's own process config, the base that `exec`
// flags modify (as runc builds an exec'd process).
func (r *Runtime) BaseProcess(id string) (*specs.Process, error) {
	p, err := r.load(id)
	if err != nil {
		return nil, err
	}
	cp := *p.Spec.Process
	return &cp, nil
}

// Exec starts proc inside a running container and returns its host pid once
// it is about to exec. The caller waits for it (see Wait) unless detached.
func (r *Runtime) Exec(ctx context.Context, id string, proc *specs.Process, opt ExecOptions) (int, error) {
	p, err := r.load(id)
	if err != nil {
		return 0, err
	}
	switch st := r.status(p); {
	case st == specs.StateRunning, st == specs.StateCreated:
	case st == Paused && opt.IgnorePaused:
	case st == Paused:
		// runc's wording, which its callers match.
		return 0, errors.New("cannot exec in a paused container (resume it, or use --ignore-paused)")
	default:
		return 0, fmt.Errorf("cannot exec in a container that is %s", st)
	}
	if err := oci.ValidateProcess(proc, "process"); err != nil {
		return 0, err
	}
	if proc.Terminal && opt.ConsoleSocket == "" && opt.ConsoleFile == nil {
		return 0, errors.New("--tty needs a --console-socket to receive the terminal")
	}
	var join []nsJoin
	order := []specs.LinuxNamespaceType{specs.UserNamespace, specs.MountNamespace, specs.PIDNamespace,
		specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.CgroupNamespace, specs.TimeNamespace}
	for _, t := range order {
		for _, ns := range p.Spec.Linux.Namespaces {
			if ns.Type == t {
				name, _ := oci.NamespaceProcName(t)
				join = append(join, nsJoin{name: name, path: fmt.Sprintf("/proc/%d/ns/%s", p.Pid, name)})
			}
		}
	}
	cg, err := r.cgroupOf(p)
	if err != nil {
		return 0, err
	}
	joinCgroup := cg.AddProc
	if len(opt.SubCgroups) > 0 {
		paths, err := cg.SubPaths(opt.SubCgroups)
		if err != nil {
			return 0, err
		}
		joinCgroup = func(pid int) error { return cgroups.AddProcTo(paths, pid) }
	}
	var filter []byte
	if sc := p.Spec.Linux.Seccomp; sc != nil {
		if filter, err = compileSeccomp(sc); err != nil {
			return 0, err
		}
	}
	console := opt.ConsoleFile
	if proc.Terminal && console == nil {
		console, err = dialConsole(opt.ConsoleSocket)
		if err != nil {
			return 0, err
		}
		defer console.Close()
	}
	var pidfdSock *os.File
	if opt.PidfdSocket != "" {
		if pidfdSock, err = dialPidfdSocket(opt.PidfdSocket); err != nil {
			return 0, err
		}
		defer pidfdSock.Close()
	}
	var rootDir *os.File
	if initproc.UsesHostMountNS(p.Spec) {
		// Joining the namespaces leaves the process at the host's
		// root: it takes the init's, checked to be the init's still.
		if rootDir, err = os.OpenFile(fmt.Sprintf("/proc/%d/root", p.Pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return 0, fmt.Errorf("container root: %w", err)
		}
		defer rootDir.Close()
		if !processAlive(p.Pid, p.StartTime) {
			return 0, fmt.Errorf("cannot exec in a container that is %s", specs.StateStopped)
		}
	}
	c, err := spawn(spawnOptions{
		join: join, joinCgroup: joinCgroup, oomScoreAdj: proc.OOMScoreAdj, rootDir: rootDir,
		stdio: opt.Stdio, preserveFds: opt.PreserveFds, console: console,
		message: &initproc.Message{Type: initproc.MsgConfig, Config: &initproc.Config{
			Exec: true, ID: id, Bundle: p.Bundle, Spec: p.Spec, Process: proc,
			State: p.specState(specs.StateRunning), Seccomp: filter,
		}},
	})
	if err != nil {
		return 0, err
	}
	defer c.sock.Close()
	c.deadline(initStepTimeout)
	if err := r.waitReady(ctx, c, p); err != nil {
		// Reap it here: a zombie handed on to the caller would keep the
		// container's pid namespace from ever finishing its exit.
		unix.Kill(c.pid, unix.SIGKILL)
		reapBounded(c.pid, reapTimeout)
		return 0, err
	}
	// The caller will not know the process if either fails: it must not
	// run. Reaped within a bound: in a paused container (--ignore-paused)
	// it cannot die before the thaw.
	if pidfdSock != nil {
		if err := sendPidfd(pidfdSock, c.pid, "setns"); err != nil {
			unix.Kill(c.pid, unix.SIGKILL)
			reapBounded(c.pid, reapTimeout)
			return 0, err
		}
	}
	if opt.PidFile != "" {
		if err := writePidFile(opt.PidFile, c.pid); err != nil {
			unix.Kill(c.pid, unix.SIGKILL)
			reapBounded(c.pid, reapTimeout)
			return 0, err
		}
	}
	return c.pid, nil
}
