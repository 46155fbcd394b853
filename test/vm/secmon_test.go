package vm

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSecmonKernVM runs the BPF programs' own tests (internal/secmon/kern)
// in the VM, whose Debian 6.1 kernel runs BPF LSM programs and whose
// connect programs cannot call bpf_send_signal: the programs load on an
// older kernel than this project's machines', and the LSM deny programs
// refuse what they must (TestLSMDeny: writes, creates, renames, links
// and truncates under a denied prefix, from a chroot too; execs of a
// denied file by its name, a symbolic link, its descriptor, deleted).
// BERTH_EXPECT_LSM=1 makes TestLSMDeny fail rather than skip there. The
// kernel runs fully preemptible (preempt=full), as the event slots must
// stand: TestLSMSlotsStress had an allowed open refused there when the
// LSM programs shared the per-CPU slots.
func TestSecmonKernVM(t *testing.T) {
	requireVM(t)
	bin := buildTests(t, filepath.Join(t.TempDir(), "kern.test"), "github.com/berth-project/berth/internal/secmon/kern")
	cfg := Config{
		Files:      map[string]string{"/berth/bin/kern.test": bin},
		Env:        []string{"BERTH_EXPECT_LSM=1"},
		KernelArgs: []string{"preempt=full"},
		Timeout:    5 * time.Minute,
	}
	status, out := runVM(t, cfg, "/berth/bin/kern.test", "-test.v", "-test.count=1")
	if status != 0 {
		t.Fatalf("the kern tests failed in the VM (exit status %d); see the console above", status)
	}
	if !regexp.MustCompile(`/proc/cmdline: .*\bpreempt=full\b`).MatchString(out) {
		t.Errorf("the guest kernel's command line (TestProbe logs it) lacks preempt=full; see the console above")
	}
	for _, name := range []string{"TestLoad", "TestAttachReplacesOtherVersion", "TestIngressVerdicts", "TestProbe", "TestProbeLSMCached",
		"TestLSMDeny", "TestLSMSlotsStress", "TestSlotsReleased", "TestSlotsPools", "TestConnectSlots"} {
		if !strings.Contains(out, "--- PASS: "+name+" ") {
			t.Errorf("kern test %s did not pass in the VM; see the console above", name)
		}
	}
}
