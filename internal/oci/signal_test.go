package oci

import "testing"

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]int{"KILL": 9, "sigterm": 15, "SIGHUP": 1, "9": 9, "0": 0, "SIGRTMIN": 34, "SIGRTMIN+3": 37, "rtmax-1": 63, "64": 64} {
		n, err := ParseSignal(in)
		if err != nil || int(n) != want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
	for _, in := range []string{"", "BOGUS", "-1", "65", "SIGRTMIN-1", "SIGRTMAX+1", "SIGRTMIN3", "SIGRTMIN+x"} {
		if n, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) = %d, want an error", in, n)
		}
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"KILL", "9", "SIGRTMIN+3", "rtmax-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSignal(s); err == nil && (n < 0 || n > 64) {
			t.Fatalf("ParseSignal(%q) = %d", s, n)
		}
	})
}
