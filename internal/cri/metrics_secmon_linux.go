package cri

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-project/berth/internal/secmon"
)

// secmonCollector reports the runtime monitor's counters (alerts by rule
// and action, lost events, webhook errors, watched containers) when
// scraped, asking the host's agent over its socket. With no agent running
// (no container has rules) it reports nothing: there is nothing to count.
type secmonCollector struct {
	opts                                          secmon.Options
	alerts, containers, lost, skipped, hookErrors *prometheus.Desc
}

func newSecmonCollector(o secmon.Options) *secmonCollector {
	return &secmonCollector{
		opts:       o,
		alerts:     prometheus.NewDesc("berth_secmon_alerts_total", "Runtime monitoring alerts by rule and action taken (alert, deny, kill).", []string{"rule", "action"}, nil),
		containers: prometheus.NewDesc("berth_secmon_containers", "Containers the monitoring agent watches.", nil, nil),
		lost:       prometheus.NewDesc("berth_secmon_events_lost_total", "Events the kernel had no ring-buffer room for.", nil, nil),
		skipped:    prometheus.NewDesc("berth_secmon_program_runs_skipped_total", "Runs of the monitor's BPF programs the kernel skipped (a run of the same program was preempted on that CPU): operations that went unjudged.", nil, nil),
		hookErrors: prometheus.NewDesc("berth_secmon_webhook_errors_total", "Alert webhook posts that failed or were dropped.", nil, nil),
	}
}

func (c *secmonCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.alerts
	ch <- c.containers
	ch <- c.lost
	ch <- c.skipped
	ch <- c.hookErrors
}

func (c *secmonCollector) Collect(ch chan<- prometheus.Metric) {
	// A scrape must not hang on an agent that does not answer.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := secmon.AgentStats(ctx, c.opts)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.containers, prometheus.GaugeValue, float64(st.Containers))
	ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(st.Lost))
	ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(st.Skipped))
	ch <- prometheus.MustNewConstMetric(c.hookErrors, prometheus.CounterValue, float64(st.WebhookErrors))
	for rule, byAction := range st.Alerts {
		for action, n := range byAction {
			ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.CounterValue, float64(n), rule, action)
		}
	}
}
