package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/pathrs"
	"golang.org/x/sys/unix"
)

// maxIDFileSize bounds how much of an image's /etc/passwd or /etc/group is
// read: the image is untrusted, and a real file is a few kilobytes.
const maxIDFileSize = 4 << 20

// maxIDLine bounds one line of those files.
const maxIDLine = 64 << 10

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	Name string
	UID  uint32
	GID  uint32
	Home string
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	Name    string
	GID     uint32
	Members []string
}

// execUser is the identity a container's process runs as.
type execUser struct {
	UID            uint32
	GID            uint32
	AdditionalGids []uint32
	Home           string // "" when the user has no passwd entry
}

// resolveUser resolves Docker's --user forms ("", "uid", "uid:gid",
// "name", "name:group", mixes of both) against rootfs's /etc/passwd and
// /etc/group, as runc's user.GetExecUser does. The files are opened inside
// rootfs only (a symlink in the image cannot reach the host's files) and
// read with a size bound.
func resolveUser(ctx context.Context, rootfs, spec string) (execUser, error) {
	if err := ctx.Err(); err != nil {
		return execUser{}, err
	}
	userArg, groupArg, hasGroup := strings.Cut(spec, ":")
	if hasGroup && groupArg == "" {
		return execUser{}, fmt.Errorf("user %q: empty group: %w", spec, errdefs.ErrInvalidArgument)
	}
	if userArg == "" {
		if hasGroup {
			return execUser{}, fmt.Errorf("user %q: empty user: %w", spec, errdefs.ErrInvalidArgument)
		}
		userArg = "0"
	}
	users, err := readIDFile(rootfs, "/etc/passwd", parsePasswd)
	if err != nil {
		return execUser{}, err
	}

	var u execUser
	var matched *passwdEntry
	uid, numeric, err := parseID(userArg)
	if err != nil {
		return execUser{}, fmt.Errorf("user %q: %w", spec, err)
	}
	for i := range users {
		if (numeric && users[i].UID == uid) || (!numeric && users[i].Name == userArg) {
			matched = &users[i]
			break
		}
	}
	switch {
	case matched != nil:
		u = execUser{UID: matched.UID, GID: matched.GID, Home: matched.Home}
	case numeric:
		// A numeric uid needs no passwd entry (Docker): it runs with gid 0.
		u = execUser{UID: uid}
	default:
		return execUser{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file: %w", userArg, errdefs.ErrInvalidArgument)
	}

	if !hasGroup && matched == nil {
		return u, nil
	}
	groups, err := readIDFile(rootfs, "/etc/group", parseGroup)
	if err != nil {
		return execUser{}, err
	}
	if hasGroup {
		gid, numeric, err := parseID(groupArg)
		if err != nil {
			return execUser{}, fmt.Errorf("user %q: group: %w", spec, err)
		}
		found := numeric
		for _, g := range groups {
			if (numeric && g.GID == gid) || (!numeric && g.Name == groupArg) {
				gid, found = g.GID, true
				break
			}
		}
		if !found {
			return execUser{}, fmt.Errorf("unable to find group %s: no matching entries in group file: %w", groupArg, errdefs.ErrInvalidArgument)
		}
		// An explicit group replaces the passwd group and the
		// supplementary ones, as runc does.
		u.GID = gid
		return u, nil
	}
	for _, g := range groups {
		for _, m := range g.Members {
			if m == matched.Name && g.GID != u.GID && !containsGID(u.AdditionalGids, g.GID) {
				u.AdditionalGids = append(u.AdditionalGids, g.GID)
				break
			}
		}
	}
	return u, nil
}

func containsGID(gids []uint32, gid uint32) bool {
	for _, g := range gids {
		if g == gid {
			return true
		}
	}
	return false
}

// parseID says whether s is a numeric id, and refuses numbers a uid_t
// cannot hold (runc refuses them too; the kernel would truncate).
func parseID(s string) (uint32, bool, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n >= math.MaxUint32 { // 4294967295 is (uid_t)-1, "no id"
		return 0, false, fmt.Errorf("id %s is out of range (0 to %d): %w", s, uint32(math.MaxUint32-1), errdefs.ErrInvalidArgument)
	}
	return uint32(n), true, nil
}

// readIDFile opens name inside rootfs and parses it. A missing file is an
// empty one (many minimal images have none); anything but a regular file
// is refused, because opening a FIFO or a device from a hostile image
// could block or read forever.
func readIDFile[T any](rootfs, name string, parse func(io.Reader) ([]T, error)) ([]T, error) {
	root, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs %s: %w", rootfs, err)
	}
	defer root.Close()
	h, err := pathrs.Open(root, name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read the image's %s: %w", name, err)
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat the image's %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("the image's %s is not a regular file: %w", name, errdefs.ErrInvalidArgument)
	}
	if st.Size > maxIDFileSize {
		return nil, fmt.Errorf("the image's %s is %d bytes, more than the %d allowed: %w", name, st.Size, maxIDFileSize, errdefs.ErrInvalidArgument)
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open the image's %s: %w", name, err)
	}
	defer f.Close()
	// The file may grow between fstat and read: bound the read too.
	data, err := io.ReadAll(io.LimitReader(f, maxIDFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the image's %s: %w", name, err)
	}
	if len(data) > maxIDFileSize {
		return nil, fmt.Errorf("the image's %s is more than the %d bytes allowed: %w", name, maxIDFileSize, errdefs.ErrInvalidArgument)
	}
	entries, err := parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("the image's %s: %w", name, err)
	}
	return entries, nil
}

// idFileLines calls fn with the colon-separated fields of each
// non-empty, non-comment line of r.
func idFileLines(r io.Reader, fn func(fields []string)) error {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), maxIDLine)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("parse: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// parsePasswd reads /etc/passwd lines (name:password:uid:gid:gecos:home:
// shell). Lines whose ids are not numbers are skipped rather than read as
// 0, which would turn a garbled line into root.
func parsePasswd(r io.Reader) ([]passwdEntry, error) {
	var out []passwdEntry
	err := idFileLines(r, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, ok1, err1 := parseID(f[2])
		gid, ok2, err2 := parseID(f[3])
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			return
		}
		e := passwdEntry{Name: f[0], UID: uid, GID: gid}
		if len(f) > 5 {
			e.Home = f[5]
		}
		out = append(out, e)
	})
	return out, err
}

// parseGroup reads /etc/group lines (name:password:gid:member,member).
func parseGroup(r io.Reader) ([]groupEntry, error) {
	var out []groupEntry
	err := idFileLines(r, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, ok, err := parseID(f[2])
		if !ok || err != nil {
			return
		}
		e := groupEntry{Name: f[0], GID: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					e.Members = append(e.Members, m)
				}
			}
		}
		out = append(out, e)
	})
	return out, err
}

// resolveGroup turns a --group-add value (a number, or a name in the
// image's /etc/group) into a gid.
func resolveGroup(rootfs, g string) (uint32, error) {
	gid, numeric, err := parseID(g)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", g, err)
	}
	if numeric {
		return gid, nil
	}
	groups, err := readIDFile(rootfs, "/etc/group", parseGroup)
	if err != nil {
		return 0, err
	}
	for _, e := range groups {
		if e.Name == g {
			return e.GID, nil
		}
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in group file: %w", g, errdefs.ErrInvalidArgument)
}
