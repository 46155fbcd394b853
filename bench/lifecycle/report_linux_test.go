package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBlockRatios(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	// Ten rounds, two per block; b takes 10 ms throughout while a drifts.
	a := ms(9, 9, 12, 12, 8, 8, 10, 10, 11, 11)
	b := ms(10, 10, 10, 10, 10, 10, 10, 10, 10, 10)
	got := blockRatios(a, b)
	want := []float64{0.8, 0.9, 1, 1.1, 1.2}
	if !slices.Equal(got, want) {
		t.Fatalf("blockRatios = %v, want %v (lowest first)", got, want)
	}
	// Rounds past the last whole block are left out, not folded in.
	if got := blockRatios(append(a, 100*time.Millisecond), append(b, time.Millisecond)); !slices.Equal(got, want) {
		t.Fatalf("with a partial block: %v, want %v", got, want)
	}
	if got := blockRatios(ms(1, 2, 3, 4, 5, 6, 7, 8, 9), ms(1, 2, 3, 4, 5, 6, 7, 8, 9)); got != nil {
		t.Fatalf("fewer than two rounds per block: %v, want none", got)
	}
}

func TestReportShowsTheBlocks(t *testing.T) {
	n := 2 * ratioBlocks
	var berth, crun []sample
	for i := range n {
		d := time.Duration(9+i%2) * time.Millisecond
		berth = append(berth, sample{Create: d, Total: d})
		crun = append(crun, sample{Create: 10 * time.Millisecond, Total: 10 * time.Millisecond})
	}
	sc := summarize(scenario{name: "default"}, []runResult{
		{rt: runtimeInfo{Name: "berth"}, samples: berth},
		{rt: runtimeInfo{Name: "crun"}, samples: crun},
	})
	if len(sc.Ratios) != 1 || len(sc.Ratios[0].TimeBlocks) != ratioBlocks {
		t.Fatalf("ratios %+v: want berth/crun with %d blocks", sc.Ratios, ratioBlocks)
	}
	var out bytes.Buffer
	(&report{N: n, Scenarios: []scenarioResult{sc}}).writeText(&out)
	if want := "berth/crun time 0.95x (5 blocks of 2 rounds: 0.95-0.95x)"; !strings.Contains(out.String(), want) {
		t.Fatalf("report lacks %q:\n%s", want, out.String())
	}
}

func TestCpusetNote(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "cpuset.cpus"), []byte("0-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if note := cpusetNote(root); !strings.Contains(note, "no other cgroup in "+root) {
		t.Fatalf("hierarchy without cgroups: note %q", note)
	}
	if err := os.Mkdir(filepath.Join(root, "docker"), 0o755); err != nil {
		t.Fatal(err)
	}
	if note := cpusetNote(root); note != "" {
		t.Fatalf("with a parent cgroup: note %q, want none", note)
	}
	if note := cpusetNote(filepath.Join(root, "missing")); note != "" {
		t.Fatalf("without a cpuset hierarchy: note %q, want none", note)
	}
}
