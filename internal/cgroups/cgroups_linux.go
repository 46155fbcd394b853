// Package cgroups gives each container its own cgroup on whatever hierarchy
// layout the host has — cgroup v1, v2 unified, or hybrid (v1 controllers with
// a v2 hierarchy beside them) — and converts runtime-spec resources into
// limits. The kernel-facing work is done by github.com/opencontainers/cgroups
// (runc's own cgroup code); this package is the runtime's adapter to it.
package cgroups

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/opencontainers/cgroups"
	// Registers the device-rule writers (v1 allow lists, v2 eBPF programs)
	// with the cgroup managers; without it they refuse device rules.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/cgroups/systemd"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultParent is the cgroup parent Berth's engine gives its containers
// (/berth/<id>), shared by them and removed with the last of them.
const DefaultParent = "/berth"

// UnderDefault reports whether a container's cgroup is DefaultParent/ID,
// the engine's shared parent, which is removed with the last container in
// it.
func UnderDefault(cgroupsPath, id string, systemd bool) bool {
	if systemd || cgroupsPath == "" {
		return false
	}
	return filepath.Clean("/"+cgroupsPath) == filepath.Join(DefaultParent, id)
}

// Config says which cgroup a container gets and what limits it has.
type Config struct {
	ID          string
	CgroupsPath string // from the spec; empty means /<ID>
	Systemd     bool   // cgroupsPath is slice:prefix:name, driven through systemd
	Rootless    bool
	Resources   *specs.LinuxResources
	// Annotations of the spec: with Systemd, org.systemd.property.NAME
	// sets property NAME of the container's scope (as runc does).
	Annotations map[string]string
}

// Manager is one container's cgroup.
type Manager struct {
	m cgroups.Manager
	// underDefault: the cgroup is DefaultParent/ID, whose shared parent
	// is removed with the last container in it.
	underDefault bool
	rootless     bool
	// scope is set for the systemd driver (see systemd_linux.go).
	scope *systemdScope
}

// New prepares the manager of a container's cgroup; nothing is created on
// the host until Apply.
func New(cfg Config) (*Manager, error) {
	cg, err := cgroupConfig(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Systemd && !systemd.IsRunningSystemd() {
		return nil, errors.New("--systemd-cgroup: systemd is not running on this host (PID 1 is not systemd); use the cgroupfs driver")
	}
	m, err := manager.New(cg)
	if err != nil {
		return nil, fmt.Errorf("cgroup manager: %w", fieldError(err))
	}
	mgr := &Manager{m: m, underDefault: UnderDefault(cfg.CgroupsPath, cfg.ID, cfg.Systemd), rootless: cfg.Rootless}
	if cfg.Systemd {
		mgr.scope = &systemdScope{}
	}
	return mgr, nil
}

// Load returns the manager of an existing container's cgroup from the
// paths its state recorded.
func Load(cfg Config, paths map[string]string) (*Manager, error) {
	cg, err := cgroupConfig(cfg)
	if err != nil {
		return nil, err
	}
	m, err := manager.NewWithPaths(cg, paths)
	if err != nil {
		return nil, fmt.Errorf("cgroup manager: %w", err)
	}
	mgr := &Manager{m: m, underDefault: UnderDefault(cfg.CgroupsPath, cfg.ID, cfg.Systemd), rootless: cfg.Rootless}
	if cfg.Systemd {
		mgr.scope = &systemdScope{started: true}
	}
	return mgr, nil
}

func cgroupConfig(cfg Config) (*cgroups.Cgroup, error) {
	res, err := ConvertResources(cfg.Resources)
	if err != nil {
		return nil, err
	}
	cg := &cgroups.Cgroup{Resources: res, Rootless: cfg.Rootless, Systemd: cfg.Systemd}
	path := cfg.CgroupsPath
	if cfg.Systemd {
		cg.Parent, cg.ScopePrefix, cg.Name, err = parseSystemdPath(path, cfg.ID)
		if err != nil {
			return nil, err
		}
		cg.SystemdProps, err = systemdProperties(cfg.Annotations)
		return cg, err
	}
	if path == "" && cfg.Rootless {
		// The library forgives a rootless container the cgroups it may
		// not create only when no explicit path was asked for.
		cg.Parent, cg.Name = "/", cfg.ID
		return cg, nil
	}
	if path == "" {
		// A container whose config has no cgroupsPath gets /<id> on every
		// hierarchy, as with runc: one directory per hierarchy and no
		// shared parent to make and remove with each container (in a v1
		// cpuset hierarchy a new parent also copies its own parent's cpus
		// and mems), named after the container as callers and runc's tests
		// look for it. As with runc, an id that names one of the host's
		// own cgroups meets that cgroup: create refuses it when it holds
		// processes or is frozen.
		path = "/" + cfg.ID
	}
	if strings.Contains(path, ":") && !filepath.IsAbs(path) {
		return nil, fmt.Errorf("linux.cgroupsPath: %q looks like a systemd path; use --systemd-cgroup", path)
	}
	if filepath.Clean("/"+path) != "/"+strings.TrimPrefix(path, "/") || strings.Contains(path, "..") {
		return nil, fmt.Errorf("linux.cgroupsPath: %q must not contain '..'", path)
	}
	cg.Path = path
	return cg, nil
}

// Apply creates the cgroup and moves pid into it (-1 only creates it).
func (m *Manager) Apply(pid int) error {
	if m.scope != nil {
		return m.applyScope(pid)
	}
	var err error
	// Another container's Destroy may remove the shared default parent
	// between our mkdir of it and of our own directory (ENOENT), while
	// cpuset copies the parent's cpus and mems into it (a removed
	// cgroup's files fail with ENODEV), or between MkdirAll's mkdir of it
	// (EEXIST: another create made it) and its check that it is a
	// directory: try again.
	for i := 0; i < 5; i++ {
		err = m.m.Apply(pid)
		if err == nil || !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrExist) && !errors.Is(err, syscall.ENODEV) {
			break
		}
	}
	if errors.Is(err, cgroups.ErrRootless) {
		// Rootless, without permission: the container runs in its
		// caller's cgroup, and a limit fails in Set with a clear error.
		return nil
	}
	if err != nil {
		// cpuset's files are written at creation, so a bad cpus or
		// mems fails here.
		return fmt.Errorf("create cgroup: %w", fieldError(err))
	}
	return nil
}

// Set writes the limits. It is called before the container process runs so
// that a limit the host cannot apply fails the create.
func (m *Manager) Set(r *specs.LinuxResources) error {
	res, err := ConvertResources(r)
	if err != nil {
		return err
	}
	if m.scope != nil && !m.scope.started {
		m.scope.pending = res
		return nil
	}
	var hugetlb []*cgroups.HugepageLimit
	if hybridHugetlb() {
		hugetlb, res.HugetlbLimit = res.HugetlbLimit, nil
	}
	if err := m.m.Set(res); err != nil {
		return fmt.Errorf("set cgroup limits: %w", fieldError(err))
	}
	if err := setHybridHugetlb(m.m.Path(""), hugetlb); err != nil {
		return fmt.Errorf("set cgroup limits: %w", err)
	}
	return nil
}

// Paths are the cgroup directories, one per controller on v1 ("" on v2).
func (m *Manager) Paths() map[string]string { return m.m.GetPaths() }

// Pids lists every process in the container's cgroup tree.
func (m *Manager) Pids() ([]int, error) { return m.m.GetAllPids() }

// Exists says whether the cgroup is still there.
func (m *Manager) Exists() bool { return m.m.Exists() }

// Freeze pauses or resumes every process of the container.
func (m *Manager) Freeze(frozen bool) error {
	state := cgroups.Thawed
	if frozen {
		state = cgroups.Frozen
	}
	return m.m.Freeze(state)
}

// Frozen says whether the container is paused.
func (m *Manager) Frozen() (bool, error) {
	s, err := m.m.GetFreezerState()
	if err != nil {
		return false, err
	}
	return s == cgroups.Frozen, nil
}

// Stats returns the cgroup statistics.
func (m *Manager) Stats() (*cgroups.Stats, error) { return m.m.GetStats() }

// OOMKillCount reports how many processes the kernel OOM-killed here.
func (m *Manager) OOMKillCount() (uint64, error) { return m.m.OOMKillCount() }

// Destroy removes the cgroup on every hierarchy. Processes left inside are
// the caller's to kill first.
func (m *Manager) Destroy() error {
	// A copy: the library's Destroy empties the map GetPaths returns.
	paths := maps.Clone(m.m.GetPaths())
	if err := m.m.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup: %w", err)
	}
	if m.underDefault {
		for _, p := range paths {
			// Fails while other containers are in it; that is fine.
			if parent := filepath.Dir(p); filepath.Base(parent) == filepath.Base(DefaultParent) {
				os.Remove(parent)
			}
		}
	}
	return nil
}

// Path is the directory of one v1 controller, or the v2 cgroup for "".
func (m *Manager) Path(controller string) string { return m.m.Path(controller) }

// IsV2 says whether the host runs the unified hierarchy only.
func IsV2() bool { return cgroups.IsCgroup2UnifiedMode() }

// IsHybrid says whether the host has v1 controllers with a v2 hierarchy
// mounted beside them (as this project's CI machine does).
func IsHybrid() bool { return cgroups.IsCgroup2HybridMode() }

// HostHasController says whether the host's cgroups offer a controller.
func HostHasController(name string) bool {
	if IsV2() {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		return err == nil && contains(strings.Fields(string(b)), name)
	}
	_, err := cgroups.FindCgroupMountpoint("", name)
	return err == nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// AddProc moves pid into the existing cgroup (for exec'd processes).
func (m *Manager) AddProc(pid int) error {
	err := m.m.AddPid("", pid)
	if m.rootless && (errors.Is(err, cgroups.ErrRootless) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission)) {
		// The container's cgroups were not made (see Apply): the
		// process stays in its caller's, as the init did.
		return nil
	}
	if err != nil {
		return fmt.Errorf("join container cgroup: %w", err)
	}
	return nil
}

// SubPaths resolves `exec --cgroup` requests against the container's
// cgroup: sub maps a controller to a path below the container's cgroup on
// that controller's hierarchy, or "" to one path below it on every
// hierarchy (the only form on cgroup v2). A path that leaves the
// container's cgroup or a controller the container has no cgroup for is
// refused, with runc's wording. The result is ready for AddProcTo.
func (m *Manager) SubPaths(sub map[string]string) (map[string]string, error) {
	base := m.m.GetPaths()
	out := maps.Clone(base)
	under := func(dir, add string) (string, error) {
		p := filepath.Join(dir, add)
		if p != dir && !strings.HasPrefix(p, dir+"/") {
			return "", fmt.Errorf("%s is not a sub cgroup path", add)
		}
		return p, nil
	}
	if add, ok := sub[""]; ok {
		for k, dir := range base {
			p, err := under(dir, add)
			if err != nil {
				return nil, err
			}
			out[k] = p
		}
		return out, nil
	}
	for ctrl, add := range sub {
		dir, ok := base[ctrl]
		if !ok {
			return nil, fmt.Errorf("unknown controller %s in --cgroup", ctrl)
		}
		p, err := under(dir, add)
		if err != nil {
			return nil, err
		}
		out[ctrl] = p
	}
	return out, nil
}

// AddProcTo moves pid into the existing cgroup directories of paths (from
// SubPaths); a missing one fails, as runc's exec --cgroup does.
func AddProcTo(paths map[string]string, pid int) error {
	for _, dir := range paths {
		if err := cgroups.WriteCgroupProc(dir, pid); err != nil {
			return fmt.Errorf("adding pid %d to cgroups: %w", pid, err)
		}
	}
	return nil
}

// JoinSelf moves the calling process into the cgroup made by Apply(-1), on
// every hierarchy; if one refuses it, the process goes back to the cgroups
// it was in, so that Destroy can remove them. For a container's init that
// makes its own cgroup (runtime.SelfCreate), which may be in a pid
// namespace of its own: it writes 0, which means the writer there too.
func (m *Manager) JoinSelf() error {
	// Where to come back to is read now, and resolved to directories
	// only if it is needed (that reads mountinfo).
	own, err := cgroups.ParseCgroupFile("/proc/self/cgroup")
	if err != nil {
		return fmt.Errorf("join container cgroup: %w", err)
	}
	paths := m.m.GetPaths()
	if err := AddProcTo(paths, 0); err != nil {
		// Back into all of them: where it already is, a no-op.
		for key := range paths {
			if back, ok := ownDir(key, own); ok {
				cgroups.WriteCgroupProc(back, 0)
			}
		}
		return fmt.Errorf("join container cgroup: %w", err)
	}
	return nil
}

// ownDir is the directory of the cgroup that own (/proc/self/cgroup as
// ParseCgroupFile reads it) names for a controller, "" for the v2 one.
func ownDir(key string, own map[string]string) (string, bool) {
	rel, ok := own[key]
	if !ok {
		return "", false
	}
	switch {
	case key == "" && IsV2():
		return filepath.Join("/sys/fs/cgroup", rel), true
	case key == "":
		return filepath.Join("/sys/fs/cgroup/unified", rel), true
	}
	mnt, root, err := cgroups.FindCgroupMountpointAndRoot("", key)
	if err != nil {
		return "", false
	}
	if root != "/" {
		rel = strings.TrimPrefix(rel, root)
	}
	return filepath.Join(mnt, rel), true
}
