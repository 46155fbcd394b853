package testutil

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Leaks names what a container may leave behind on the host.
type Leaks struct {
	Root   string // the runtime's --root: Root/ID must be gone
	ID     string // no cgroup directory of this name may remain
	Pids   []int  // none of these processes may remain
	Bundle string // nothing may stay mounted under the bundle (host mount namespace)
}

// CheckNoLeaks reports (t.Errorf) every trace of a container that is still on
// the host: its state directory, a cgroup directory named after its id on
// any hierarchy under /sys/fs/cgroup, one of its processes, or a mount under
// its bundle.
func CheckNoLeaks(t testing.TB, l Leaks) {
	t.Helper()
	for _, p := range LeakedTraces(l) {
		t.Errorf("container %s left %s", l.ID, p)
	}
}

// LeakedTraces returns descriptions of what CheckNoLeaks would report.
func LeakedTraces(l Leaks) []string {
	var found []string
	if l.Root != "" && l.ID != "" {
		if _, err := os.Lstat(filepath.Join(l.Root, l.ID)); err == nil {
			found = append(found, "state directory "+filepath.Join(l.Root, l.ID))
		}
	}
	if l.ID != "" {
		for _, d := range FindCgroups(l.ID) {
			found = append(found, "cgroup "+d)
		}
	}
	for _, pid := range l.Pids {
		if state, ok := procState(pid); ok {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			found = append(found, fmt.Sprintf("process %d (state %s, %q)", pid, state, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	if l.Bundle != "" {
		for _, m := range MountsUnder(l.Bundle) {
			found = append(found, "mount "+m)
		}
	}
	return found
}

// FindCgroups returns every cgroup directory named name (or ending in
// name, as with systemd's "<prefix>-<id>.scope") on any hierarchy under
// /sys/fs/cgroup, looking a few levels deep: a runtime puts a container's
// cgroup below its cgroupsPath, or below its own cgroup.
func FindCgroups(name string) []string {
	var found []string
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hierarchies {
		filepath.WalkDir(h, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.Count(strings.TrimPrefix(p, h), "/") > 5 {
				return fs.SkipDir
			}
			base := d.Name()
			if base == name || strings.HasSuffix(base, "-"+name+".scope") {
				found = append(found, p)
				return fs.SkipDir
			}
			return nil
		})
	}
	return found
}

// procState returns the state letter of pid from /proc, and whether the
// process exists.
func procState(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	// The state follows the parenthesised command name, which may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return "?", true
	}
	return s[i+2 : i+3], true
}

// MountsUnder returns the mount points in the test's mount namespace at or
// below dir.
func MountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			found = append(found, mp)
		}
	}
	return found
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
