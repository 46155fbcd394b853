package engine

import (
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
)

// Cgroup drivers (Options.CgroupDriver): how containers' cgroups are named
// and who makes them.
//
// With cgroupfs the runtime makes a directory: /berth/<id>, or
// PARENT/<id> under a sandbox's cgroup parent (kubelet's
// /kubepods/burstable/pod<uid>). With systemd the runtime asks systemd for
// a transient scope PREFIX-<id>.scope in a slice (runtime flag
// --systemd-cgroup, cgroupsPath SLICE:PREFIX:<id>): the sandbox's parent is
// a slice name (kubelet's kubepods-burstable-pod<uid>.slice), else
// system.slice; PREFIX is cri-berth for the CRI server's namespace k8s.io
// (as CRI-O's crio and containerd's cri-containerd), berth otherwise.
//
// A container keeps the driver and cgroupsPath it was created with (in its
// record): an engine opened later with the other driver still finds its
// cgroup and passes the runtime the right flag.
const (
	CgroupDriverCgroupfs = "cgroupfs"
	CgroupDriverSystemd  = "systemd"
)

// systemdRunDir exists when systemd is PID 1 (sd_booted(3)'s test).
const systemdRunDir = "/run/systemd/system"

// CheckCgroupDriver checks that driver ("" meaning cgroupfs) is known and
// works on this host: systemd needs systemd as PID 1.
func CheckCgroupDriver(driver string) error {
	switch driver {
	case "", CgroupDriverCgroupfs:
		return nil
	case CgroupDriverSystemd:
		if fi, err := os.Lstat(systemdRunDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("cgroup driver systemd: systemd is not running on this host (PID 1 is not systemd: no %s); use cgroupfs: %w", systemdRunDir, errdefs.ErrFailedPrecondition)
		}
		return nil
	}
	return fmt.Errorf("cgroup driver %q: want cgroupfs or systemd: %w", driver, errdefs.ErrInvalidArgument)
}

// CgroupDriver is the driver new containers get: "cgroupfs" or "systemd".
func (e *Engine) CgroupDriver() string {
	if e.opts.CgroupDriver == CgroupDriverSystemd {
		return CgroupDriverSystemd
	}
	return CgroupDriverCgroupfs
}

// checkCgroupParent refuses a sandbox's cgroup parent that does not fit
// the engine's driver (as CRI-O does: a kubelet whose cgroupDriver differs
// from the runtime's is misconfigured, and its pods must not start in the
// wrong place) or that could climb out of the hierarchy.
func (e *Engine) checkCgroupParent(parent string) error {
	if parent == "" {
		return nil
	}
	if strings.ContainsRune(parent, 0) || strings.ContainsRune(parent, '\n') {
		return fmt.Errorf("cgroup parent %q: holds a NUL or newline: %w", parent, errdefs.ErrInvalidArgument)
	}
	isSlice := strings.HasSuffix(path.Base(parent), ".slice")
	if e.CgroupDriver() == CgroupDriverSystemd {
		if !isSlice {
			return fmt.Errorf("cgroup parent %q: the cgroup driver is systemd, which takes a slice name such as kubepods-burstable-pod<uid>.slice (is kubelet's cgroupDriver cgroupfs?): %w", parent, errdefs.ErrInvalidArgument)
		}
		if _, err := expandSlice(path.Base(parent)); err != nil {
			return fmt.Errorf("cgroup parent %q: %v: %w", parent, err, errdefs.ErrInvalidArgument)
		}
		return nil
	}
	if isSlice {
		return fmt.Errorf("cgroup parent %q: a systemd slice, but the cgroup driver is cgroupfs (is kubelet's cgroupDriver systemd? start berthd with --cgroup-driver systemd): %w", parent, errdefs.ErrInvalidArgument)
	}
	for _, el := range strings.Split(parent, "/") {
		if el == ".." {
			return fmt.Errorf("cgroup parent %q: a .. element would climb out of the cgroup hierarchy: %w", parent, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// setCgroup fixes r's cgroup driver and cgroupsPath at create, from the
// engine's driver and r's parent (set by joinSandbox).
func (e *Engine) setCgroup(r *record) error {
	if err := e.checkCgroupParent(r.CgroupParent); err != nil {
		return err
	}
	if e.CgroupDriver() != CgroupDriverSystemd {
		r.CgroupsPath = cgroupsPathOf(r)
		return nil
	}
	slice := "system.slice"
	if r.CgroupParent != "" {
		slice = path.Base(r.CgroupParent)
	}
	prefix := "berth"
	if e.opts.Namespace == "k8s.io" {
		prefix = "cri-berth"
	}
	r.SystemdCgroup = true
	r.CgroupsPath = slice + ":" + prefix + ":" + r.ID
	return nil
}

// runtimeGlobal is the global flags of r's runtime: its state root, and
// runtimeArgs.
func (e *Engine) runtimeGlobal(r *record) []string {
	args := []string{"--root", e.runtimeRoot(r.Runtime)}
	return append(args, runtimeArgs(r)...)
}

// runtimeArgs is the global runtime flags of r beyond its state root: the
// configured ones, and --systemd-cgroup for a container of the systemd
// driver (berth-runtime, runc, crun and runsc all take it).
func runtimeArgs(r *record) []string {
	args := append([]string{}, r.RuntimeArgs...)
	if r.SystemdCgroup {
		args = append(args, "--systemd-cgroup")
	}
	return args
}

// cgroupRelOf is r's cgroup as a path below a hierarchy's root (what
// /proc/PID/cgroup shows on v2): the cgroupsPath itself with cgroupfs; the
// scope in its expanded slice with systemd
// (/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-berth-<id>.scope).
func cgroupRelOf(r *record) string {
	p := cgroupsPathOf(r)
	if !r.SystemdCgroup {
		return p
	}
	slice, rest, _ := strings.Cut(p, ":")
	prefix, name, _ := strings.Cut(rest, ":")
	dir, err := expandSlice(slice)
	if err != nil {
		// Checked at create; a record edited by hand gets no cgroup
		// files rather than someone else's.
		return "/" + prefix + "-" + name + ".scope.invalid"
	}
	return path.Join(dir, prefix+"-"+name+".scope")
}

// expandSlice turns a slice name into its cgroup path as systemd nests
// it: a-b-c.slice is /a.slice/a-b.slice/a-b-c.slice; -.slice is the root.
func expandSlice(slice string) (string, error) {
	const suffix = ".slice"
	name, ok := strings.CutSuffix(slice, suffix)
	if !ok || name == "" {
		return "", fmt.Errorf("slice %q: want NAME.slice", slice)
	}
	if name == "-" {
		return "/", nil
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '\\':
		default:
			return "", fmt.Errorf("slice %q: character %q is not allowed in a systemd unit name", slice, c)
		}
	}
	var b strings.Builder
	prefix := ""
	for _, part := range strings.Split(name, "-") {
		if part == "" {
			return "", fmt.Errorf("slice %q: want dash-separated non-empty parts", slice)
		}
		b.WriteString("/" + prefix + part + suffix)
		prefix += part + "-"
	}
	if len(slice) > 255 {
		return "", fmt.Errorf("slice %q: longer than systemd's 255 characters", slice)
	}
	return b.String(), nil
}
