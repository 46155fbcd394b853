package initproc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/pathrs"
)

// rootfsSetup builds the container's filesystem view inside its new mount
// namespace: prepare() mounts everything under the rootfs, finish() pivots
// into it and applies the masks that must come after.
type rootfsSetup struct {
	spec     *specs.Spec
	cfg      *Config
	rootfs   string
	root     *os.File // O_PATH handle of the rootfs; every path inside is resolved from it
	userns   bool
	devTmpfs bool
	hostMnt  bool // no mount namespace of its own: see hostmnt_linux.go
	// roLater are read-only tmpfs mounts (a read-only /dev) mounted
	// writable at first, so that devices and mount points can be made
	// in them, and made read-only at the end of prepare, as runc does.
	roLater []roMount
}

type roMount struct {
	dest  string
	flags uintptr
}

func (r *rootfsSetup) close() {
	if r.root != nil {
		r.root.Close()
	}
}

func (r *rootfsSetup) prepare() error {
	r.rootfs = r.spec.Root.Path
	for _, ns := range r.spec.Linux.Namespaces {
		if ns.Type == specs.UserNamespace {
			r.userns = true
		}
	}
	// The host's mounts become slaves here unless the config asks for
	// shared propagation back to the host; the requested propagation of
	// the container's own root is set after pivot_root (see pivot). An
	// unbindable or private old root would also break the bind of the
	// rootfs below.
	r.hostMnt = UsesHostMountNS(r.spec)
	if r.hostMnt {
		// The host's mount table: its propagation is not ours to
		// change. Our own bind of the rootfs is private, so what the
		// config mounts under it stays in this mount namespace.
		if err := unix.Mount(r.rootfs, r.rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("root.path: bind %s: %w", r.rootfs, err)
		}
		if err := unix.Mount("", r.rootfs, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("root.path: make the bind of %s private: %w", r.rootfs, err)
		}
	} else {
		prop := uintptr(unix.MS_SLAVE | unix.MS_REC)
		if p := r.spec.Linux.RootfsPropagation; p != "" {
			if f, _ := oci.PropagationFlag(p); f&unix.MS_SHARED != 0 {
				prop = f
			}
		}
		// Nothing mounted from here on may propagate back to the host.
		if err := unix.Mount("", "/", "", prop, ""); err != nil {
			return fmt.Errorf("linux.rootfsPropagation: make / %v: %w", prop, err)
		}
		if err := makeParentPrivate(r.rootfs); err != nil {
			return err
		}
		// pivot_root needs the new root to be a mount point.
		if err := unix.Mount(r.rootfs, r.rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("root.path: bind %s: %w", r.rootfs, err)
		}
	}
	root, err := os.OpenFile(r.rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("root.path: %w", err)
	}
	r.root = root
	for i, m := range r.spec.Mounts {
		mount := r.mount
		if fd, ok := r.cfg.MountFds[i]; ok {
			mount = func(m specs.Mount) error { return r.attachIDMapped(m, fd) }
		}
		if err := mount(m); err != nil {
			return fmt.Errorf("mounts[%d] (%s on %s): %w", i, m.Type, m.Destination, err)
		}
		if m.Destination == "/dev" && !oci.IsBind(m) {
			r.devTmpfs = true
		}
	}
	if r.devTmpfs {
		if err := r.createDefaultDevices(); err != nil {
			return err
		}
	}
	if err := r.createDevices(); err != nil {
		return err
	}
	if r.spec.Process != nil && r.spec.Process.Terminal {
		f, err := pathrs.MountPoint(r.root, "/dev/console", false)
		if err != nil {
			return fmt.Errorf("/dev/console: %w", err)
		}
		f.Close()
	}
	for _, m := range r.roLater {
		if err := remount(r.root, m.dest, m.flags, 0, m.dest); err != nil {
			return fmt.Errorf("read-only tmpfs %s: %w", m.dest, err)
		}
	}
	return nil
}

// makeParentPrivate makes the mount holding the rootfs private when it is
// shared: pivot_root refuses a new root whose parent mount is shared.
func makeParentPrivate(rootfs string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(rootfs))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		if best == nil || len(m.Mountpoint) > len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil || !strings.Contains(best.Optional, "shared:") {
		return nil
	}
	if err := unix.Mount("", best.Mountpoint, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", best.Mountpoint, err)
	}
	return nil
}

// procMountAllowed implements runc's rule for mounts on /proc: procfs on
// /proc itself, and below /proc only binds of the few files that tools like
// lxcfs replace. Anything else could hide procfs files the runtime writes to.
var procBindable = map[string]bool{
	"/proc/cpuinfo": true, "/proc/diskstats": true, "/proc/meminfo": true, "/proc/stat": true,
	"/proc/swaps": true, "/proc/uptime": true, "/proc/loadavg": true, "/proc/slabinfo": true,
	"/proc/net/dev": true, "/proc/sys/kernel/ns_last_pid": true,
}

func checkProcMount(dest string, m specs.Mount) error {
	dest = filepath.Clean(dest)
	if dest == "/proc" {
		if m.Type == "proc" {
			return nil
		}
		if oci.IsBind(m) {
			// The root of a procfs may be bound there: rootless
			// containers in the host's pid namespace (Podman's
			// --pid=host) cannot mount a procfs of their own (runc
			// start_hello.bats "runc run [rootless with host pidns]").
			return checkProcRoot(m.Source)
		}
		return fmt.Errorf("only procfs can be mounted on /proc, not %q", m.Type)
	}
	if strings.HasPrefix(dest, "/proc/") {
		if procBindable[dest] || m.Type == "proc" {
			return nil
		}
		return fmt.Errorf("%s is inside /proc and not one of the files that may be replaced", dest)
	}
	return nil
}

// checkProcRoot accepts src as the source of a bind on /proc only if it is
// the root directory of a procfs (inode 1), not a file or directory inside
// one, nor anything else.
func checkProcRoot(src string) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(src, &fs); err != nil {
		return fmt.Errorf("bind source %s for /proc: %w", src, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return fmt.Errorf("bind source %s for /proc: %w", src, err)
	}
	if fs.Type != unix.PROC_SUPER_MAGIC || st.Ino != 1 {
		return fmt.Errorf("%q cannot be bound on /proc: it is not the root of a procfs", src)
	}
	return nil
}

func (r *rootfsSetup) mount(m specs.Mount) error {
	dest := r.containerPath(m.Destination)
	if err := checkProcMount(dest, m); err != nil {
		return err
	}
	opts, err := oci.ParseMountOptions(m.Options)
	if err != nil {
		return err
	}
	switch {
	case oci.IsBind(m):
		return r.bindMount(m, dest, opts)
	case m.Type == "cgroup" || m.Type == "cgroup2":
		return r.mountCgroup(m, dest, opts)
	}
	data := strings.Join(opts.Data, ",")
	flags := opts.Flags
	if m.Type == "tmpfs" {
		data = r.tmpfsData(dest, data)
		if flags&unix.MS_RDONLY != 0 {
			// Read-only at the end of prepare (runc mounts.bats
			// "runc run [ro /dev mount]").
			r.roLater = append(r.roLater, roMount{dest, flags})
			flags &^= unix.MS_RDONLY
		}
	}
	if m.Type == "proc" || m.Type == "sysfs" {
		if err := r.checkOrdinaryDir(dest, m.Type); err != nil {
			return err
		}
	}
	target, err := pathrs.MountPoint(r.root, dest, true)
	if err != nil {
		return err
	}
	defer target.Close()
	var below *os.File // the directory a tmpcopyup tmpfs covers
	if opts.CopyUp && m.Type == "tmpfs" {
		if below, err = pathrs.Reopen(target, unix.O_RDONLY|unix.O_DIRECTORY); err != nil {
			return fmt.Errorf("tmpcopyup: open %s: %w", dest, err)
		}
		defer below.Close()
	}
	err = unix.Mount(m.Source, pathrs.ProcPath(target), m.Type, flags, data)
	if err != nil && m.Type == "sysfs" && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)) && r.userns {
		// A user namespace without its own network namespace may not
		// mount sysfs; bind the host's read-only instead, as runc does.
		err = unix.Mount("/sys", pathrs.ProcPath(target), "", unix.MS_BIND|unix.MS_REC, "")
		if err == nil {
			err = remount(r.root, dest, flags|unix.MS_RDONLY, 0, dest)
		}
	}
	if err != nil {
		return err
	}
	if m.Type == "proc" {
		if err := checkFsType(r.root, dest, unix.PROC_SUPER_MAGIC); err != nil {
			return err
		}
	}
	if below != nil {
		if err := r.copyUp(below, dest); err != nil {
			return fmt.Errorf("tmpcopyup: %w", err)
		}
	}
	return r.applyPropagation(dest, opts)
}

// copyUp copies the directory a tmpfs now covers (below, opened before the
// mount) into the tmpfs at dest.
func (r *rootfsSetup) copyUp(below *os.File, dest string) error {
	h, err := pathrs.Open(r.root, dest)
	if err != nil {
		return err
	}
	top, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_DIRECTORY)
	h.Close()
	if err != nil {
		return fmt.Errorf("open the tmpfs at %s: %w", dest, err)
	}
	defer top.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(below.Fd()), &st); err != nil {
		return err
	}
	if err := unix.Fchown(int(top.Fd()), int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", dest, err)
	}
	return copyTree(below, top, dest, 0)
}

// containerPath is a mount destination inside the container. A destination
// that names the rootfs by its host path is taken inside it, as runc has
// always done (runc mounts.bats "runc run [mount order, container
// bind-mount source]" binds "$rootfs/mnt" on "$rootfs/final").
func (r *rootfsSetup) containerPath(dest string) string {
	dest = filepath.Clean(dest)
	if rest, ok := strings.CutPrefix(dest, filepath.Clean(r.rootfs)+"/"); ok && filepath.IsAbs(r.rootfs) {
		return "/" + rest
	}
	return dest
}

// checkOrdinaryDir refuses to mount procfs or sysfs where the image has
// something other than a directory, a symlink above all: the mount would
// land where the symlink points, and runc refuses it since CVE-2019-19921
// (runc mounts.bats "runc run [/proc is a symlink]"). A missing entry is
// made as a directory by MountPoint.
func (r *rootfsSetup) checkOrdinaryDir(dest, fstype string) error {
	check := func(dirfd int, name string) error {
		var st unix.Stat_t
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("filesystem %q must be mounted on ordinary directory: %s is not one", fstype, dest)
		}
		return nil
	}
	if filepath.Dir(dest) == "/" {
		// The usual /proc and /sys: one fstatat from the root's fd.
		return check(int(r.root.Fd()), dest[1:])
	}
	return pathrs.InParent(r.root, dest, check)
}

// tmpfsData gives a tmpfs over a directory the image has that directory's
// mode, setuid, setgid and sticky bits included, unless the options set a
// mode (later in the data, so theirs wins), as runc does (runc run.bats
// "runc run with tmpfs", "with tmpfs perms"); over a directory made for the
// mount the tmpfs keeps its own default (1777).
func (r *rootfsSetup) tmpfsData(dest, data string) string {
	f, err := pathrs.Open(r.root, dest)
	if err != nil {
		return data
	}
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return data
	}
	mode := fmt.Sprintf("mode=%04o", st.Mode&0o7777)
	if data == "" {
		return mode
	}
	return mode + "," + data
}

func (r *rootfsSetup) bindMount(m specs.Mount, dest string, opts oci.MountOptions) error {
	src := m.Source
	if !filepath.IsAbs(src) {
		src = filepath.Join(r.cfg.Bundle, src)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	target, err := pathrs.MountPoint(r.root, dest, fi.IsDir())
	if err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND)
	if opts.Recursive {
		flags |= unix.MS_REC
	}
	err = unix.Mount(src, pathrs.ProcPath(target), "", flags, "")
	target.Close()
	if err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	return r.bindOptions(dest, src, opts)
}

// bindOptions applies the flags, attributes and propagation of a bind
// mount of src once it is in place. Options that change nothing leave
// every flag of the source as it is.
func (r *rootfsSetup) bindOptions(dest, src string, opts oci.MountOptions) error {
	if rest := opts.Flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT); rest != 0 || opts.Cleared != 0 {
		if err := remount(r.root, dest, rest, opts.Cleared, src); err != nil {
			return err
		}
	}
	if opts.AttrSet != 0 || opts.AttrClr != 0 {
		if err := setattrRecursive(r.root, dest, opts); err != nil {
			return err
		}
	}
	return r.applyPropagation(dest, opts)
}

// attachIDMapped puts the clone of a bind mount's source that the runtime
// made (fd: idmapped on the host, see idmapMounts, or a plain bind of a
// container with its own user namespace, cloned in its mount namespace
// with the kernel's locks, see cloneInMountNS) at its destination, then
// applies the mount's other options as for any bind mount.
func (r *rootfsSetup) attachIDMapped(m specs.Mount, fd int) error {
	mnt := os.NewFile(uintptr(fd), "idmapped")
	defer mnt.Close()
	dest := r.containerPath(m.Destination)
	if err := checkProcMount(dest, m); err != nil {
		return err
	}
	opts, err := oci.ParseMountOptions(m.Options)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("idmapped mount: %w", err)
	}
	target, err := pathrs.MountPoint(r.root, dest, st.Mode&unix.S_IFMT == unix.S_IFDIR)
	if err != nil {
		return err
	}
	// Onto the resolved fd itself: move_mount does not follow the
	// /proc/self/fd magic link that mount(2) takes.
	err = unix.MoveMount(fd, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	target.Close()
	if err != nil {
		return fmt.Errorf("attach the mount of %s: %w", m.Source, err)
	}
	return r.bindOptions(dest, m.Source, opts)
}

// remount changes the flags of the bind mount at dest. In a container with
// its own user namespace the kernel has locked a bind source's ro, nosuid,
// nodev, noexec and atime flags, and refuses a remount that would clear
// one; then, as runc does, the remount fails if the options clear one
// explicitly (cleared: rw on a read-only source) or ask for another atime
// mode, and is made again with the locked flags kept otherwise. src names
// the source in those errors.
func remount(root *os.File, dest string, flags, cleared uintptr, src string) error {
	target, err := pathrs.Open(root, dest)
	if err != nil {
		return err
	}
	defer target.Close()
	err = unix.Mount("", pathrs.ProcPath(target), "", unix.MS_REMOUNT|unix.MS_BIND|flags, "")
	if errors.Is(err, unix.EPERM) {
		var st unix.Statfs_t
		if err := unix.Fstatfs(int(target.Fd()), &st); err != nil {
			return fmt.Errorf("statfs %s: %w", dest, err)
		}
		locked, lerr := keepLocked(statfsMountFlags(st), flags, cleared, src)
		if lerr != nil {
			return lerr
		}
		err = unix.Mount("", pathrs.ProcPath(target), "", unix.MS_REMOUNT|unix.MS_BIND|flags|locked, "")
	}
	if err != nil {
		return fmt.Errorf("remount %s: %w", dest, err)
	}
	return nil
}

func setattrRecursive(root *os.File, dest string, opts oci.MountOptions) error {
	target, err := pathrs.Open(root, dest)
	if err != nil {
		return err
	}
	defer target.Close()
	attr := &unix.MountAttr{Attr_set: opts.AttrSet, Attr_clr: opts.AttrClr}
	if err := unix.MountSetattr(int(target.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("recursive mount options on %s: %w", dest, err)
	}
	return nil
}

func (r *rootfsSetup) applyPropagation(dest string, opts oci.MountOptions) error {
	if len(opts.Propagation) == 0 {
		return nil
	}
	target, err := pathrs.Open(r.root, dest)
	if err != nil {
		return err
	}
	defer target.Close()
	for _, p := range opts.Propagation {
		if err := unix.Mount("", pathrs.ProcPath(target), "", p, ""); err != nil {
			return fmt.Errorf("propagation of %s: %w", dest, err)
		}
	}
	return nil
}

func checkFsType(root *os.File, dest string, magic int64) error {
	f, err := pathrs.Open(root, dest)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dest, err)
	}
	if st.Type != magic {
		return fmt.Errorf("%s is not the filesystem just mounted there (type 0x%x)", dest, st.Type)
	}
	return nil
}

// mountCgroup gives the container its cgroup view. With a cgroup namespace
// the hierarchies are mounted fresh (the namespace roots them at the
// container's cgroup); without one the container's own cgroup directories
// are bound in. On a v1 or hybrid host each hierarchy gets a directory in a
// tmpfs, as runc lays it out.
func (r *rootfsSetup) mountCgroup(m specs.Mount, dest string, opts oci.MountOptions) error {
	cgroupns := false
	for _, ns := range r.spec.Linux.Namespaces {
		if ns.Type == specs.CgroupNamespace {
			cgroupns = true
		}
	}
	flags := opts.Flags &^ unix.MS_RDONLY
	hier, err := hostCgroupMounts()
	if err != nil {
		return err
	}
	if len(hier) == 1 && hier[0].fstype == "cgroup2" && hier[0].mountpoint == "/sys/fs/cgroup" {
		return r.mountCgroupHierarchy(dest, hier[0], "", cgroupns, opts.Flags)
	}
	target, err := pathrs.MountPoint(r.root, dest, true)
	if err != nil {
		return err
	}
	err = unix.Mount("tmpfs", pathrs.ProcPath(target), "tmpfs", flags, "mode=755")
	target.Close()
	if err != nil {
		return fmt.Errorf("tmpfs for cgroups: %w", err)
	}
	for _, h := range hier {
		if h.fstype == "cgroup2" {
			// A hybrid host's v2 hierarchy (/sys/fs/cgroup/unified) is
			// left out, as runc leaves it out: v1 tools do not expect it.
			continue
		}
		name := filepath.Base(h.mountpoint)
		if err := r.mountCgroupHierarchy(filepath.Join(dest, name), h, name, cgroupns, opts.Flags); err != nil {
			return err
		}
		// cpu,cpuacct mounted together get the per-controller names as
		// links, as on the host.
		if strings.Contains(name, ",") {
			for _, sub := range strings.Split(name, ",") {
				err := pathrs.InParent(r.root, filepath.Join(dest, sub), func(dirfd int, base string) error {
					return unix.Symlinkat(name, dirfd, base)
				})
				if err != nil && !errors.Is(err, unix.EEXIST) {
					return err
				}
			}
		}
	}
	// As runc: the tmpfs stays writable (for the hierarchies' links), the
	// hierarchies in it carry the mount's flags.
	return nil
}

type cgroupHierarchy struct {
	mountpoint string
	fstype     string
	root       string
	superOpts  string // the controllers, e.g. "memory" or "name=systemd"
}

func (r *rootfsSetup) mountCgroupHierarchy(dest string, h cgroupHierarchy, controller string, cgroupns bool, flags uintptr) error {
	target, err := pathrs.MountPoint(r.root, dest, true)
	if err != nil {
		return err
	}
	defer target.Close()
	if cgroupns {
		err = unix.Mount("cgroup", pathrs.ProcPath(target), h.fstype, flags, h.superOpts)
	} else {
		src := r.cgroupSource(h, controller)
		err = unix.Mount(src, pathrs.ProcPath(target), "", unix.MS_BIND|unix.MS_REC, "")
		if err == nil && flags&^unix.MS_BIND != 0 {
			err = remount(r.root, dest, flags&^(unix.MS_BIND|unix.MS_REC), 0, dest)
		}
	}
	if err != nil {
		return fmt.Errorf("cgroup hierarchy %s: %w", h.mountpoint, err)
	}
	return nil
}

// cgroupSource is the host directory of the container's cgroup in one
// hierarchy, or the hierarchy's root where the container has none there.
func (r *rootfsSetup) cgroupSource(h cgroupHierarchy, controller string) string {
	key := controller
	if h.fstype == "cgroup2" {
		key = ""
	}
	for k, p := range r.cfg.CgroupPaths {
		if k == key || (key != "" && strings.Contains(controller, k)) || (strings.HasPrefix(k, "name=") && strings.Contains(h.superOpts, k)) {
			if strings.HasPrefix(p, h.mountpoint) {
				return p
			}
		}
	}
	return h.mountpoint
}

// hostCgroupMounts lists the cgroup hierarchies mounted under
// /sys/fs/cgroup, as the init's (copied) mount table shows them.
func hostCgroupMounts() ([]cgroupHierarchy, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupHierarchy
	s := bufio.NewScanner(f)
	for s.Scan() {
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		if qf[0] != "cgroup" && qf[0] != "cgroup2" {
			continue
		}
		if !strings.HasPrefix(pf[4], "/sys/fs/cgroup") {
			continue
		}
		var keep []string
		for _, o := range strings.Split(qf[2], ",") {
			if o == "rw" || o == "ro" {
				continue
			}
			if qf[0] == "cgroup" || o == "nsdelegate" || o == "memory_recursiveprot" {
				keep = append(keep, o)
			}
		}
		out = append(out, cgroupHierarchy{mountpoint: pf[4], fstype: qf[0], root: pf[3], superOpts: strings.Join(keep, ",")})
	}
	return out, s.Err()
}

var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

func (r *rootfsSetup) createDefaultDevices() error {
	mode := os.FileMode(0o666)
	for _, d := range defaultDevices {
		d.FileMode = &mode
		if err := r.createDevice(d); err != nil {
			return err
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
		{"pts/ptmx", "/dev/ptmx"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "/dev/core"})
	}
	for _, l := range links {
		err := pathrs.InParent(r.root, l[1], func(dirfd int, name string) error {
			if l[1] == "/dev/ptmx" {
				// Replace any node so ptys come from the container's devpts.
				unix.Unlinkat(dirfd, name, 0)
			}
			return unix.Symlinkat(l[0], dirfd, name)
		})
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink %s: %w", l[1], err)
		}
	}
	return nil
}

func (r *rootfsSetup) createDevices() error {
	for i, d := range r.spec.Linux.Devices {
		if err := r.createDevice(d); err != nil {
			return fmt.Errorf("linux.devices[%d] (%s): %w", i, d.Path, err)
		}
	}
	return nil
}

// createDevice makes a device node inside the rootfs; in a user namespace,
// where mknod is refused, it binds the host's node instead.
func (r *rootfsSetup) createDevice(d specs.LinuxDevice) error {
	// Any place in the rootfs, as runc allows (Docker's --device
	// HOST:CONTAINER takes any container path); pathrs keeps the node
	// inside the rootfs whatever links the image holds.
	dest := filepath.Clean(d.Path)
	if !filepath.IsAbs(dest) || dest == "/" {
		return fmt.Errorf("device path %q: want an absolute path below /", d.Path)
	}
	if r.userns {
		target, err := pathrs.MountPoint(r.root, dest, false)
		if err != nil {
			return err
		}
		defer target.Close()
		if err := unix.Mount(dest, pathrs.ProcPath(target), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind host device %s: %w", dest, err)
		}
		return nil
	}
	var typ uint32
	switch d.Type {
	case "c", "u":
		typ = unix.S_IFCHR
	case "b":
		typ = unix.S_IFBLK
	case "p":
		typ = unix.S_IFIFO
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	return pathrs.InParent(r.root, dest, func(dirfd int, name string) error {
		// An existing entry (a file from the image) is replaced, never
		// followed.
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("replace %s: %w", dest, err)
		}
		if err := unix.Mknodat(dirfd, name, typ|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
			return fmt.Errorf("mknod %s: %w", dest, err)
		}
		// mknod applies the umask; set the mode the spec asked for.
		if err := unix.Fchmodat(dirfd, name, perm, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", dest, err)
		}
		uid, gid := 0, 0
		if d.UID != nil {
			uid = int(*d.UID)
		}
		if d.GID != nil {
			gid = int(*d.GID)
		}
		if err := unix.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", dest, err)
		}
		return nil
	})
}

// pivot switches root to the rootfs.
func (r *rootfsSetup) pivot() error {
	if r.hostMnt {
		// pivot_root and --no-pivot's move would both change the
		// host's root: only this process's root changes.
		if err := chrootInto(r.rootfs); err != nil {
			return err
		}
	} else if r.cfg.NoPivot {
		if err := moveRoot(r.rootfs); err != nil {
			return err
		}
	} else if err := pivotRoot(r.rootfs); err != nil {
		return err
	}
	r.root.Close()
	root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	r.root = root
	return nil
}

// masks applies what must come last, from inside the new root: read-only
// and masked paths, and the read-only root.
func (r *rootfsSetup) masks() error {
	for _, p := range r.spec.Linux.ReadonlyPaths {
		if err := r.readonlyPath(p); err != nil {
			return fmt.Errorf("linux.readonlyPaths %s: %w", p, err)
		}
	}
	for _, p := range r.spec.Linux.MaskedPaths {
		if err := r.maskPath(p); err != nil {
			return fmt.Errorf("linux.maskedPaths %s: %w", p, err)
		}
	}
	if r.spec.Root.Readonly {
		if err := remount(r.root, "/", unix.MS_RDONLY, 0, "/"); err != nil {
			return fmt.Errorf("root.readonly: %w", err)
		}
	}
	// Last: an unbindable root would refuse the binds above.
	if p := r.spec.Linux.RootfsPropagation; p != "" {
		flag, _ := oci.PropagationFlag(p)
		if err := unix.Mount("", "/", "", flag, ""); err != nil {
			return fmt.Errorf("linux.rootfsPropagation %s: %w", p, err)
		}
	}
	return nil
}

func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one,
	// so no directory for it is needed inside the container.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return err
	}
	// Keep the unmount of the old root from propagating to the host.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount old root: %w", err)
	}
	return unix.Chdir("/")
}

// moveRoot is --no-pivot: for roots pivot_root cannot leave, such as an
// initramfs. The host's mounts stay reachable by chroot escapes, which is
// why it is not the default.
func moveRoot(rootfs string) error {
	if err := hideFullProcSys(rootfs); err != nil {
		return err
	}
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move root %s: %w", rootfs, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot %s: %w", rootfs, err)
	}
	return unix.Chdir("/")
}

// chrootInto makes dir the calling process's root and cwd.
// hideFullProcSys detaches, in the container's mount namespace, every full
// procfs and sysfs mount outside the rootfs (covering it with a tmpfs where
// that is refused), as runc does before --no-pivot's move. After the move
// and chroot they stay in the mount namespace, out of reach but enough for
// the kernel to let a nested user namespace mount a new, unmasked procfs
// (runc no_pivot.bats "runc run --no-pivot must not expose bare /proc").
func hideFullProcSys(rootfs string) error {
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		inside := m.Mountpoint == rootfs || strings.HasPrefix(m.Mountpoint, rootfs+"/")
		return m.Root != "/" || (m.FSType != "proc" && m.FSType != "sysfs") || inside, false
	})
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	for _, m := range mounts {
		if err := unix.Mount("", m.Mountpoint, "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // under a mount detached already
			}
			return fmt.Errorf("hide %s %s: %w", m.FSType, m.Mountpoint, err)
		}
		err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
			err = unix.Mount("tmpfs", m.Mountpoint, "tmpfs", 0, "")
		}
		if err != nil {
			return fmt.Errorf("hide %s %s: %w", m.FSType, m.Mountpoint, err)
		}
	}
	return nil
}

func chrootInto(dir string) error {
	if err := unix.Chdir(dir); err != nil {
		return err
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot %s: %w", dir, err)
	}
	return unix.Chdir("/")
}

func (r *rootfsSetup) readonlyPath(p string) error {
	target, err := pathrs.Open(r.root, p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	err = unix.Mount(pathrs.ProcPath(target), pathrs.ProcPath(target), "", unix.MS_BIND|unix.MS_REC, "")
	target.Close()
	if err != nil {
		return err
	}
	return remount(r.root, p, unix.MS_RDONLY, 0, p)
}

func (r *rootfsSetup) maskPath(p string) error {
	target, err := pathrs.Open(r.root, p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer target.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(target.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.Mount("tmpfs", pathrs.ProcPath(target), "tmpfs", unix.MS_RDONLY, "")
	}
	return unix.Mount("/dev/null", pathrs.ProcPath(target), "", unix.MS_BIND, "")
}

// UsesHostMountNS says the container shares the runtime's mount namespace.
func UsesHostMountNS(spec *specs.Spec) bool {
	if spec == nil || spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.MountNamespace {
			return false
		}
	}
	return true
}
