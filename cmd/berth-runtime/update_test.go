package main

import (
	"regexp"
	"testing"
)

func TestRAMInBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"-1": -1, "1048576": 1 << 20, "64M": 64 << 20, "64m": 64 << 20, "64MB": 64 << 20,
		"64MiB": 64 << 20, "1.5g": 3 << 29, "2k": 2048, "1 GB": 1 << 30,
	} {
		got, err := ramInBytes(in)
		if err != nil || got != want {
			t.Errorf("ramInBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-2", "12Q", "1..5m", "0x10"} {
		if got, err := ramInBytes(in); err == nil {
			t.Errorf("ramInBytes(%q) = %d, want an error", in, got)
		}
	}
}

// oldRAMSize is the regexp splitRAMSize replaces; the fuzz test holds the
// two to the same answers.
var oldRAMSize = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$`)

func FuzzSplitRAMSize(f *testing.F) {
	for _, s := range []string{"", "-1", "64M", "64 MiB", "1.5g", "1.", "1.x", ".5", "12Q", "1..5m", "0x10", "5 ", "5  m", "7ib", "7Bi", "9kib", "3 b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		num, unit, ok := splitRAMSize(s)
		m := oldRAMSize.FindStringSubmatch(s)
		if ok != (m != nil) || (ok && (num != m[1] || unit != m[2])) {
			t.Fatalf("splitRAMSize(%q) = %q, %q, %v; the regexp says %q", s, num, unit, ok, m)
		}
	})
}
