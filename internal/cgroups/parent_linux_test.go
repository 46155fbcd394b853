package cgroups

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
)

// The engine's containers share DefaultParent, and the last one's Destroy
// removes it: a create racing that removal must still succeed (mkdir of
// our own directory after the parent went, or cpuset's copy of the
// parent's cpus into a parent that was just removed).
func TestApplyRacesSharedParentRemoval(t *testing.T) {
	testutil.RequiresRoot(t)
	if IsV2() {
		t.Skip("the race is of cgroup v1's per-controller parents (cpuset copies cpus/mems); this host runs cgroup v2 only")
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpuset"); err != nil {
		t.Skip("no cgroup v1 cpuset hierarchy on this host")
	}
	const workers, rounds = 4, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				id := fmt.Sprintf("berth-unit-parentrace-%d-%d-%d", os.Getpid(), w, r)
				m, err := New(Config{ID: id, CgroupsPath: DefaultParent + "/" + id})
				if err == nil {
					err = m.Apply(-1)
					if derr := m.Destroy(); err == nil && derr != nil {
						err = derr
					}
				}
				if err != nil {
					errs <- fmt.Errorf("round %d of worker %d: %w", r, w, err)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
