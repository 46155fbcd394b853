// Command report prints the table of a conformance run made by
// bench/conformance/run.sh: per validation program, the TAP results of the
// runtime under test beside the reference runtime's, then every failure of
// the runtime under test with its diagnostics, and every TAP line whose
// result differs between the two.
//
//	go run ./bench/conformance/report -results DIR -runtime LABEL [-ref LABEL]
//
// DIR/LABEL/ holds, per validation program NAME: NAME.tap (its stdout),
// NAME.stderr, NAME.rc (its exit status) and optionally
// NAME.leftover-{containers,cgroups,mounts} (what the run cleaned up after it).
//
// Exit status 1 when the runtime under test fails a TAP line (or a program
// errors) where the reference does not, or fails anything when there is no
// reference; 0 otherwise; 2 on bad usage.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

func main() {
	results := flag.String("results", "", "results directory of run.sh")
	ut := flag.String("runtime", "", "label (subdirectory) of the runtime under test")
	ref := flag.String("ref", "", "label of the reference runtime (optional)")
	detail := flag.Int("detail-lines", 40, "lines of diagnostics printed per failing TAP line")
	flag.Parse()
	if *results == "" || *ut == "" {
		flag.Usage()
		os.Exit(2)
	}
	r := &Report{Dir: *results, UT: *ut, Ref: *ref, DetailLines: *detail}
	regressions, err := r.Write(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(2)
	}
	if regressions > 0 {
		os.Exit(1)
	}
}

// Run is one validation program's outcome for one runtime.
type Run struct {
	Test     string
	TAP      *TAP
	RC       int
	Stderr   string
	Leftover map[string]string // kind -> what was left behind
}

// Status summarizes how the program ended, apart from its TAP results.
func (r *Run) Status() string {
	n := len(r.TAP.Points)
	switch {
	case r.RC == 124 || r.RC == 137:
		return "TIMEOUT"
	case n == 0 && r.TAP.Plan < 0 && r.RC == 0:
		// process_rlimits_fail and the like print nothing when the
		// runtime refused the config as it should.
		return "ok(no TAP)"
	case n == 0 && r.TAP.Plan < 0:
		return fmt.Sprintf("ERROR(rc=%d)", r.RC)
	case r.TAP.Plan < 0:
		return fmt.Sprintf("NOPLAN(rc=%d)", r.RC)
	case r.TAP.Plan != n:
		return fmt.Sprintf("PLAN(%d/%d)", n, r.TAP.Plan)
	case r.RC != 0:
		return fmt.Sprintf("rc=%d", r.RC)
	}
	return "ok"
}

// Bad says whether the run shows any problem of the runtime.
func (r *Run) Bad() bool {
	return r.TAP.Counts().Fail > 0 || len(r.TAP.ErrorOrphans()) > 0 || !r.StatusOK() || innerFails(r.TAP) > 0
}

func (r *Run) StatusOK() bool { return strings.HasPrefix(r.Status(), "ok") }

func innerFails(t *TAP) int {
	n := 0
	for _, p := range t.Points {
		if p.Inner != nil {
			n += p.Inner.Counts().Fail + innerFails(p.Inner)
		}
	}
	return n
}

func loadRun(dir, test string) (*Run, error) {
	tap, err := os.ReadFile(filepath.Join(dir, test+".tap"))
	if err != nil {
		return nil, err
	}
	r := &Run{Test: test, TAP: ParseTAP(string(tap)), RC: -1, Leftover: map[string]string{}}
	if b, err := os.ReadFile(filepath.Join(dir, test+".rc")); err == nil {
		r.RC, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if b, err := os.ReadFile(filepath.Join(dir, test+".stderr")); err == nil {
		r.Stderr = string(b)
	}
	for _, kind := range []string{"containers", "cgroups", "mounts"} {
		if b, err := os.ReadFile(filepath.Join(dir, test+".leftover-"+kind)); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			r.Leftover[kind] = strings.Join(strings.Fields(string(b)), " ")
		}
	}
	return r, nil
}

func loadRuns(dir string) (map[string]*Run, []string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	runs := map[string]*Run{}
	var names []string
	for _, e := range entries {
		test, ok := strings.CutSuffix(e.Name(), ".tap")
		if !ok {
			continue
		}
		r, err := loadRun(dir, test)
		if err != nil {
			return nil, nil, err
		}
		runs[test] = r
		names = append(names, test)
	}
	sort.Strings(names)
	return runs, names, nil
}

type Report struct {
	Dir         string
	UT, Ref     string
	DetailLines int
}

// Write prints the report and returns the number of regressions: TAP
// lines, diagnostics or statuses where the runtime under test fails and the
// reference does not.
func (rep *Report) Write(w io.Writer) (int, error) {
	ut, names, err := loadRuns(filepath.Join(rep.Dir, rep.UT))
	if err != nil {
		return 0, err
	}
	var ref map[string]*Run
	if rep.Ref != "" {
		if ref, _, err = loadRuns(filepath.Join(rep.Dir, rep.Ref)); err != nil {
			return 0, err
		}
	}
	norm := NewNormalizer(rep.UT, rep.Ref)
	for _, l := range []string{rep.UT, rep.Ref} {
		if l == "" {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(rep.Dir, l, ".version")); err == nil {
			fmt.Fprintf(w, "%-14s %s\n", l+":", strings.TrimSpace(string(b)))
		}
	}
	fmt.Fprintln(w)

	// The table.
	fmt.Fprintf(w, "%-31s %4s %4s %4s %4s %-13s", "validation program", "pass", "fail", "skip", "diag", "status")
	if ref != nil {
		fmt.Fprintf(w, " | %4s %4s %4s %4s %-13s %s", "pass", "fail", "skip", "diag", "status", "differs")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-31s %-32s", "", "["+rep.UT+"]")
	if ref != nil {
		fmt.Fprintf(w, " | %s", "["+rep.Ref+"]")
	}
	fmt.Fprintln(w)
	var tu, tr Counts
	var du, dr, eu, er, ndiff, regressions int
	diffs := map[string][]string{}
	for _, name := range names {
		u := ut[name]
		c := u.TAP.Counts()
		d := len(u.TAP.ErrorOrphans())
		tu.Pass, tu.Fail, tu.Skip, du = tu.Pass+c.Pass, tu.Fail+c.Fail, tu.Skip+c.Skip, du+d
		if !u.StatusOK() {
			eu++
		}
		fmt.Fprintf(w, "%-31s %4d %4d %4d %4d %-13s", name, c.Pass, c.Fail, c.Skip, d, u.Status())
		if ref != nil {
			mark := ""
			if r, ok := ref[name]; ok {
				rc := r.TAP.Counts()
				rd := len(r.TAP.ErrorOrphans())
				tr.Pass, tr.Fail, tr.Skip, dr = tr.Pass+rc.Pass, tr.Fail+rc.Fail, tr.Skip+rc.Skip, dr+rd
				if !r.StatusOK() {
					er++
				}
				lines, reg := compare(u, r, norm)
				diffs[name] = lines
				regressions += reg
				if len(lines) > 0 {
					ndiff++
					mark = fmt.Sprintf("* %d", len(lines))
				}
				fmt.Fprintf(w, " | %4d %4d %4d %4d %-13s %s", rc.Pass, rc.Fail, rc.Skip, rd, r.Status(), mark)
			} else {
				fmt.Fprintf(w, " | %s", "(not run)")
			}
		} else if u.Bad() {
			regressions++
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-31s %4d %4d %4d %4d %-13s", "TOTAL", tu.Pass, tu.Fail, tu.Skip, du, fmt.Sprintf("errors=%d", eu))
	if ref != nil {
		fmt.Fprintf(w, " | %4d %4d %4d %4d %-13s %d programs", tr.Pass, tr.Fail, tr.Skip, dr, fmt.Sprintf("errors=%d", er), ndiff)
	}
	fmt.Fprintf(w, "\n\n")
	fmt.Fprintln(w, "pass/fail/skip: the program's own TAP lines (runtimetest's inner lines, which some programs embed")
	fmt.Fprintln(w, "in a diagnostic, are compared below but not counted); diag: YAML blocks carrying an \"error\" that")
	fmt.Fprintln(w, "belong to no TAP line (hooks, poststart, prestart... report failures only this way); status: ok =")
	fmt.Fprintln(w, "complete plan and exit 0, ok(no TAP) = exit 0 without TAP (the *_fail programs that expect create to")
	fmt.Fprintln(w, "fail say nothing when it does), ERROR = no TAP and exit != 0 (the program gave up: see its stderr),")
	fmt.Fprintln(w, "PLAN(n/m), NOPLAN, TIMEOUT, rc=N (TAP, then a failure exit). differs: number of TAP lines,")
	fmt.Fprintln(w, "diagnostics or statuses that differ (listed below); pass/fail counts can match while lines differ.")

	// Details of the runtime under test.
	fmt.Fprintf(w, "\n=== %s: failures, errors and leftovers ===\n", rep.UT)
	for _, name := range names {
		u := ut[name]
		if !u.Bad() && len(u.Leftover) == 0 {
			continue
		}
		var r *Run
		if ref != nil {
			r = ref[name]
		}
		rep.details(w, u, r, norm)
	}

	if ref != nil {
		var refNames []string
		for name := range ref {
			refNames = append(refNames, name)
		}
		sort.Strings(refNames)
		header := false
		for _, name := range refNames {
			for _, kind := range []string{"containers", "cgroups", "mounts"} {
				if s := ref[name].Leftover[kind]; s != "" {
					if !header {
						fmt.Fprintf(w, "\n=== what %s left behind (removed by run.sh) ===\n", rep.Ref)
						header = true
					}
					fmt.Fprintf(w, "%s: %s: %s\n", name, kind, s)
				}
			}
		}
		fmt.Fprintf(w, "\n=== differences between %s and %s (%s result / %s result) ===\n", rep.UT, rep.Ref, rep.UT, rep.Ref)
		for _, name := range names {
			if len(diffs[name]) == 0 {
				continue
			}
			fmt.Fprintf(w, "%s:\n", name)
			for _, l := range diffs[name] {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
		fmt.Fprintf(w, "\nregressions (%s fails where %s does not): %d\n", rep.UT, rep.Ref, regressions)
	}
	return regressions, nil
}

// compare lists what differs between two runs of one program and counts
// the differences where u is worse.
func compare(u, r *Run, norm *Normalizer) ([]string, int) {
	var out []string
	reg := 0
	if su, sr := u.Status(), r.Status(); su != sr {
		out = append(out, fmt.Sprintf("status: %s / %s", su, sr))
		if !u.StatusOK() && r.StatusOK() {
			reg++
		}
	}
	results := func(t *TAP) map[string][]string {
		m := map[string][]string{}
		for _, p := range t.All() {
			k := p.Key(norm)
			m[k] = append(m[k], p.Result.String())
		}
		for k := range m {
			sort.Strings(m[k])
		}
		return m
	}
	mu, mr := results(u.TAP), results(r.TAP)
	// A program that gave up before any TAP line on one side: say so once
	// instead of listing every line of the other side.
	for _, side := range []struct {
		empty, other map[string][]string
		who          string
	}{{mu, mr, "the runtime under test"}, {mr, mu, "the reference"}} {
		if len(side.empty) == 0 && len(side.other) > 0 {
			n := map[string]int{}
			for k, rs := range side.other {
				for _, x := range rs {
					n[x]++
				}
				if strings.Contains(strings.Join(rs, ","), "not ok") {
					out = append(out, fmt.Sprintf("not ok on the other side: %s", k))
				}
			}
			out = append(out, fmt.Sprintf("no TAP lines from %s; the other side: %d ok, %d not ok, %d skip", side.who, n["ok"], n["not ok"], n["skip"]))
			if side.who == "the runtime under test" {
				reg++
			}
			return append(out, orphanDiff(u, r, norm, &reg)...), reg
		}
	}
	var keys []string
	for k := range mu {
		keys = append(keys, k)
	}
	for k := range mr {
		if _, ok := mu[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		a, b := strings.Join(mu[k], ","), strings.Join(mr[k], ",")
		if a == b {
			continue
		}
		if a == "" {
			a = "-"
		}
		if b == "" {
			b = "-"
		}
		out = append(out, fmt.Sprintf("%s / %s: %s", a, b, k))
		if strings.Count(a, "not ok") > strings.Count(b, "not ok") {
			reg++
		}
	}
	return append(out, orphanDiff(u, r, norm, &reg)...), reg
}

func orphanDiff(u, r *Run, norm *Normalizer, reg *int) []string {
	orphans := func(t *TAP) []string {
		var s []string
		for _, o := range t.ErrorOrphans() {
			s = append(s, firstLine(norm.Norm(o.Error())))
		}
		sort.Strings(s)
		return s
	}
	ou, or := orphans(u.TAP), orphans(r.TAP)
	if strings.Join(ou, "\n") == strings.Join(or, "\n") {
		return nil
	}
	if len(ou) > len(or) {
		*reg++
	}
	return []string{fmt.Sprintf("diag errors: %q / %q", ou, or)}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func (rep *Report) details(w io.Writer, u, r *Run, norm *Normalizer) {
	c := u.TAP.Counts()
	fmt.Fprintf(w, "\n--- %s: %s pass=%d fail=%d skip=%d diag=%d status=%s\n", u.Test, rep.UT, c.Pass, c.Fail, c.Skip, len(u.TAP.ErrorOrphans()), u.Status())
	var refResult map[string][]string
	if r != nil {
		rc := r.TAP.Counts()
		fmt.Fprintf(w, "    %s pass=%d fail=%d skip=%d diag=%d status=%s\n", rep.Ref, rc.Pass, rc.Fail, rc.Skip, len(r.TAP.ErrorOrphans()), r.Status())
		refResult = map[string][]string{}
		for _, p := range r.TAP.All() {
			k := p.Key(norm)
			refResult[k] = append(refResult[k], p.Result.String())
		}
	}
	for _, kind := range []string{"containers", "cgroups", "mounts"} {
		if s := u.Leftover[kind]; s != "" {
			fmt.Fprintf(w, "    LEFT BEHIND %s (removed by run.sh): %s\n", kind, s)
			if r != nil {
				if rs := r.Leftover[kind]; rs != "" {
					same := ""
					if norm.Norm(rs) == norm.Norm(s) {
						same = "the same "
					}
					fmt.Fprintf(w, "      %s left %s%s too\n", rep.Ref, same, kind)
				} else {
					fmt.Fprintf(w, "      %s left no %s\n", rep.Ref, kind)
				}
			}
		}
	}
	for _, p := range u.TAP.All() {
		if p.Result != Fail {
			continue
		}
		indent := "    "
		if p.Parent != "" {
			indent = "      "
			fmt.Fprintf(w, "%s(inside %q) ", "    ", p.Parent)
		} else {
			fmt.Fprint(w, indent)
		}
		fmt.Fprintf(w, "not ok %d - %s\n", p.Num, p.Desc)
		rep.printDiag(w, indent+"  ", p)
		for _, n := range p.Notes {
			fmt.Fprintf(w, "%s  # %s\n", indent, n)
		}
		if refResult != nil {
			res := strings.Join(refResult[p.Key(norm)], ",")
			if res == "" {
				res = "(no such TAP line)"
			}
			fmt.Fprintf(w, "%s  => %s: %s\n", indent, rep.Ref, res)
		}
	}
	for _, o := range u.TAP.ErrorOrphans() {
		fmt.Fprintf(w, "    diagnostic without a TAP line:\n")
		printLimited(w, "      ", o.YAML, rep.DetailLines)
	}
	if r != nil {
		for _, o := range r.TAP.ErrorOrphans() {
			fmt.Fprintf(w, "    %s diagnostic: %s\n", rep.Ref, firstLine(o.Error()))
		}
	}
	// The programs write the runtime's error there when a create or
	// start fails.
	if u.Bad() {
		if s := strings.TrimSpace(u.Stderr); s != "" {
			fmt.Fprintf(w, "    stderr of the program:\n")
			printLimited(w, "      ", tail(s, 15), rep.DetailLines)
		}
		if r != nil && r.Bad() {
			if s := strings.TrimSpace(r.Stderr); s != "" {
				fmt.Fprintf(w, "    %s: stderr of the program:\n", rep.Ref)
				printLimited(w, "      ", tail(s, 6), rep.DetailLines)
			}
		}
	}
}

// printDiag prints a point's diagnostic; for a point that carries
// runtimetest's TAP, everything but that TAP (whose failing lines follow).
func (rep *Report) printDiag(w io.Writer, indent string, p *Point) {
	if p.YAML == "" {
		return
	}
	if p.Inner == nil {
		printLimited(w, indent, p.YAML, rep.DetailLines)
		return
	}
	var keys []string
	for k := range p.Diag {
		if k != "stdout" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if s, ok := p.Diag[k].(string); ok && s != "" {
			printLimited(w, indent, fmt.Sprintf("%s: %s", k, strings.TrimSpace(s)), rep.DetailLines)
		}
	}
	ic := p.Inner.Counts()
	fmt.Fprintf(w, "%sruntimetest inside the container: pass=%d fail=%d skip=%d\n", indent, ic.Pass, ic.Fail, ic.Skip)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func printLimited(w io.Writer, indent, s string, max int) {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if i == max {
			fmt.Fprintf(w, "%s... (%d more lines)\n", indent, len(lines)-max)
			break
		}
		fmt.Fprintf(w, "%s%s\n", indent, l)
	}
}
