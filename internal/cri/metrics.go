package cri

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/secmon"
)

// Metrics are berthd's Prometheus metrics: each RPC's latency and errors,
// the pods and containers by state, and image pulls. They live in a
// registry of their own (no global state); berthd serves it.
type Metrics struct {
	Registry *prometheus.Registry
	latency  *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	pulls    *prometheus.CounterVec
}

// NewMetrics makes the metrics; eng, if set, is asked for the pods and
// containers at each scrape.
func NewMetrics(eng *engine.Engine) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "berth", Subsystem: "cri", Name: "request_duration_seconds",
			Help:    "Latency of CRI requests by method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "cri", Name: "request_errors_total",
			Help: "CRI requests that failed, by method and gRPC code.",
		}, []string{"method", "code"}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "cri", Name: "image_pulls_total",
			Help: "PullImage requests by result (success, failure).",
		}, []string{"result"}),
	}
	m.Registry.MustRegister(m.latency, m.errors, m.pulls,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.Registry.MustRegister(newSecmonCollector(secmon.Options{}))
	if eng != nil {
		m.Registry.MustRegister(&stateCollector{eng: eng,
			pods:       prometheus.NewDesc("berth_cri_pods", "Pod sandboxes by state.", []string{"state"}, nil),
			containers: prometheus.NewDesc("berth_cri_containers", "Containers by state.", []string{"state"}, nil),
		})
	}
	return m
}

// stateCollector counts pods and containers when scraped.
type stateCollector struct {
	eng              *engine.Engine
	pods, containers *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.pods; ch <- c.containers }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if sbs, err := c.eng.ListSandboxes(ctx); err == nil {
		n := map[string]int{engine.SandboxReady: 0, engine.SandboxNotReady: 0}
		for _, sb := range sbs {
			n[sb.State]++
		}
		for st, v := range n {
			ch <- prometheus.MustNewConstMetric(c.pods, prometheus.GaugeValue, float64(v), st)
		}
	}
	if cs, err := c.eng.List(ctx, engine.ListOptions{All: true}); err == nil {
		n := map[string]int{"created": 0, "running": 0, "exited": 0}
		for _, s := range cs {
			if s.Labels[infraLabel] == "" { // kubelet's containers only
				n[s.State]++
			}
		}
		for st, v := range n {
			ch <- prometheus.MustNewConstMetric(c.containers, prometheus.GaugeValue, float64(v), st)
		}
	}
}

// ServerOptions are the gRPC interceptors that measure and log every RPC:
// debug for each call, warn for a failure that is not a plain NotFound
// (kubelet asks for what is gone all the time).
func (m *Metrics) ServerOptions(log *slog.Logger) []grpc.ServerOption {
	observe := func(ctx context.Context, full string, start time.Time, err error) {
		method := full[strings.LastIndex(full, "/")+1:]
		d := time.Since(start)
		if m != nil {
			m.latency.WithLabelValues(method).Observe(d.Seconds())
		}
		code := status.Code(err)
		if err != nil && m != nil {
			m.errors.WithLabelValues(method, code.String()).Inc()
		}
		if m != nil && method == "PullImage" {
			result := "success"
			if err != nil {
				result = "failure"
			}
			m.pulls.WithLabelValues(result).Inc()
		}
		switch {
		case err == nil || errors.Is(err, context.Canceled):
			log.DebugContext(ctx, "rpc", "method", method, "duration", d)
		case code == codes.NotFound:
			log.DebugContext(ctx, "rpc", "method", method, "duration", d, "code", code.String(), "err", err)
		default:
			log.WarnContext(ctx, "rpc failed", "method", method, "duration", d, "code", code.String(), "err", err)
		}
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			start := time.Now()
			resp, err := h(ctx, req)
			observe(ctx, info.FullMethod, start, err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			start := time.Now()
			err := h(srv, ss)
			observe(ss.Context(), info.FullMethod, start, err)
			return err
		}),
	}
}
