package engine

import (
	"os"
	"strconv"
	"testing"
)

func TestStatPPid(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want int
	}{
		{"1234 (sleep) S 77 1234 1234 0 -1", 77},
		// A process names itself: spaces and parentheses in the name.
		{"1234 (a) S 9 (b) R 1) S 88 1 1", 88},
		{"1234 (x", 0},
		{"", 0},
		{"1234 (x) S", 0},
	} {
		if got := statPPid([]byte(tc.stat)); got != tc.want {
			t.Errorf("statPPid(%q) = %d, want %d", tc.stat, got, tc.want)
		}
	}
	if got := parentPid(os.Getpid()); got != os.Getppid() {
		t.Errorf("parentPid(self) = %d, want %d", got, os.Getppid())
	}
	if got := parentPid(1 << 30); got != 0 {
		t.Errorf("parentPid of no process = %d", got)
	}
}

// FuzzStatPPid: whatever a process calls itself, the parent pid after
// its name is the one found; arbitrary lines do not panic.
func FuzzStatPPid(f *testing.F) {
	f.Add("sleep", uint32(77), []byte("1234 (sleep) S 77 1234 1234 0 -1"))
	f.Add("a) R 5 (b", uint32(1), []byte(")"))
	f.Fuzz(func(t *testing.T, name string, ppid uint32, raw []byte) {
		statPPid(raw)
		stat := "1234 (" + name + ") S " + strconv.FormatUint(uint64(ppid), 10) + " 1234 1234 0 -1"
		if got := statPPid([]byte(stat)); got != int(ppid) {
			t.Fatalf("statPPid(%q) = %d, want %d", stat, got, ppid)
		}
	})
}
