package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// requireVM skips the test where the VM cannot run, naming what is missing.
func requireVM(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the VM's initramfs holds a /dev/console device node")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("qemu-system-x86_64 not found: install Debian's qemu-system-x86 (listed in .ci/apt-packages)")
	}
}

// buildGuest builds the guest tests into dir and returns the binary.
func buildGuest(t *testing.T, dir string) string {
	t.Helper()
	return buildTests(t, filepath.Join(dir, "guest.test"), "./guest", "-tags", "berthvm")
}

// buildTests builds the tests of package pkg into the binary out, static:
// the initramfs VM has no C library.
func buildTests(t *testing.T, out, pkg string, flags ...string) string {
	t.Helper()
	build := exec.Command("go", append(append([]string{"test", "-c", "-o", out}, flags...), pkg)...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the tests of %s: %v\n%s", pkg, err, b)
	}
	return out
}

// runVM runs program in the VM described by cfg within the test's deadline,
// logging and returning the console; it fails the test if the VM failed.
func runVM(t *testing.T, cfg Config, program string, args ...string) (status int, console string) {
	t.Helper()
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
	var out strings.Builder
	cfg.Console = func(line string) {
		t.Log(line)
		out.WriteString(line + "\n")
	}
	status, err := Run(ctx, cfg, program, args...)
	if err != nil {
		t.Fatal(err)
	}
	return status, out.String()
}

// TestVMAccel: run.sh tries KVM first when asked and, where KVM cannot
// start the VM (here the host has no usable /dev/kvm: the same path as a
// KVM that refuses the CPU model), says so and runs it under TCG; where KVM
// works, the VM runs under it with no fallback. Either way the program's
// status comes back.
func TestVMAccel(t *testing.T) {
	requireVM(t)
	status, console := runVM(t, Config{Accel: "kvm", Timeout: 5 * time.Minute}, "/bin/sh", "-c", "exit 7")
	if status != 7 {
		t.Fatalf("program's exit status %d, want 7; see the console above", status)
	}
	if !strings.Contains(console, "run.sh: booting the VM with kvm") {
		t.Errorf("run.sh did not say it tried KVM first; see the console above")
	}
	fellBack := strings.Contains(console, "falling back to TCG")
	if kvmUsable := unix.Access("/dev/kvm", unix.W_OK) == nil; kvmUsable && fellBack {
		t.Logf("KVM is there but could not start the VM: the fallback ran (see above)")
	} else if !kvmUsable && !fellBack {
		t.Errorf("no usable /dev/kvm here, yet run.sh did not say it fell back to TCG; see the console above")
	}
}

// TestCgroupV2VM builds the guest tests, boots the VM and runs them there, with
// berth-runtime too when BERTH_RUNTIME names one on the host. Set
// BERTH_VM_RUN to a -test.run pattern to run only some guest tests.
func TestCgroupV2VM(t *testing.T) {
	requireVM(t)
	guest := buildGuest(t, t.TempDir())
	cfg := Config{
		Files:   map[string]string{"/berth/bin/guest.test": guest},
		Timeout: 10 * time.Minute,
	}
	if runtime := os.Getenv("BERTH_RUNTIME"); runtime != "" {
		if _, err := os.Stat(runtime); err != nil {
			t.Fatalf("BERTH_RUNTIME: %v", err)
		}
		cfg.Files["/berth/bin/berth-runtime"] = runtime
		addInitBinary(cfg.Files, runtime)
		cfg.Env = append(cfg.Env, "BERTH_RUNTIME=/berth/bin/berth-runtime")
	}
	args := []string{"-test.v", "-test.count=1"}
	if run := os.Getenv("BERTH_VM_RUN"); run != "" {
		args = append(args, "-test.run", run)
	}

	status, out := runVM(t, cfg, "/berth/bin/guest.test", args...)
	if status != 0 {
		t.Fatalf("guest tests failed in the VM (exit status %d); see the console above", status)
	}
	if os.Getenv("BERTH_VM_RUN") != "" {
		return
	}
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

// systemdGuestTests must pass in the VM booted with systemd: berth-runtime's
// systemd cgroup driver, alone and under containerd and Podman.
var systemdGuestTests = []string{
	"TestSystemdScopeLimitsUpdateDelete",
	"TestSystemdCgroupsPathForms",
	"TestSystemdRefuses",
	"TestSystemdContainerd",
	"TestSystemdPodman",
}

// TestSystemdVM boots Debian with systemd as PID 1 on cgroup v2 (the image is
// built once with debootstrap, then cached) and runs the guest tests of
// berth-runtime's --systemd-cgroup there, and (one boot for both: a boot
// under TCG costs a minute) berthd's --cgroup-driver systemd driven by
// crictl (TestSystemdBerthd; berthd_test.go).
func TestSystemdVM(t *testing.T) {
	requireVM(t)
	runtime := os.Getenv("BERTH_RUNTIME")
	if runtime == "" {
		t.Skip("needs berth-runtime: set BERTH_RUNTIME to a built berth-runtime (make test does)")
	}
	if _, err := os.Stat(runtime); err != nil {
		t.Fatalf("BERTH_RUNTIME: %v", err)
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		msg := "debootstrap not found: install Debian's debootstrap (listed in .ci/apt-packages) to build the systemd guest image"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	guest := buildGuest(t, t.TempDir())
	cfg := Config{
		Systemd: true,
		Files:   map[string]string{"/berth/bin/guest.test": guest, "/berth/bin/berth-runtime": runtime},
		Env:     []string{"BERTH_RUNTIME=/berth/bin/berth-runtime"},
		Memory:  "1536M",
		Timeout: 15 * time.Minute,
	}
	addInitBinary(cfg.Files, runtime)
	want := systemdGuestTests
	if files := berthdFiles(t, runtime); files != nil {
		for vmPath, hostPath := range files {
			cfg.Files[vmPath] = hostPath
		}
		cfg.Env = append(cfg.Env, "BERTH_VM_BERTHD=/berth/bin")
		want = append(want[:len(want):len(want)], "TestSystemdBerthd", "TestSystemdBerthCLI", "TestSystemdSecmonLSM")
	}
	args := []string{"-test.v", "-test.count=1", "-test.run", "^TestSystemd"}
	if run := os.Getenv("BERTH_VM_RUN"); run != "" {
		args[len(args)-1] = run
	}
	status, out := runVM(t, cfg, "/berth/bin/guest.test", args...)
	if status != 0 {
		t.Fatalf("guest tests failed in the systemd VM (exit status %d); see the console above", status)
	}
	if os.Getenv("BERTH_VM_RUN") != "" {
		return
	}
	for _, name := range want {
		if !strings.Contains(out, "--- PASS: "+name+" ") {
			t.Errorf("guest test %s did not pass in the systemd VM; see the console above", name)
		}
	}
}

// TestVMAccelKVMStall: a KVM that neither starts the guest nor exits must not
// hold the caller until the VM's whole timeout. Such a KVM cannot be had on
// purpose, so a stand-in qemu-system-x86_64 first in PATH stalls when asked
// for KVM and runs the real qemu otherwise; run.sh must give up on KVM after
// BERTH_VM_KVM_START seconds and finish the program under TCG.
func TestVMAccelKVMStall(t *testing.T) {
	requireVM(t)
	real, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stub := "#!/bin/bash\n" +
		"for a in \"$@\"; do [ \"$a\" = kvm ] && exec sleep 600; done\n" +
		"exec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "qemu-system-x86_64"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	t.Setenv("BERTH_VM_KVM_START", "5")
	status, console := runVM(t, Config{Accel: "kvm", Timeout: 5 * time.Minute}, "/bin/sh", "-c", "exit 9")
	if status != 9 {
		t.Fatalf("program's exit status %d, want 9; see the console above", status)
	}
	if !strings.Contains(console, "did not start under KVM within 5s") || !strings.Contains(console, "falling back to TCG") {
		t.Errorf("run.sh did not say it gave up on a stalled KVM and fell back to TCG; see the console above")
	}
}

// addInitBinary puts berth-runtime-init beside the guest's berth-runtime
// when the host's runtime has one (make build writes it): the guest then
// runs the container init from it, as the host does.
func addInitBinary(files map[string]string, runtime string) {
	init := filepath.Join(filepath.Dir(runtime), "berth-runtime-init")
	if _, err := os.Stat(init); err == nil {
		files["/berth/bin/berth-runtime-init"] = init
	}
}
