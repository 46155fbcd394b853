package main

import "testing"

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
