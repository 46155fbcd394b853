package monitor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
)

// HealthConfig is a container's health check, run by its monitor while the
// container runs (Docker's HEALTHCHECK and --health-* flags).
type HealthConfig struct {
	// ProcessFile is a runtime-spec process (JSON) run with `runtime exec
	// --process`: the probe command in the container's identity.
	ProcessFile string        `json:"processFile"`
	Interval    time.Duration `json:"interval,omitempty"`    // default 30 s
	Timeout     time.Duration `json:"timeout,omitempty"`     // default 30 s
	StartPeriod time.Duration `json:"startPeriod,omitempty"` // failures in it do not count
	Retries     int           `json:"retries,omitempty"`     // default 3
}

// Health is Docker's .State.Health, kept in StateDir/health.json.
type Health struct {
	Status        string      `json:"Status"` // starting, healthy, unhealthy
	FailingStreak int         `json:"FailingStreak"`
	Log           []HealthLog `json:"Log"`
}

// HealthLog is one probe.
type HealthLog struct {
	Start    time.Time `json:"Start"`
	End      time.Time `json:"End"`
	ExitCode int       `json:"ExitCode"`
	Output   string    `json:"Output"`
}

// Health states.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

const (
	healthFile = "health.json"
	// healthLogKeep is how many probes Health.Log keeps, as Docker.
	healthLogKeep = 5
	// healthOutputMax bounds a probe's output kept, as Docker's 4 KiB.
	healthOutputMax = 4096
)

// ReadHealth reads the health of the container whose monitor state is in
// stateDir; ErrNotFound when it has no health check or has not started.
func ReadHealth(stateDir string) (Health, error) {
	var h Health
	data, err := os.ReadFile(filepath.Join(stateDir, healthFile))
	if err != nil {
		if os.IsNotExist(err) {
			return h, fmt.Errorf("read container health: %w", errdefs.ErrNotFound)
		}
		return h, fmt.Errorf("read container health: %w", err)
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return h, fmt.Errorf("parse container health: %w", err)
	}
	return h, nil
}

// encodeHealth encodes h as encoding/json would (the monitor does not link
// encoding/json).
func encodeHealth(h Health) []byte {
	var w jsonWriter
	w.str("Status", h.Status)
	w.int("FailingStreak", h.FailingStreak)
	logs := []byte{'['}
	for i, l := range h.Log {
		if i > 0 {
			logs = append(logs, ',')
		}
		var lw jsonWriter
		lw.time("Start", l.Start)
		lw.time("End", l.End)
		lw.int("ExitCode", l.ExitCode)
		lw.str("Output", l.Output)
		logs = append(logs, lw.done()...)
	}
	logs = append(logs, ']')
	w.raw("Log", logs)
	return w.done()
}

// withHealthDefaults fills Docker's defaults.
func withHealthDefaults(c HealthConfig) HealthConfig {
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 3
	}
	return c
}

// nextHealth is h after a probe that exited with code (and output out),
// started inStart of the start period: a success makes it healthy, Retries
// failures in a row unhealthy; failures in the start period do not count.
func nextHealth(h Health, c HealthConfig, probe HealthLog, inStart bool) Health {
	if len(probe.Output) > healthOutputMax {
		probe.Output = probe.Output[:healthOutputMax]
	}
	h.Log = append(h.Log, probe)
	if len(h.Log) > healthLogKeep {
		h.Log = append([]HealthLog{}, h.Log[len(h.Log)-healthLogKeep:]...)
	}
	switch {
	case probe.ExitCode == 0:
		h.Status, h.FailingStreak = HealthHealthy, 0
	case inStart:
	default:
		h.FailingStreak++
		if h.FailingStreak >= c.Retries {
			h.Status = HealthUnhealthy
		}
	}
	return h
}
