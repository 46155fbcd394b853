package monitor

import (
	"path/filepath"
	"sync"
	"testing"
)

// TestStatusFileKeepsTheLastChange: setStatus from two goroutines at once
// (the run loop, and a client's "stopping") leaves on disk the status as
// last changed, not an older one written late (the file once said
// "restarting" after the monitor had set "exited" and gone).
func TestStatusFileKeepsTheLastChange(t *testing.T) {
	s := &server{cfg: Config{StateDir: t.TempDir()}}
	for round := 0; round < 200; round++ {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					s.setStatus(func(st *Status) { st.RestartCount++ })
				}
			}()
		}
		wg.Wait()
		st, err := ReadStatus(filepath.Join(s.cfg.StateDir, statusFile))
		if err != nil {
			t.Fatal(err)
		}
		if want := s.snapshot().RestartCount; st.RestartCount != want {
			t.Fatalf("round %d: the status file says %d restarts, the monitor %d", round, st.RestartCount, want)
		}
	}
}
