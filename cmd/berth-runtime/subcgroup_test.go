package main

import (
	"maps"
	"testing"
)

func TestSubCgroupPaths(t *testing.T) {
	got, err := subCgroupPaths([]string{"memory:submem", "cpu,cpuacct:subcpu"})
	want := map[string]string{"memory": "submem", "cpu": "subcpu", "cpuacct": "subcpu"}
	if err != nil || !maps.Equal(got, want) {
		t.Errorf("subCgroupPaths = %v, %v; want %v", got, err, want)
	}
	if got, err := subCgroupPaths([]string{"sub"}); err != nil || got[""] != "sub" || len(got) != 1 {
		t.Errorf("a bare path: %v, %v; want it for every hierarchy", got, err)
	}
	for _, bad := range [][]string{{"a", "b"}, {":x"}, {"cpu,:x"}, {"cpu:a", "cpu:b"}} {
		if got, err := subCgroupPaths(bad); err == nil {
			t.Errorf("subCgroupPaths(%q) = %v, want an error", bad, got)
		}
	}
}

func FuzzSubCgroupPaths(f *testing.F) {
	for _, s := range []string{"memory:submem", "cpu,cpuacct:x", "sub", ":x", "a,,b:c", "..", "x:"} {
		f.Add(s, "pids:p")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		paths, err := subCgroupPaths([]string{a, b})
		if err == nil {
			if _, bare := paths[""]; bare {
				t.Errorf("two arguments gave a bare path: %v", paths)
			}
			for c := range paths {
				if c == "" {
					t.Errorf("empty controller accepted: %q %q", a, b)
				}
			}
		}
	})
}
