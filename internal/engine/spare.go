package engine

import (
	"sync"

	"github.com/berth-project/berth/internal/monitor"
)

// spareSlot holds at most one spare monitor (Options.SpareMonitor): a
// container start takes it, and a new one is started in the background
// for the next start, so that the Go start-up of a monitor is mostly paid
// off the critical path (while the next pod's CNI plugins run).
type spareSlot struct {
	mu      sync.Mutex
	spare   *monitor.Spare
	filling bool
	closed  bool
}

// takeSpare returns the spare monitor, or nil if there is none (spares
// are off, or the last one was taken and its successor is not up yet),
// and starts its successor.
func (e *Engine) takeSpare() *monitor.Spare {
	if !e.opts.SpareMonitor {
		return nil
	}
	e.spares.mu.Lock()
	s := e.spares.spare
	e.spares.spare = nil
	e.spares.mu.Unlock()
	if s != nil && !s.Fresh() {
		s.Close()
		s = nil
	}
	e.fillSpare()
	return s
}

// fillSpare starts a spare monitor in the background unless one is there
// or on its way.
func (e *Engine) fillSpare() {
	if !e.opts.SpareMonitor || e.opts.MonitorBin == "" {
		return
	}
	e.spares.mu.Lock()
	defer e.spares.mu.Unlock()
	if e.spares.closed || e.spares.filling || e.spares.spare != nil {
		return
	}
	e.spares.filling = true
	go func() {
		s, err := monitor.NewSpare(e.opts.MonitorBin, e.opts.RunRoot)
		if err != nil {
			e.warn("spare monitor: %v", err)
		}
		e.spares.mu.Lock()
		defer e.spares.mu.Unlock()
		e.spares.filling = false
		if s == nil {
			return
		}
		if e.spares.closed || e.spares.spare != nil {
			s.Close()
			return
		}
		e.spares.spare = s
	}()
}

// closeSpare ends the spare monitor, and no new one is started.
func (e *Engine) closeSpare() {
	e.spares.mu.Lock()
	defer e.spares.mu.Unlock()
	e.spares.closed = true
	if e.spares.spare != nil {
		e.spares.spare.Close()
		e.spares.spare = nil
	}
}
