package initproc

// Landlock applied to the container's processes for the monitor's exec
// and open-for-write deny rules (internal/secmon/landlock has the plan,
// carried in the landlock.Annotation annotation).
//
// Landlock is an allow-list: a ruleset handles some access rights, and a
// right is granted only beneath a directory (or on a file) that a rule
// names. To deny a few paths and leave everything else as it was, the
// init walks the container's tree (after pivot_root and the mounts, so
// the paths are the container's) from / down to each denied path and
// grants every handled right on each entry beside that way. Consequences,
// which the README states:
//   - the directories on the way to a denied path (/ and /usr/bin for
//     /usr/bin/sh) have no rule of their own: for a write plan nothing can
//     be created, removed or renamed directly in them; for an exec plan a
//     file put in them after the start cannot be executed. Files and
//     directories beside the way, and everything beneath those, keep
//     every right (mount points included: the rule is on the mounted
//     root).
//   - rules attach to files (inodes), not names. A denied path that is a
//     symbolic link, or a regular file with more than one hard link, would
//     deny nothing (the other name stays allowed) or far more than asked
//     (denying busybox denies every applet): the init refuses it with an
//     error naming the path and the rule, and the container is not
//     created. A file inside a denied directory that also has a hard link
//     outside it stays writable (executable) through that other name.
//   - renaming or linking a denied file to an allowed place fails (EXDEV):
//     Landlock refuses a move that would give a file rights it lacks. A
//     copy is a new file (for exec, the monitor's drift rules see it).
//
// Without Landlock (or with too old an ABI) the init fails: a container
// whose rules ask for a deny never runs without it.

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/secmon/landlock"
)

// landlockMinABI: TRUNCATE (3) must be handled for a write denial to hold,
// and REFER (2) is what lets files move between allowed directories.
const landlockMinABI = 3

// maxLandlockRules bounds the entries of the directories on the way to
// the denied paths (a hostile image could fill / with millions).
const maxLandlockRules = 1 << 16

const (
	llExec  = unix.LANDLOCK_ACCESS_FS_EXECUTE
	llWrite = unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE |
		unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	llRefer = unix.LANDLOCK_ACCESS_FS_REFER
	// llFileRights are the rights a rule on a non-directory may grant.
	llFileRights = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
)

// rulesetAttr is struct landlock_ruleset_attr as of ABI 6; x/sys's type
// has later fields that older kernels refuse.
type rulesetAttr struct {
	handledFS, handledNet, scoped uint64
}

// landlockRuleset is a built ruleset, applied by restrict just before the
// process's privileges are dropped.
type landlockRuleset struct {
	fd  int
	abi int
}

// buildLandlock reads the plan from the annotations and builds its
// ruleset, walking the tree the process sees as /. extraWrite are fds
// (O_PATH) of files the runtime itself must still open for writing
// after restrict (exec.fifo). nil without a plan.
func buildLandlock(annotations map[string]string, extraWrite ...int) (*landlockRuleset, error) {
	v, ok := annotations[landlock.Annotation]
	if !ok {
		return nil, nil
	}
	plan, err := landlock.Parse(v)
	if err != nil {
		return nil, err
	}
	if plan.Empty() {
		return nil, nil
	}
	abi := landlock.ABI()
	if abi < landlockMinABI {
		what := "this kernel has no Landlock"
		if abi > 0 {
			what = fmt.Sprintf("this kernel's Landlock is ABI %d", abi)
		}
		return nil, fmt.Errorf("annotation %s: the monitor's deny rules need Landlock ABI %d or later and %s: refusing to run the container without them", landlock.Annotation, landlockMinABI, what)
	}
	var handled uint64 = llRefer
	if len(plan.Exec) > 0 {
		handled |= llExec
	}
	if len(plan.Write) > 0 {
		handled |= llWrite
	}
	attr := rulesetAttr{handledFS: handled}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if e != 0 {
		return nil, fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	rs := &landlockRuleset{fd: int(fd), abi: abi}
	if err := rs.fill(plan, handled, extraWrite); err != nil {
		rs.close()
		return nil, err
	}
	return rs, nil
}

func (rs *landlockRuleset) close() {
	if rs != nil && rs.fd >= 0 {
		unix.Close(rs.fd)
		rs.fd = -1
	}
}

// fill adds the allow rules: REFER everywhere, and for each kind of
// denial (exec, write) its rights beside the way to each of its paths.
// Rules on one file add up, so the two kinds do not interfere: a
// directory on the way to a denied exec keeps its write rights.
func (rs *landlockRuleset) fill(plan *landlock.Plan, handled uint64, extraWrite []int) error {
	// REFER on / (and so everywhere): Landlock denies any rename or link
	// between directories unless granted, and still refuses a move that
	// would give a file rights it lacks (a denied file to an allowed
	// directory).
	if err := rs.allow("/", llRefer); err != nil {
		return err
	}
	n := 0
	for _, x := range []struct {
		list   []landlock.Path
		rights uint64
	}{{plan.Exec, llExec}, {plan.Write, llWrite}} {
		if len(x.list) == 0 {
			continue
		}
		var denied []string
		for _, p := range x.list {
			ds, err := resolveDenied(p)
			if err != nil {
				return err
			}
			denied = append(denied, ds...)
		}
		if err := rs.allowBeside(denied, x.rights, &n); err != nil {
			return err
		}
	}
	for _, fd := range extraWrite {
		if fd < 0 || handled&unix.LANDLOCK_ACCESS_FS_WRITE_FILE == 0 {
			continue
		}
		if err := rs.addRule(fd, unix.LANDLOCK_ACCESS_FS_WRITE_FILE, "the runtime's exec fifo"); err != nil {
			return err
		}
	}
	return nil
}

// allowBeside grants rights on every entry of the directories on the way
// to the denied paths, except the denied paths and the way itself.
func (rs *landlockRuleset) allowBeside(denied []string, rights uint64, n *int) error {
	isDenied := map[string]bool{}
	onWay := map[string]bool{}
	for _, d := range denied {
		isDenied[d] = true
		for dir := path.Dir(d); ; dir = path.Dir(dir) {
			onWay[dir] = true
			if dir == "/" {
				break
			}
		}
	}
	for dir := range onWay {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
				continue // nothing there yet: nothing to allow
			}
			return fmt.Errorf("landlock: read %s: %w", dir, err)
		}
		for _, e := range ents {
			p := path.Join(dir, e.Name())
			if onWay[p] || isDenied[p] {
				continue
			}
			if e.Type()&os.ModeSymlink != 0 {
				// Rights follow the target, judged where it lives;
				// opening the link would put a rule on the target.
				continue
			}
			grant := rights
			if !e.IsDir() {
				grant &= llFileRights
				if grant == 0 {
					continue
				}
			}
			if *n++; *n > maxLandlockRules {
				return fmt.Errorf("landlock: more than %d entries in the directories on the way to the denied paths", maxLandlockRules)
			}
			if err := rs.allow(p, grant); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolveDenied turns a plan path into the entries it denies: the parent
// resolved (symbolic links in it followed, inside the container's root),
// the last component not, and refused when it is a symbolic link or a
// regular file with other names.
func resolveDenied(p landlock.Path) ([]string, error) {
	clean := path.Clean(p.Path)
	beneath := p.Prefix && strings.HasSuffix(p.Path, "/")
	dir, base := path.Dir(clean), path.Base(clean)
	rdir, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, os.ErrNotExist) {
		// The denied path does not exist, nor its directory: the
		// nearest existing ancestor is on the way, so nothing can be
		// created there under a write plan; under an exec plan a file
		// put there later cannot run.
		return []string{clean}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("landlock: rule %q: resolve %s: %w", p.Rule, dir, err)
	}
	var names []string
	if p.Prefix && !beneath {
		ents, err := os.ReadDir(rdir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("landlock: rule %q: read %s: %w", p.Rule, rdir, err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), base) {
				names = append(names, e.Name())
			}
		}
		if len(names) == 0 {
			// Nothing matches now; rdir is on the way (see above).
			return []string{path.Join(rdir, base)}, nil
		}
	} else {
		names = []string{base}
	}
	var out []string
	for _, name := range names {
		full := path.Join(rdir, name)
		var st unix.Stat_t
		err := unix.Lstat(full, &st)
		switch {
		case errors.Is(err, unix.ENOENT):
		case err != nil:
			return nil, fmt.Errorf("landlock: rule %q: %s: %w", p.Rule, full, err)
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			target, _ := filepath.EvalSymlinks(full)
			return nil, fmt.Errorf("landlock: rule %q denies %s, a symbolic link to %s: Landlock denies files, not names, so denying it would deny %s under every name; name the file itself or give the image a file of its own at %s", p.Rule, full, target, target, full)
		case st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1:
			return nil, fmt.Errorf("landlock: rule %q denies %s, a file with %d hard links: Landlock denies files, not names, and the file would stay reachable under its other names; give the image a file of its own at %s", p.Rule, full, st.Nlink, full)
		case beneath && st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return nil, fmt.Errorf("landlock: rule %q denies beneath %s, which is not a directory", p.Rule, full)
		}
		out = append(out, full)
	}
	return out, nil
}

// allow grants rights beneath (or on) path.
func (rs *landlockRuleset) allow(p string, rights uint64) error {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // gone since it was listed
		}
		return fmt.Errorf("landlock: open %s: %w", p, err)
	}
	defer unix.Close(fd)
	return rs.addRule(fd, rights, p)
}

func (rs *landlockRuleset) addRule(fd int, rights uint64, what string) error {
	attr := unix.LandlockPathBeneathAttr{Allowed_access: rights, Parent_fd: int32(fd)}
	_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rs.fd), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&attr)), 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("landlock: allow %s: %w", what, e)
	}
	return nil
}

// restrict enforces the ruleset on this thread and what it execs. It runs
// while the process still holds CAP_SYS_ADMIN in its user namespace
// (Landlock asks for that or no_new_privs), so the container's own
// no_new_privs setting is left as it was. From ABI 7 on, denials after
// the exec are also logged to audit (where audit is on); the monitor's
// own alert comes from its tracepoints.
func (rs *landlockRuleset) restrict() error {
	if rs == nil {
		return nil
	}
	defer rs.close()
	var flags uintptr
	if rs.abi >= 7 {
		flags = unix.LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(rs.fd), flags, 0); e != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", e)
	}
	return nil
}
