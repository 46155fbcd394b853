package oci

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Validate checks the parts of a spec that the Linux runtime depends on. The
// error names the field at fault, in the spec's JSON names.
func Validate(spec *specs.Spec) error {
	if spec.Version == "" {
		return errors.New("ociVersion: missing")
	}
	if !strings.HasPrefix(spec.Version, "1.") {
		return fmt.Errorf("ociVersion: %q is not a 1.x version", spec.Version)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return errors.New("root.path: missing")
	}
	fi, err := os.Stat(spec.Root.Path)
	if err != nil {
		return fmt.Errorf("root.path: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("root.path: %s is not a directory", spec.Root.Path)
	}
	if spec.Process == nil {
		return errors.New("process: missing")
	}
	if spec.Linux == nil {
		return errors.New("linux: missing (berth-runtime runs Linux containers only)")
	}
	if err := ValidateProcess(spec.Process, "process"); err != nil {
		return err
	}
	if err := validateNamespaces(spec); err != nil {
		return err
	}
	// /proc/filesystems is read once, for the first mount that needs it.
	var known map[string]bool
	kernelFS := func() (map[string]bool, error) {
		if known != nil {
			return known, nil
		}
		var err error
		known, err = kernelFilesystems()
		return known, err
	}
	for i, m := range spec.Mounts {
		if err := validateMount(m, fmt.Sprintf("mounts[%d]", i), kernelFS); err != nil {
			return err
		}
		// The spec: without mappings of its own an idmapped mount MAY
		// take the container's user namespace's, and without a user
		// namespace it MUST be an error.
		if ImpliedIDMap(m) && !hasNamespace(spec, specs.UserNamespace) {
			return fmt.Errorf("mounts[%d].options: idmap without uidMappings and gidMappings takes the mappings of the container's user namespace, and linux.namespaces has no user namespace", i)
		}
	}
	for i, d := range spec.Linux.Devices {
		field := fmt.Sprintf("linux.devices[%d]", i)
		if !filepath.IsAbs(d.Path) {
			return fmt.Errorf("%s.path: %q is not absolute", field, d.Path)
		}
		switch d.Type {
		case "c", "b", "u", "p":
		default:
			return fmt.Errorf("%s.type: unknown device type %q (want c, b, u or p)", field, d.Type)
		}
	}
	if err := validateSysctl(spec); err != nil {
		return err
	}
	if p := spec.Linux.RootfsPropagation; p != "" {
		if _, ok := propagationFlags[p]; !ok {
			return fmt.Errorf("linux.rootfsPropagation: unknown propagation %q", p)
		}
	}
	if spec.Linux.MountLabel != "" && !selinuxEnabled() {
		return fmt.Errorf("linux.mountLabel: %q given but SELinux is not enabled on this host", spec.Linux.MountLabel)
	}
	if spec.Linux.IntelRdt != nil {
		return errors.New("linux.intelRdt: Intel RDT is not supported by berth-runtime")
	}
	return nil
}

// ValidateProcess checks a process object; exec uses it for --process files.
func ValidateProcess(p *specs.Process, field string) error {
	if len(p.Args) == 0 && p.CommandLine == "" {
		return fmt.Errorf("%s.args: missing", field)
	}
	if p.Cwd == "" {
		return fmt.Errorf("%s.cwd: missing", field)
	}
	if !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("%s.cwd: %q is not absolute", field, p.Cwd)
	}
	for i, e := range p.Env {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("%s.env[%d]: %q is not KEY=VALUE", field, i, e)
		}
	}
	for i, r := range p.Rlimits {
		if _, ok := RlimitResource(r.Type); !ok {
			return fmt.Errorf("%s.rlimits[%d].type: unknown rlimit %q", field, i, r.Type)
		}
		if r.Soft > r.Hard {
			return fmt.Errorf("%s.rlimits[%d]: soft limit %d is above hard limit %d", field, i, r.Soft, r.Hard)
		}
	}
	if err := validateCapabilities(p.Capabilities, field); err != nil {
		return err
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return fmt.Errorf("%s.oomScoreAdj: %d is outside -1000..1000", field, *p.OOMScoreAdj)
	}
	if p.ConsoleSize != nil && !p.Terminal {
		return fmt.Errorf("%s.consoleSize: set but %s.terminal is false", field, field)
	}
	if p.ApparmorProfile != "" && !apparmorEnabled() {
		return fmt.Errorf("%s.apparmorProfile: %q given but AppArmor is not enabled on this host", field, p.ApparmorProfile)
	}
	if p.SelinuxLabel != "" && !selinuxEnabled() {
		return fmt.Errorf("%s.selinuxLabel: %q given but SELinux is not enabled on this host", field, p.SelinuxLabel)
	}
	if p.IOPriority != nil {
		switch p.IOPriority.Class {
		case specs.IOPRIO_CLASS_RT, specs.IOPRIO_CLASS_BE, specs.IOPRIO_CLASS_IDLE:
		default:
			return fmt.Errorf("%s.ioPriority.class: unknown class %q", field, p.IOPriority.Class)
		}
		if p.IOPriority.Priority < 0 || p.IOPriority.Priority > 7 {
			return fmt.Errorf("%s.ioPriority.priority: %d is outside 0..7", field, p.IOPriority.Priority)
		}
	}
	if s := p.Scheduler; s != nil {
		if _, ok := schedPolicies[s.Policy]; !ok {
			return fmt.Errorf("%s.scheduler.policy: unknown policy %q", field, s.Policy)
		}
	}
	return nil
}

// NamespaceFlag maps a spec namespace type to its /proc/PID/ns name.
var nsProcName = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace:     "pid",
	specs.NetworkNamespace: "net",
	specs.MountNamespace:   "mnt",
	specs.IPCNamespace:     "ipc",
	specs.UTSNamespace:     "uts",
	specs.UserNamespace:    "user",
	specs.CgroupNamespace:  "cgroup",
	specs.TimeNamespace:    "time",
}

// NamespaceProcName returns the name of a namespace type under /proc/PID/ns.
func NamespaceProcName(t specs.LinuxNamespaceType) (string, bool) {
	n, ok := nsProcName[t]
	return n, ok
}

func validateNamespaces(spec *specs.Spec) error {
	seen := map[specs.LinuxNamespaceType]bool{}
	for i, ns := range spec.Linux.Namespaces {
		field := fmt.Sprintf("linux.namespaces[%d]", i)
		name, ok := nsProcName[ns.Type]
		if !ok {
			return fmt.Errorf("%s.type: unknown namespace type %q", field, ns.Type)
		}
		if seen[ns.Type] {
			return fmt.Errorf("%s.type: namespace %q listed twice", field, ns.Type)
		}
		seen[ns.Type] = true
		if _, err := os.Stat("/proc/self/ns/" + name); err != nil {
			return fmt.Errorf("%s.type: this kernel has no %s namespaces", field, ns.Type)
		}
		if ns.Path != "" {
			if err := checkNamespacePath(ns.Path, name); err != nil {
				return fmt.Errorf("%s.path: %w", field, err)
			}
		}
	}
	has := func(t specs.LinuxNamespaceType) bool { return seen[t] }
	if spec.Hostname != "" && !has(specs.UTSNamespace) {
		return errors.New("hostname: set without a private uts namespace")
	}
	if spec.Domainname != "" && !has(specs.UTSNamespace) {
		return errors.New("domainname: set without a private uts namespace")
	}
	if len(spec.Linux.TimeOffsets) > 0 && !has(specs.TimeNamespace) {
		return errors.New("linux.timeOffsets: set without a time namespace")
	}
	for clock := range spec.Linux.TimeOffsets {
		if clock != "monotonic" && clock != "boottime" {
			return fmt.Errorf("linux.timeOffsets: unknown clock %q (want monotonic or boottime)", clock)
		}
	}
	if len(spec.Linux.UIDMappings)+len(spec.Linux.GIDMappings) > 0 && !has(specs.UserNamespace) {
		return errors.New("linux.uidMappings: set without a user namespace")
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.UserNamespace && ns.Path == "" {
			if len(spec.Linux.UIDMappings) == 0 {
				return errors.New("linux.uidMappings: a new user namespace needs uid mappings")
			}
			if len(spec.Linux.GIDMappings) == 0 {
				return errors.New("linux.gidMappings: a new user namespace needs gid mappings")
			}
		}
	}
	if err := validateIDMappings("linux.uidMappings", spec.Linux.UIDMappings); err != nil {
		return err
	}
	return validateIDMappings("linux.gidMappings", spec.Linux.GIDMappings)
}

func checkNamespacePath(path, name string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", path, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("namespace %s is a directory, not a namespace file", path)
	}
	// A namespace file is an nsfs inode (or procfs's link to one); any
	// other file here is a mistake, not a namespace.
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("namespace %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("%s is not a %s namespace file", path, name)
	}
	return nil
}

func validateIDMappings(field string, maps []specs.LinuxIDMapping) error {
	for i, m := range maps {
		if m.Size == 0 {
			return fmt.Errorf("%s[%d].size: must be greater than 0", field, i)
		}
		if uint64(m.ContainerID)+uint64(m.Size) > 1<<32 || uint64(m.HostID)+uint64(m.Size) > 1<<32 {
			return fmt.Errorf("%s[%d]: range %d+%d overflows 32-bit ids", field, i, m.HostID, m.Size)
		}
		for j := 0; j < i; j++ {
			o := maps[j]
			if overlap(m.ContainerID, m.Size, o.ContainerID, o.Size) {
				return fmt.Errorf("%s[%d]: containerID range overlaps %s[%d]", field, i, field, j)
			}
			if overlap(m.HostID, m.Size, o.HostID, o.Size) {
				return fmt.Errorf("%s[%d]: hostID range overlaps %s[%d]", field, i, field, j)
			}
		}
	}
	return nil
}

func overlap(a, asize, b, bsize uint32) bool {
	return uint64(a) < uint64(b)+uint64(bsize) && uint64(b) < uint64(a)+uint64(asize)
}

func validateMount(m specs.Mount, field string, kernelFS func() (map[string]bool, error)) error {
	if m.Destination == "" {
		return fmt.Errorf("%s.destination: missing", field)
	}
	if !filepath.IsAbs(m.Destination) {
		return fmt.Errorf("%s.destination: %q is not absolute", field, m.Destination)
	}
	if _, err := ParseMountOptions(m.Options); err != nil {
		return fmt.Errorf("%s.options: %w", field, err)
	}
	if !IsBind(m) && HasIDMapOption(m) {
		return fmt.Errorf("%s.options: idmap and ridmap are for bind mounts only; type %q is not one", field, m.Type)
	}
	if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
		if !IsBind(m) {
			return fmt.Errorf("%s.uidMappings: idmapped mounts are bind mounts only; type %q is not", field, m.Type)
		}
		if len(m.UIDMappings) == 0 || len(m.GIDMappings) == 0 {
			return fmt.Errorf("%s: an idmapped mount needs both uidMappings and gidMappings", field)
		}
		if err := validateIDMappings(field+".uidMappings", m.UIDMappings); err != nil {
			return err
		}
		if err := validateIDMappings(field+".gidMappings", m.GIDMappings); err != nil {
			return err
		}
	}
	if IsBind(m) {
		if m.Source == "" {
			return fmt.Errorf("%s.source: missing for a bind mount", field)
		}
		return nil
	}
	if m.Type == "" {
		return fmt.Errorf("%s.type: missing (and options do not say bind)", field)
	}
	known, err := kernelFS()
	if err != nil {
		return err
	}
	if !known[m.Type] && !strings.HasPrefix(m.Type, "fuse.") {
		return fmt.Errorf("%s.type: unknown mount type %q (not in /proc/filesystems)", field, m.Type)
	}
	return nil
}

// HasIDMapOption says whether a mount's options ask for an idmapped mount
// (idmap, or ridmap for all of an rbind's submounts).
func HasIDMapOption(m specs.Mount) bool {
	return slices.Contains(m.Options, "idmap") || slices.Contains(m.Options, "ridmap")
}

// ImpliedIDMap says whether a mount is idmapped through the container's
// own user namespace: it asks for idmap or ridmap and has no mappings of
// its own.
func ImpliedIDMap(m specs.Mount) bool {
	return HasIDMapOption(m) && len(m.UIDMappings) == 0 && len(m.GIDMappings) == 0
}

func hasNamespace(spec *specs.Spec, typ specs.LinuxNamespaceType) bool {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == typ {
			return true
		}
	}
	return false
}

// IsBind says whether a spec mount is a bind mount.
func IsBind(m specs.Mount) bool {
	if m.Type == "bind" || m.Type == "rbind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

func kernelFilesystems() (map[string]bool, error) {
	f, err := os.Open("/proc/filesystems")
	if err != nil {
		return nil, fmt.Errorf("read the kernel's filesystems: %w", err)
	}
	defer f.Close()
	known := map[string]bool{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 0 {
			known[fields[len(fields)-1]] = true
		}
	}
	// cgroup (v1) may be absent from a v2-only kernel's list only when it
	// is compiled out; overlay may be a module that is not loaded yet.
	known["overlay"] = true
	return known, s.Err()
}

// validateSysctl refuses sysctls that would change the host: only those
// namespaced by a namespace the container has of its own are allowed, as
// runc does.
func validateSysctl(spec *specs.Spec) error {
	own := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Path == "" {
			own[ns.Type] = true
		} else {
			own[ns.Type] = true // joined: still not the host's, caller's choice
		}
	}
	for key := range spec.Linux.Sysctl {
		k := strings.ReplaceAll(key, "/", ".")
		var need specs.LinuxNamespaceType
		switch {
		case strings.HasPrefix(k, "net."):
			need = specs.NetworkNamespace
		case k == "kernel.msgmax", k == "kernel.msgmnb", k == "kernel.msgmni", k == "kernel.sem",
			k == "kernel.shmall", k == "kernel.shmmax", k == "kernel.shmmni", k == "kernel.shm_rmid_forced",
			strings.HasPrefix(k, "fs.mqueue."):
			need = specs.IPCNamespace
		case k == "kernel.hostname", k == "kernel.domainname":
			need = specs.UTSNamespace
		default:
			return fmt.Errorf("linux.sysctl: %q is not namespaced and would change the host", key)
		}
		if !own[need] {
			return fmt.Errorf("linux.sysctl: %q needs a private %s namespace", key, need)
		}
		if strings.Contains(k, "..") {
			return fmt.Errorf("linux.sysctl: invalid name %q", key)
		}
	}
	return nil
}

func apparmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(b), "Y")
}

func selinuxEnabled() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}
