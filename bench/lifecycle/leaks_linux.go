package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const cgroupRoot = "/sys/fs/cgroup"

// checkLeaks looks for what the runtimes should have removed: cgroup
// directories named after this run's container ids (at any depth a runtime
// may nest them, e.g. runc under the caller's memory cgroup) and entries
// left in the runtimes' --root directories. It removes leaked cgroups that
// are empty, so a leak is reported once and does not pile up, and says which
// it could not remove.
func checkLeaks(ids map[string]bool, roots []string) []string {
	var found []string
	filepath.WalkDir(cgroupRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(strings.TrimPrefix(path, cgroupRoot), "/") > 6 {
			return filepath.SkipDir
		}
		if ids[d.Name()] {
			found = append(found, path)
		}
		return nil
	})
	// Children before parents.
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	var leaks []string
	for _, dir := range found {
		if err := os.Remove(dir); err != nil {
			leaks = append(leaks, fmt.Sprintf("cgroup %s (could not remove: %v)", dir, err))
		} else {
			leaks = append(leaks, fmt.Sprintf("cgroup %s (removed)", dir))
		}
	}
	for _, root := range roots {
		entries, err := os.ReadDir(root)
		if err != nil {
			leaks = append(leaks, fmt.Sprintf("runtime root %s: %v", root, err))
			continue
		}
		for _, e := range entries {
			leaks = append(leaks, "runtime state "+filepath.Join(root, e.Name()))
		}
	}
	return leaks
}
