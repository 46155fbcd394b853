package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// guestTests are the tests of package guest that must pass in the VM (not
// skip): the proof that the VM is a working cgroup v2 host.
var guestTests = []string{
	"TestCgroup2Mounted",
	"TestCgroupControllersAvailable",
	"TestCgroupMemoryMaxOOMKills",
	"TestCgroupPidsMaxStopsForkLoop",
	"TestCgroupFreeze",
	"TestPivotRoot",
	"TestOverlayMount",
}

// runtimeGuestTests must also pass when BERTH_RUNTIME names a runtime: the
// proof that berth-runtime applies its limits on cgroup v2.
var runtimeGuestTests = []string{
	"TestBerthRuntimeRuns",
	"TestBerthCgroup2MemoryLimitOOMKills",
	"TestBerthCgroup2CPUMax",
	"TestBerthCgroup2MemorySwapAndUnified",
	"TestBerthCgroup2PidsLimitStopsForkLoop",
	"TestBerthCgroup2BlockIOWeight",
	"TestBerthCgroup2DevicesDenyBlockDevice",
	"TestBerthCgroup2PauseResume",
	"TestBerthCgroup2DeleteAfterCrash",
	"TestBerthCgroup2BadCpusFailsCreate",
	"TestBerthCgroup2ContainerView",
	"TestBerthCgroup2CgroupsPath",
	"TestBerthCgroup2Events",
}

// TestCgroupV2VM builds the guest tests, boots the VM and runs them there, with
// berth-runtime too when BERTH_RUNTIME names one on the host. Set
// BERTH_VM_RUN to a -test.run pattern to run only some guest tests.
func TestCgroupV2VM(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the VM's initramfs holds a /dev/console device node")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("qemu-system-x86_64 not found: install Debian's qemu-system-x86 (listed in .ci/apt-packages)")
	}

	dir := t.TempDir()
	guest := filepath.Join(dir, "guest.test")
	build := exec.Command("go", "test", "-c", "-tags", "berthvm", "-o", guest, "./guest")
	// The VM has no C library: the binary must be static.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the guest tests: %v\n%s", err, out)
	}

	cfg := Config{
		Files:   map[string]string{"/berth/bin/guest.test": guest},
		Timeout: 10 * time.Minute,
	}
	if runtime := os.Getenv("BERTH_RUNTIME"); runtime != "" {
		if _, err := os.Stat(runtime); err != nil {
			t.Fatalf("BERTH_RUNTIME: %v", err)
		}
		cfg.Files["/berth/bin/berth-runtime"] = runtime
		cfg.Env = append(cfg.Env, "BERTH_RUNTIME=/berth/bin/berth-runtime")
	}
	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok {
		// Leave time for run.sh to stop qemu and for us to report.
		cfg.Timeout = min(cfg.Timeout, time.Until(deadline)-30*time.Second)
		if cfg.Timeout < time.Second {
			t.Fatalf("go test -timeout leaves no time to boot the VM: it needs about 30s more than the VM run")
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-10*time.Second))
		defer cancel()
	}
	var console strings.Builder
	cfg.Console = func(line string) {
		t.Log(line)
		console.WriteString(line + "\n")
	}
	args := []string{"-test.v", "-test.count=1"}
	if run := os.Getenv("BERTH_VM_RUN"); run != "" {
		args = append(args, "-test.run", run)
	}

	status, err := Run(ctx, cfg, "/berth/bin/guest.test", args...)
	if err != nil {
		t.Fatal(err)
	}
	if status != 0 {
		t.Fatalf("guest tests failed in the VM (exit status %d); see the console above", status)
	}
	if os.Getenv("BERTH_VM_RUN") != "" {
		return
	}
	out := console.String()
	want := guestTests
	if os.Getenv("BERTH_RUNTIME") != "" {
		want = append(want, runtimeGuestTests...)
	}
	for _, name := range want {
		if !strings.Contains(out, "--- PASS: "+name+" ") {
			t.Errorf("guest test %s did not pass in the VM; see the console above", name)
		}
	}
}
