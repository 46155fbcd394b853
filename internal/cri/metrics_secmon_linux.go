package cri

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-project/berth/internal/secmon"
)

// secmonCollector reports the runtime monitor's counters (alerts by rule
// and action, lost events, runs without a slot, skipped runs, webhook
// errors, watched containers) when scraped, asking the host's agent over
// its socket. With no agent running (no container has rules) it reports
// nothing: there is nothing to count.
type secmonCollector struct {
	opts                                                    secmon.Options
	alerts, containers, lost, slotFull, skipped, hookErrors *prometheus.Desc
}

func newSecmonCollector(o secmon.Options) *secmonCollector {
	return &secmonCollector{
		opts:       o,
		alerts:     prometheus.NewDesc("berth_secmon_alerts_total", "Runtime monitoring alerts by rule and action taken (alert, deny, kill).", []string{"rule", "action"}, nil),
		containers: prometheus.NewDesc("berth_secmon_containers", "Containers the monitoring agent watches.", nil, nil),
		lost:       prometheus.NewDesc("berth_secmon_events_lost_total", "Events the monitor's BPF programs could not report: no ring-buffer room (the agent down or behind), or no free event slot (berth_secmon_slot_full_total).", nil, nil),
		slotFull:   prometheus.NewDesc("berth_secmon_slot_full_total", "Runs of the monitor's BPF programs that found no free event slot on their CPU: each failed closed where a deny or kill rule could apply (the operation refused, the process killed, the SYN dropped) and lost its report.", nil, nil),
		skipped:    prometheus.NewDesc("berth_secmon_program_runs_skipped_total", "Runs of the monitor's host-wide BPF programs the kernel skipped because the same program was already running on that CPU (commonly the accept program in process context interrupted by a softirq run of itself; BPF LSM programs before Linux 6.2, whose skipped runs went unjudged). Reset when an agent of another version replaces the programs.", nil, nil),
		hookErrors: prometheus.NewDesc("berth_secmon_webhook_errors_total", "Alert webhook posts that failed or were dropped.", nil, nil),
	}
}

func (c *secmonCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.alerts
	ch <- c.containers
	ch <- c.lost
	ch <- c.slotFull
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
	ch <- prometheus.MustNewConstMetric(c.slotFull, prometheus.CounterValue, float64(st.SlotFull))
	ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(st.Skipped))
	ch <- prometheus.MustNewConstMetric(c.hookErrors, prometheus.CounterValue, float64(st.WebhookErrors))
	for rule, byAction := range st.Alerts {
		for action, n := range byAction {
			ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.CounterValue, float64(n), rule, action)
		}
	}
}
