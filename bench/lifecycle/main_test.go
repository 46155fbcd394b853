package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the benchmark's worker process,
// which the benchmark starts by re-executing itself.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		os.Exit(workerMain())
	}
	os.Exit(m.Run())
}

// requireHost skips unless the host can run the benchmark against runc, and
// returns the crun flag value: crun's path, or "none" when it is missing.
func requireHost(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runtimes create cgroups and namespaces")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("needs the Debian package runc")
	}
	if err := checkBusybox(); err != nil {
		t.Skipf("needs the Debian package busybox-static: %v", err)
	}
	if _, err := exec.LookPath("/usr/bin/time"); err != nil {
		t.Skip("needs the Debian package time (GNU time measures the runtimes' RSS)")
	}
	crun, err := exec.LookPath("crun")
	if err != nil {
		t.Log("crun not installed (Debian package crun): measuring runc only")
		return "none"
	}
	return crun
}

func TestTextReport(t *testing.T) {
	crun := requireHost(t)
	unifiedBefore := isCgroup2(unifiedCgroup)
	missingBerth := filepath.Join(t.TempDir(), "berth-runtime")

	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-n", "2", "-warmup", "1", "-berth", missingBerth, "-crun", crun}, &out, &errOut)
	t.Logf("output:\n%s\nstderr:\n%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	text := out.String()
	if !strings.Contains(text, "berth: not measured: ") || !strings.Contains(text, missingBerth) {
		t.Errorf("output does not say berth-runtime at %s was not measured", missingBerth)
	}
	header := tableRow(t, text, "runtime")
	wantHeader := []string{"runtime", "version", "n", "mean", "ms", "p50", "ms", "p95", "ms",
		"create", "start", "wait", "delete", "peak", "RSS", "MiB", "p50", "RSS", "MiB"}
	if strings.Join(header, " ") != strings.Join(wantHeader, " ") {
		t.Errorf("table header = %q, want %q", header, wantHeader)
	}
	runtimes := []string{"runc"}
	if crun != "none" {
		runtimes = append(runtimes, "crun")
		if !strings.Contains(text, "\ncrun/runc time ") {
			t.Errorf("output has no crun/runc ratio line")
		}
	}
	for _, rt := range runtimes {
		row := tableRow(t, text, rt)
		if len(row) != 12 {
			t.Fatalf("%s row has %d columns, want 12: %q", rt, len(row), row)
		}
		if row[2] != "2" {
			t.Errorf("%s row counts %s containers, want 2", rt, row[2])
		}
		for i, cell := range row[3:] {
			if v, err := strconv.ParseFloat(cell, 64); err != nil || v <= 0 {
				t.Errorf("%s row column %d = %q, want a positive number", rt, i+3, cell)
			}
		}
	}
	if strings.Contains(text, "\nberth ") {
		t.Errorf("output has a berth row although berth-runtime is missing")
	}
	if !strings.Contains(text, "leaks: none") {
		t.Errorf("output does not report \"leaks: none\"")
	}
	if isCgroup2(unifiedCgroup) != unifiedBefore {
		t.Errorf("the host's %s mount changed (cgroup2 before: %v)", unifiedCgroup, unifiedBefore)
	}
	assertNoBenchCgroups(t)
}

func TestJSONLimits(t *testing.T) {
	crun := requireHost(t)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-json", "-limits", "-n", "1", "-warmup", "0", "-crun", crun}, &out, &errOut)
	t.Logf("stderr:\n%s", errOut.String())
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("decode -json output: %v\n%s", err, out.String())
	}
	if len(rep.Scenarios) != 2 || rep.Scenarios[0].Name != "default" || rep.Scenarios[1].Name != "limits" {
		t.Fatalf("scenarios = %+v, want default and limits", rep.Scenarios)
	}
	for _, sc := range rep.Scenarios {
		if len(sc.Runtimes) == 0 || sc.Runtimes[0].Runtime != "runc" {
			t.Fatalf("%s: runtimes = %+v, want runc first", sc.Name, sc.Runtimes)
		}
		for _, r := range sc.Runtimes {
			if r.Error != "" || r.Containers != 1 || r.MeanMs <= 0 || r.RSSContainers != 1 || r.PeakRSSMiB <= 0 {
				t.Errorf("%s/%s = %+v, want 1 container timed and 1 measured for RSS, no error", sc.Name, r.Runtime, r)
			}
		}
	}
	if len(rep.Leaks) != 0 {
		t.Errorf("leaks = %q", rep.Leaks)
	}
	assertNoBenchCgroups(t)
}

// TestLimitsBundleApplies checks that the limits table measures what it says:
// a container of that bundle, run by runc, sees its limits and a seccomp
// filter.
func TestLimitsBundleApplies(t *testing.T) {
	requireHost(t)
	dir := t.TempDir()
	if err := writeBundle(dir, scenarioLimits); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"sh", "cat", "grep"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "rootfs", "bin", tool)); err != nil {
			t.Fatal(err)
		}
	}
	files := "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares"
	want := "Seccomp:\t2\n128\n268435456\n50000\n512\n"
	if _, err := os.Stat("/sys/fs/cgroup/pids"); err != nil { // cgroup v2 only
		files = "/sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max"
		want = "Seccomp:\t2\n128\n268435456\n50000 100000\n"
	}
	config := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"true"`), []byte(`"sh", "-c", "grep ^Seccomp: /proc/self/status; cat `+files+`"`), 1)
	if err := os.WriteFile(config, data, 0o644); err != nil {
		t.Fatal(err)
	}
	id := "berth-bench-test-limits-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	root := filepath.Join(dir, "root")
	t.Cleanup(func() { exec.Command("runc", "--root", root, "delete", "--force", id).Run() })
	cmd := exec.Command("runc", "--root", root, "run", "--bundle", dir, id)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("runc run: %v: %s", err, stderr.String())
	}
	if string(got) != want {
		t.Errorf("container saw\n%q\nwant\n%q", got, want)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-n", "0"}, {"-warmup", "-1"}, {"extra"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("run %q: error %v, want one naming %q", args, err, args[0])
		}
		if out.Len() != 0 {
			t.Errorf("run %q printed %q", args, out.String())
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond
	}
	for _, c := range []struct {
		p    int
		want time.Duration
	}{{50, 50 * time.Millisecond}, {95, 95 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("p%d = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(ds[:1], 95); got != 100*time.Millisecond {
		t.Errorf("p95 of one sample = %v, want that sample", got)
	}
}

// tableRow returns the fields of the first line of text that starts with
// first followed by a space.
func tableRow(t *testing.T, text, first string) []string {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, first+" ") {
			return strings.Fields(line)
		}
	}
	t.Fatalf("output has no row starting with %q", first)
	return nil
}

// assertNoBenchCgroups fails if any cgroup named berth-bench-* is left.
func assertNoBenchCgroups(t *testing.T) {
	t.Helper()
	filepath.WalkDir(cgroupRoot, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "berth-bench-") {
			t.Errorf("leaked cgroup %s", path)
		}
		return nil
	})
}
