package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// runResult is what one runtime did in one scenario.
type runResult struct {
	rt         runtimeInfo
	samples    []sample // timed
	rssSamples []sample // untimed, with RuntimeRSS
	err        error
}

// report is the benchmark's output; its JSON form is the -json output.
type report struct {
	N         int              `json:"n"`
	Warmup    int              `json:"warmup"`
	Order     string           `json:"order"`
	Notes     []string         `json:"notes,omitempty"`
	Scenarios []scenarioResult `json:"scenarios"`
	Leaks     []string         `json:"leaks"`
}

type scenarioResult struct {
	Name     string           `json:"name"`
	About    string           `json:"about"`
	Runtimes []runtimeSummary `json:"runtimes"`
	Ratios   []ratio          `json:"ratios"`
}

// runtimeSummary holds milliseconds and MiB.
type runtimeSummary struct {
	Runtime    string  `json:"runtime"`
	Path       string  `json:"path"`
	Version    string  `json:"version"`
	Containers int     `json:"containers"`
	MeanMs     float64 `json:"mean_ms"`
	P50Ms      float64 `json:"p50_ms"`
	P95Ms      float64 `json:"p95_ms"`
	CreateMs   float64 `json:"create_mean_ms"`
	StartMs    float64 `json:"start_mean_ms"`
	WaitMs     float64 `json:"wait_mean_ms"`
	DeleteMs   float64 `json:"delete_mean_ms"`
	// RSSContainers is how many containers RSS was measured on; 0 means
	// it was not (the RSS fields are then 0).
	RSSContainers int `json:"rss_containers"`
	// PeakRSSMiB is the largest ru_maxrss of any create, start or delete.
	PeakRSSMiB          float64            `json:"peak_rss_mib"`
	PeakRSSByCommandMiB map[string]float64 `json:"peak_rss_by_command_mib"`
	// MedianRSSMiB is the median over containers of the largest ru_maxrss
	// of their create, start and delete: the peak without outliers.
	MedianRSSMiB float64 `json:"median_rss_mib"`
	Error        string  `json:"error,omitempty"`
}

// ratio compares a runtime with a peer: below 1 means less time or memory.
type ratio struct {
	Runtime string  `json:"runtime"`
	Versus  string  `json:"versus"`
	Time    float64 `json:"time"`
	// TimeBlocks are the time ratios of ratioBlocks consecutive blocks of
	// rounds, lowest first: their spread is how far the machine's drifting
	// load moves the ratio in one run.
	TimeBlocks []float64 `json:"time_blocks,omitempty"`
	RSS        float64   `json:"rss"` // 0 when RSS was not measured
}

// ratioBlocks is how many blocks of consecutive rounds the time ratios are
// also computed over. On a shared VM the load drifts within a run: a ratio
// whose blocks span 0.87-0.94 supports no claim of 0.90.
const ratioBlocks = 5

func summarize(sc scenario, results []runResult) scenarioResult {
	out := scenarioResult{Name: sc.name, About: sc.about}
	totals := map[string][]time.Duration{}
	for _, r := range results {
		for _, x := range r.samples {
			totals[r.rt.Name] = append(totals[r.rt.Name], x.Total)
		}
	}
	for _, r := range results {
		s := runtimeSummary{
			Runtime: r.rt.Name, Path: r.rt.Path, Version: r.rt.Version,
			Containers: len(r.samples), PeakRSSByCommandMiB: map[string]float64{},
		}
		if r.err != nil {
			s.Error = r.err.Error()
		}
		if len(r.samples) > 0 {
			totals := make([]time.Duration, len(r.samples))
			var create, start, wait, del time.Duration
			for i, x := range r.samples {
				totals[i] = x.Total
				create, start, wait, del = create+x.Create, start+x.Start, wait+x.Wait, del+x.Delete
			}
			n := time.Duration(len(r.samples))
			s.MeanMs = ms((create + start + wait + del) / n)
			s.CreateMs, s.StartMs, s.WaitMs, s.DeleteMs = ms(create/n), ms(start/n), ms(wait/n), ms(del/n)
			s.P50Ms, s.P95Ms = ms(percentile(totals, 50)), ms(percentile(totals, 95))
		}
		if len(r.rssSamples) > 0 {
			s.RSSContainers = len(r.rssSamples)
			peaks := make([]time.Duration, len(r.rssSamples)) // KiB, to share percentile
			for i, x := range r.rssSamples {
				for cmd, kib := range x.RuntimeRSS {
					peaks[i] = max(peaks[i], time.Duration(kib))
					s.PeakRSSByCommandMiB[cmd] = math.Max(s.PeakRSSByCommandMiB[cmd], mib(kib))
					s.PeakRSSMiB = math.Max(s.PeakRSSMiB, mib(kib))
				}
			}
			s.MedianRSSMiB = mib(int64(percentile(peaks, 50)))
		}
		out.Runtimes = append(out.Runtimes, s)
	}
	out.Ratios = ratios(out.Runtimes, totals)
	if out.Ratios == nil {
		out.Ratios = []ratio{}
	}
	return out
}

// ratios compares every runtime with each peer listed after it in "runc,
// crun" order: berth with runc and crun, crun with runc. A runtime that
// failed is compared with nothing. totals are each runtime's container
// times in round order, for the blocks.
func ratios(rs []runtimeSummary, totals map[string][]time.Duration) []ratio {
	byName := map[string]runtimeSummary{}
	for _, r := range rs {
		if r.Error == "" && r.Containers > 0 {
			byName[r.Runtime] = r
		}
	}
	var out []ratio
	for _, pair := range [][2]string{{"berth", "runc"}, {"berth", "crun"}, {"crun", "runc"}} {
		a, okA := byName[pair[0]]
		b, okB := byName[pair[1]]
		if !okA || !okB || b.MeanMs == 0 {
			continue
		}
		q := ratio{Runtime: a.Runtime, Versus: b.Runtime, Time: round2(a.MeanMs / b.MeanMs),
			TimeBlocks: blockRatios(totals[a.Runtime], totals[b.Runtime])}
		if a.RSSContainers > 0 && b.RSSContainers > 0 {
			q.RSS = round2(a.PeakRSSMiB / b.PeakRSSMiB)
		}
		out = append(out, q)
	}
	return out
}

// blockRatios splits a's and b's times, taken in the same rounds (the
// runtimes take turns, one container each), into ratioBlocks blocks of
// consecutive rounds and returns each block's sum(a)/sum(b), lowest first;
// nil with fewer than two rounds per block.
func blockRatios(a, b []time.Duration) []float64 {
	size := min(len(a), len(b)) / ratioBlocks
	if size < 2 {
		return nil
	}
	out := make([]float64, 0, ratioBlocks)
	for j := range ratioBlocks {
		var sa, sb time.Duration
		for i := j * size; i < (j+1)*size; i++ {
			sa, sb = sa+a[i], sb+b[i]
		}
		if sb == 0 {
			return nil
		}
		out = append(out, round2(float64(sa)/float64(sb)))
	}
	sort.Float64s(out)
	return out
}

// percentile is the nearest-rank percentile p of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := (p*len(s) + 99) / 100 // ceil(p/100 * n)
	if rank < 1 {
		rank = 1
	}
	return s[rank-1]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }
func mib(kib int64) float64      { return math.Round(float64(kib)/1024*10) / 10 }
func round2(x float64) float64   { return math.Round(x*100) / 100 }

func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "lifecycle: create → start → wait → delete of busybox /bin/true, %d containers per runtime after %d warm-up, runtimes %s\n",
		r.N, r.Warmup, r.Order)
	for _, n := range r.Notes {
		fmt.Fprintln(w, n)
	}
	for _, sc := range r.Scenarios {
		fmt.Fprintf(w, "\n%s: %s\n", sc.Name, sc.About)
		rows := [][]string{{"runtime", "version", "n", "mean ms", "p50 ms", "p95 ms",
			"create", "start", "wait", "delete", "peak RSS MiB", "p50 RSS MiB"}}
		for _, s := range sc.Runtimes {
			rows = append(rows, []string{s.Runtime, s.Version, fmt.Sprint(s.Containers),
				f2(s.MeanMs), f2(s.P50Ms), f2(s.P95Ms), f2(s.CreateMs), f2(s.StartMs), f2(s.WaitMs), f2(s.DeleteMs),
				rssCell(s, s.PeakRSSMiB), rssCell(s, s.MedianRSSMiB)})
		}
		writeTable(w, rows, 2)
		for _, s := range sc.Runtimes {
			if s.Error != "" {
				fmt.Fprintf(w, "%s FAILED after %d containers: %s\n", s.Runtime, s.Containers, s.Error)
			}
		}
		for _, q := range sc.Ratios {
			rss := ""
			if q.RSS > 0 {
				rss = fmt.Sprintf(", peak RSS %.2fx", q.RSS)
			}
			blocks := ""
			if b := q.TimeBlocks; len(b) > 0 {
				blocks = fmt.Sprintf(" (%d blocks of %d rounds: %.2f-%.2fx)", len(b), r.N/len(b), b[0], b[len(b)-1])
			}
			fmt.Fprintf(w, "%s/%s time %.2fx%s%s\n", q.Runtime, q.Versus, q.Time, blocks, rss)
		}
	}
	fmt.Fprintln(w)
	if len(r.Leaks) == 0 {
		fmt.Fprintln(w, "leaks: none (no berth-bench-* cgroups or runtime state left)")
	}
	for _, l := range r.Leaks {
		fmt.Fprintln(w, "LEAK:", l)
	}
}

func rssCell(s runtimeSummary, x float64) string {
	if s.RSSContainers == 0 {
		return "-"
	}
	return f1(x)
}

func f1(x float64) string { return fmt.Sprintf("%.1f", x) }
func f2(x float64) string { return fmt.Sprintf("%.2f", x) }

// writeTable aligns rows in columns, two spaces apart: the first textCols
// columns to the left, the numbers to the right.
func writeTable(w io.Writer, rows [][]string, textCols int) {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < textCols {
				b.WriteString(cell + pad)
			} else {
				b.WriteString(pad + cell)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// problems is the error the benchmark exits with after printing the report.
func (r *report) problems() error {
	var errs []string
	for _, sc := range r.Scenarios {
		for _, s := range sc.Runtimes {
			if s.Error != "" {
				errs = append(errs, fmt.Sprintf("%s failed in %s", s.Runtime, sc.Name))
			}
		}
	}
	if len(r.Leaks) > 0 {
		errs = append(errs, fmt.Sprintf("%d leaks", len(r.Leaks)))
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, ", "))
}
