package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/oci"
)

// idmapHolderArg makes berth-runtime a process that only holds a user
// namespace open until its stdin closes (see usernsWithMaps).
const idmapHolderArg = "idmap-userns"

// IsIDMapHolder reports whether args are those of a user namespace holder;
// RunIDMapHolder is then all the process does.
func IsIDMapHolder(args []string) bool { return len(args) > 1 && args[1] == idmapHolderArg }

// RunIDMapHolder waits for its parent to close stdin.
func RunIDMapHolder() { io.Copy(io.Discard, os.Stdin) }

// idmapMounts makes, on the host, the bind mounts of a spec that the init
// cannot make itself, as detached clones that the init attaches in the
// container's mount namespace with move_mount:
//   - each mount with uidMappings/gidMappings, or with the option idmap or
//     ridmap alone (the container's mappings, see mountUserns): a clone of
//     the source whose ids are mapped through a user namespace holding
//     those mappings (mount_setattr MOUNT_ATTR_IDMAP);
//   - in a container with a user namespace of its own, each bind whose
//     source is outside the rootfs: the init binds inside its user
//     namespace, where the mapped root may not reach a source that only the
//     host's root can (a 0700 directory on the way), so the runtime clones
//     it, as runc 1.2 opens it (runc userns.bats "userns with inaccessible
//     mount"). These are returned as late, by source: cloneInMountNS
//     clones them once the init's mount namespace exists.
//
// The results are indexed like spec.Mounts; the caller closes the files.
func idmapMounts(spec *specs.Spec, bundle string) (map[int]*os.File, map[int]lateMount, error) {
	out := map[int]*os.File{}
	late := map[int]lateMount{}
	fail := func(err error) (map[int]*os.File, map[int]lateMount, error) {
		for _, f := range out {
			f.Close()
		}
		return nil, nil, err
	}
	cloneBinds := hostClonesBinds(spec)
	var inRootfs func(src string) bool
	if cloneBinds && spec.Root != nil {
		inRootfs = rootfsContains(spec.Root.Path, bundle)
	}
	for i, m := range spec.Mounts {
		field := fmt.Sprintf("mounts[%d]", i)
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(bundle, src)
		}
		if len(m.UIDMappings) == 0 && len(m.GIDMappings) == 0 && !oci.HasIDMapOption(m) {
			// Not /proc paths: /proc/self names the process that
			// resolves it, here the runtime, in the init the init.
			if cloneBinds && oci.IsBind(m) && (inRootfs == nil || !inRootfs(src)) && !underProc(src) {
				late[i] = lateMount{src: src, recursive: isRbind(m)} // see cloneInMountNS
			}
			continue
		}
		userns, err := mountUserns(spec, m)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", field, err))
		}
		fd, err := cloneTree(src, isRbind(m))
		if err != nil {
			userns.Close()
			return fail(fmt.Errorf("%s.source: clone %s: %w", field, src, err))
		}
		attrFlags := unix.AT_EMPTY_PATH
		// "ridmap" maps the submounts of an rbind too; "idmap" (or
		// mappings alone) only its top.
		if isRbind(m) && slices.Contains(m.Options, "ridmap") {
			attrFlags |= unix.AT_RECURSIVE
		}
		err = unix.MountSetattr(fd, "", uint(attrFlags), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())})
		userns.Close()
		if err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
				return fail(fmt.Errorf("%s: the filesystem of %s does not support idmapped mounts: %w", field, src, err))
			}
			return fail(fmt.Errorf("%s: idmap %s: %w", field, src, err))
		}
		out[i] = os.NewFile(uintptr(fd), "idmapped-"+m.Destination)
	}
	return out, late, nil
}

// hostClonesBinds reports whether the host clones a spec's bind sources:
// the container has a user namespace of its own and a mount namespace of
// its own (in a joined mount namespace the sources are that namespace's
// paths, not the host's).
func hostClonesBinds(spec *specs.Spec) bool {
	if spec.Linux == nil {
		return false
	}
	newUser, newMount := false, false
	for _, ns := range spec.Linux.Namespaces {
		switch ns.Type {
		case specs.UserNamespace:
			newUser = ns.Path == ""
		case specs.MountNamespace:
			newMount = ns.Path == ""
		}
	}
	return newUser && newMount
}

// rootfsContains returns a test of whether a source is the rootfs or below
// it, by name or once symlinks are resolved: such a source is bound by the
// init, after the mounts before it exist in the container (runc
// mounts.bats "runc run [mount order, container bind-mount source]"). The
// rootfs is resolved once, not per mount.
func rootfsContains(rootfs, bundle string) func(src string) bool {
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	rootfs = filepath.Clean(rootfs)
	real, realErr := filepath.EvalSymlinks(rootfs)
	under := func(p, root string) bool {
		rel, err := filepath.Rel(root, p)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
	}
	return func(src string) bool {
		if under(filepath.Clean(src), rootfs) {
			return true
		}
		rs, err := filepath.EvalSymlinks(src)
		return err == nil && realErr == nil && under(rs, real)
	}
}

// underProc reports whether src is /proc or below it.
func underProc(src string) bool {
	c := filepath.Clean(src)
	return c == "/proc" || strings.HasPrefix(c, "/proc/")
}

// isRbind reports whether a bind mount takes its submounts along.
func isRbind(m specs.Mount) bool { return slices.Contains(m.Options, "rbind") || m.Type == "rbind" }

// cloneTree clones the mount at src (with its submounts when recursive:
// an rbind) into a detached mount, as a file descriptor. The clone is made
// in the calling thread's mount namespace.
func cloneTree(src string, recursive bool) (int, error) {
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	return unix.OpenTree(unix.AT_FDCWD, src, uint(flags))
}

// lateMount is a bind source that cloneInMountNS clones.
type lateMount struct {
	src       string // absolute, a path in the host's (and the new namespace's) tree
	recursive bool   // rbind: its submounts too
}

// cloneInMountNS clones the bind sources of late (index in the spec's
// mounts to source) into detached mounts, from inside the mount namespace
// of the init pid, which the runtime's own child still is. There they are
// the namespace's copies of the host's mounts, which the kernel made with
// the flags of the host's mounts locked (ro, nosuid, nodev, noexec, atime)
// because the namespace belongs to the container's user namespace; a clone
// keeps those locks, so no process of the container, whatever its
// capabilities, can clear them, as with runc, whose init binds the source
// in that namespace. A clone made in the host's mount namespace would have
// none. The runtime's root still resolves the path, so a source below a
// directory only the host's root can enter (0700) is cloned all the same.
//
// It returns the indices and the fds, in the same order. Best effort per
// mount: a source that cannot be cloned (missing) is left to the init,
// which binds it and reports what is wrong; the error says why none could
// be (the namespace could not be entered).
func cloneInMountNS(pid int, late map[int]lateMount) ([]int, []int, error) {
	type result struct {
		idx, fds []int
		err      error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters another mount namespace and is never
		// unlocked: Go ends it with this goroutine instead of running
		// other goroutines in that namespace.
		goruntime.LockOSThread()
		var r result
		defer func() { done <- r }()
		// setns(CLONE_NEWNS) refuses a thread sharing its root and
		// working directory with the other threads.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			r.err = fmt.Errorf("clone bind sources: unshare(CLONE_FS): %w", err)
			return
		}
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil {
			r.err = fmt.Errorf("clone bind sources: %w", err)
			return
		}
		err = unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS)
		ns.Close()
		if err != nil {
			r.err = fmt.Errorf("clone bind sources: enter the container's mount namespace: %w", err)
			return
		}
		idx := make([]int, 0, len(late))
		for i := range late {
			idx = append(idx, i)
		}
		slices.Sort(idx)
		for _, i := range idx {
			fd, err := cloneTree(late[i].src, late[i].recursive)
			if err != nil {
				continue
			}
			r.idx, r.fds = append(r.idx, i), append(r.fds, fd)
		}
	}()
	r := <-done
	return r.idx, r.fds, r.err
}

// mountUserns returns the user namespace whose mappings an idmapped mount
// takes: one with the mount's own mappings or, for idmap or ridmap without
// them (oci.ImpliedIDMap), the container's: one with its mappings, or the
// user namespace it joins, as runc does (idmap.bats "implied mapping").
// oci.Validate has refused an implied mapping without a user namespace.
func mountUserns(spec *specs.Spec, m specs.Mount) (*os.File, error) {
	if !oci.ImpliedIDMap(m) {
		f, err := usernsWithMaps(m.UIDMappings, m.GIDMappings)
		if err != nil {
			return nil, fmt.Errorf("uidMappings: %w", err)
		}
		return f, nil
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type != specs.UserNamespace {
			continue
		}
		if ns.Path == "" {
			f, err := usernsWithMaps(spec.Linux.UIDMappings, spec.Linux.GIDMappings)
			if err != nil {
				return nil, fmt.Errorf("idmap with the container's mappings: %w", err)
			}
			return f, nil
		}
		f, err := os.Open(ns.Path)
		if err != nil {
			return nil, fmt.Errorf("idmap with the joined user namespace: %w", err)
		}
		if t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWUSER {
			f.Close()
			return nil, fmt.Errorf("idmap with the joined user namespace: %s is not a user namespace", ns.Path)
		}
		return f, nil
	}
	return nil, errors.New("idmap without uidMappings and gidMappings needs a user namespace")
}

// usernsWithMaps returns a user namespace with the given mappings: a
// short-lived child of ours is made in it (Go writes the maps between its
// clone and exec), and its namespace is opened before it is let go.
func usernsWithMaps(uids, gids []specs.LinuxIDMapping) (*os.File, error) {
	conv := func(in []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		var out []syscall.SysProcIDMap
		for _, m := range in {
			out = append(out, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		return out
	}
	cmd := exec.Command("/proc/self/exe", idmapHolderArg)
	cmd.Env = []string{}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: conv(uids),
		GidMappings: conv(gids),
	}
	if err := cmd.Start(); err != nil {
		stdin.Close()
		return nil, fmt.Errorf("make a user namespace with the mount's mappings: %w", err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		return nil, fmt.Errorf("open the mapping user namespace: %w", err)
	}
	return f, nil
}
