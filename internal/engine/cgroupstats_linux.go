package engine

import (
	"fmt"
	"path/filepath"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"

	"github.com/berth-project/berth/internal/runtime/events"
)

// cgroupStats reads the statistics of the cgroup that process pid (the
// container's init) is in, straight from the cgroup files, in the shape of
// runc's `events --stats`: for runtimes without that command (crun). The
// cgroup is found from the process, so it is right for either cgroup
// driver and for runtimes that nest the container below its scope (crun's
// "container" subgroup on cgroup v2).
func cgroupStats(pid int) (*events.Stats, error) {
	file := fmt.Sprintf("/proc/%d/cgroup", pid)
	rel, err := cgroups.ParseCgroupFile(file)
	if err != nil {
		return nil, fmt.Errorf("stats: the container's cgroup: %w", err)
	}
	cg := &cgroups.Cgroup{Resources: &cgroups.Resources{}}
	var st *cgroups.Stats
	if cgroups.IsCgroup2UnifiedMode() {
		p, ok := rel[""]
		if !ok {
			return nil, fmt.Errorf("stats: %s names no cgroup v2 path", file)
		}
		m, err := fs2.NewManager(cg, filepath.Join("/sys/fs/cgroup", p))
		if err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		if st, err = m.GetStats(); err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		return events.Convert(st), nil
	}
	paths := map[string]string{}
	for ctrl, p := range rel {
		if ctrl == "" {
			continue // the hybrid host's v2 hierarchy: no v1 controller's stats
		}
		mnt, err := cgroups.FindCgroupMountpoint("", ctrl)
		if err != nil {
			continue
		}
		paths[ctrl] = filepath.Join(mnt, p)
	}
	m, err := fs.NewManager(cg, paths)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	if st, err = m.GetStats(); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	return events.Convert(st), nil
}
