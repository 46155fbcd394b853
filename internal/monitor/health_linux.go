package monitor

import (
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// healthLoop probes the container every Interval until stop closes.
func (s *server) healthLoop(started time.Time, stop <-chan struct{}) {
	c := withHealthDefaults(*s.cfg.Health)
	h := Health{Status: HealthStarting, Log: []HealthLog{}}
	s.writeHealth(h)
	t := time.NewTimer(c.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		probe := s.probe(c)
		select {
		case <-stop:
			return // the container ended under the probe: it says nothing
		default:
		}
		h = nextHealth(h, c, probe, time.Since(started) < c.StartPeriod)
		s.writeHealth(h)
		t.Reset(c.Interval)
	}
}

// probe runs the health command once through `runtime exec`.
func (s *server) probe(c HealthConfig) HealthLog {
	l := HealthLog{Start: time.Now(), ExitCode: -1}
	defer func() { l.End = time.Now() }()
	out, err := os.CreateTemp(s.cfg.StateDir, "health-out-")
	if err != nil {
		l.Output = err.Error()
		return l
	}
	defer os.Remove(out.Name())
	defer out.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		l.Output = err.Error()
		return l
	}
	defer devnull.Close()
	args := []string{s.cfg.Runtime}
	if s.cfg.RuntimeRoot != "" {
		args = append(args, "--root", s.cfg.RuntimeRoot)
	}
	args = append(append(args, s.cfg.RuntimeArgs...), "exec", "--process", c.ProcessFile, s.cfg.ID)
	p, err := os.StartProcess(s.cfg.Runtime, args, &os.ProcAttr{Files: []*os.File{devnull, out, out}, Sys: &unix.SysProcAttr{Setpgid: true}})
	if err != nil {
		l.Output = err.Error()
		return l
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(c.Timeout, func() { timedOut.Store(true); p.Kill() })
	ps, _ := p.Wait()
	timer.Stop()
	b, _ := io.ReadAll(io.LimitReader(mustSeekStart(out), healthOutputMax))
	l.Output = string(b)
	switch {
	case timedOut.Load():
		l.Output = "Health check exceeded timeout (" + c.Timeout.String() + ")"
	case ps != nil:
		l.ExitCode = ps.ExitCode()
	}
	return l
}

func mustSeekStart(f *os.File) *os.File {
	f.Seek(0, io.SeekStart)
	return f
}

func (s *server) writeHealth(h Health) {
	p := filepath.Join(s.cfg.StateDir, healthFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, encodeHealth(h), 0o600); err == nil {
		os.Rename(tmp, p)
	}
}
