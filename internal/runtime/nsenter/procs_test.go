package nsenter

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strconv"
	"testing"
)

var cpusAllowed = regexp.MustCompile(`(?m)^Cpus_allowed_list:\s*(\S+)$`)

func allowedCPUs(t *testing.T, status string) string {
	t.Helper()
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	m := cpusAllowed.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no Cpus_allowed_list", status)
	}
	return string(m[1])
}

// The constructor in procs.c pins the process to one CPU while the Go
// runtime starts; the package initialiser must have given every thread,
// and so every process it starts, the CPUs of the process that started
// this test.
func TestAffinityRestored(t *testing.T) {
	want := allowedCPUs(t, "/proc/"+strconv.Itoa(os.Getppid())+"/status")
	// A few more threads, made after the initialiser.
	done := make(chan struct{})
	for i := 0; i < 3; i++ {
		go func() {
			goruntime.LockOSThread()
			<-done
		}()
	}
	defer close(done)
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("list threads: %v", err)
	}
	for _, task := range tasks {
		if got := allowedCPUs(t, task); got != want {
			t.Errorf("%s: CPUs %s, want %s (the parent's)", task, got, want)
		}
	}
	out, err := exec.Command("cat", "/proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := cpusAllowed.FindSubmatch(out)
	if m == nil || string(m[1]) != want {
		t.Errorf("a started process has CPUs %q, want %s", m, want)
	}
	if goruntime.GOMAXPROCS(0) != 1 && os.Getenv("GOMAXPROCS") == "" {
		t.Errorf("GOMAXPROCS is %d, want 1", goruntime.GOMAXPROCS(0))
	}
}
