package secmon

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/secmon/kern"
	"github.com/berth-project/berth/internal/testutil"
)

// An older agent's programs, still attached through their pinned links,
// send the event without the fields added since: it decodes, with those
// fields zero.
func TestDecodeShortEvent(t *testing.T) {
	full := kern.SecmonEvent{Kind: kern.KindExec, Tgid: 42, ExitCode: 7}
	full.Pcomm[0] = 'x'
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, &full)
	buf := make([]byte, binary.Size(kern.SecmonEvent{}))
	// The previous layout ended at args.
	old := b.Bytes()[:b.Len()-4-4-kern.CommLen]
	var ev kern.SecmonEvent
	ev.ExitCode, ev.Pcomm[0] = 99, 'y' // the last event's, in a reused value
	if err := decodeEvent(old, buf, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Tgid != 42 || ev.Kind != kern.KindExec || ev.ExitCode != 0 || ev.Pcomm[0] != 0 {
		t.Errorf("short sample decoded as %+v", ev)
	}
	if err := decodeEvent(b.Bytes(), buf, &ev); err != nil || ev.ExitCode != 7 || ev.Pcomm[0] != 'x' {
		t.Errorf("full sample: %+v, %v", ev, err)
	}
}

// A denied SYN's retransmits are one attempt: one alert.
func TestSynRepeat(t *testing.T) {
	a := &agent{synSeen: map[synKey]time.Time{}}
	k := synKey{cgid: 1, peerPort: 40000, locPrt: 80}
	now := time.Now()
	if a.synRepeat(k, now) || !a.synRepeat(k, now.Add(time.Second)) || !a.synRepeat(k, now.Add(synWindow)) {
		t.Error("retransmits within the window of the last one must repeat")
	}
	if a.synRepeat(k, now.Add(3*synWindow)) {
		t.Error("a SYN long after the last is another attempt")
	}
	k2 := k
	k2.peerPort++
	if a.synRepeat(k2, now) {
		t.Error("another peer port is another attempt")
	}
}

// The kill fallback for kernels without cgroup.kill (this one has it, so
// the fallback is called directly): every process of the cgroup and of its
// children dies, a process that forks all the time included, and the
// cgroup is left thawed and empty.
func TestFreezeAndKill(t *testing.T) {
	testutil.RequiresRoot(t)
	mnt := unifiedMount()
	if mnt == "" {
		t.Skip("needs a cgroup v2 hierarchy (mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified)")
	}
	dir := filepath.Join(mnt, fmt.Sprintf("berth-test-kill-%d", os.Getpid()))
	child := filepath.Join(dir, "sub")
	if err := os.MkdirAll(child, 0o755); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	t.Cleanup(func() {
		// On a failure: the shells' children too (this kernel has
		// cgroup.kill), then the shells.
		os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(b) == 0 {
				break
			}
		}
		os.Remove(child)
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove the test cgroup: %v", err)
		}
	})
	for _, place := range []string{dir, child, child} {
		// The third forks without pause: a kill without the freeze
		// would miss children made after cgroup.procs was read.
		script := "sleep 600"
		if len(cmds) == 2 {
			script = "while :; do /bin/true; done"
		}
		c := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(place, "cgroup.procs")+" && exec sh -c '"+script+"'")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20s", what)
			}
		}
	}
	procs := func(d string) string {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		return strings.TrimSpace(string(b))
	}
	waitFor("the processes in the test cgroups", func() bool {
		return len(strings.Fields(procs(dir))) >= 1 && len(strings.Fields(procs(child))) >= 2
	})
	if err := freezeAndKill(dir); err != nil {
		t.Fatal(err)
	}
	// Bounded first: a kill that missed a process must fail the test,
	// not hang it in Wait.
	waitFor("the test cgroups empty", func() bool { return procs(dir) == "" && procs(child) == "" })
	for _, c := range cmds {
		err := c.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("process %d ended with %v, want SIGKILL", c.Process.Pid, err)
		}
	}
	cmds = nil
	if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.freeze")); strings.TrimSpace(string(b)) != "0" {
		t.Errorf("cgroup.freeze is %q after the kill, want 0", b)
	}
}

// An engine that left exec and open denies to BPF LSM programs (reg.LSM)
// must not find an agent that quietly does not run them: where the agent
// finds no BPF LSM, the registration is refused with the reason.
func TestAddRefusesLSMPlanWithoutLSM(t *testing.T) {
	testutil.RequiresRoot(t)
	if kern.ProbeLSM() == "" {
		t.Skip("this kernel runs BPF LSM programs: the agent carries the plan out")
	}
	dir := t.TempDir()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	rules := []Rule{{Name: "no-shell", Event: EventExec, Condition: `exec.path == "/bin/sh"`, Action: ActionDeny, Source: "r.yaml", Line: 1}}
	a := &agent{}
	_, err := a.add(&Registration{Container: Container{ID: "c1"}, Rules: rules, CgroupDir: dir, CgroupID: st.Ino, LSM: true}, false)
	if err == nil || !strings.Contains(err.Error(), "BPF LSM") {
		t.Fatalf("add: %v, want a refusal naming BPF LSM", err)
	}
}

// TestStatsSlotFull: the agent's stats carry the kernel's counters, the
// runs that found no event slot among them (json "slotFull").
func TestStatsSlotFull(t *testing.T) {
	testutil.RequiresRoot(t)
	objs, err := kern.LoadUnpinned()
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	if err := objs.SecmonMaps.SlotFull.Put(uint32(0), uint64(3)); err != nil {
		t.Fatal(err)
	}
	if err := objs.SecmonMaps.Lost.Put(uint32(0), uint64(5)); err != nil {
		t.Fatal(err)
	}
	a := &agent{objs: objs, regs: map[string]*agentReg{}}
	a.stats.Alerts = map[string]map[string]uint64{"r": {"alert": 2}}
	client, server := net.Pipe()
	defer client.Close()
	go a.handle(server)
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(client).Encode(request{Op: "stats"}); err != nil {
		t.Fatal(err)
	}
	var resp response
	if err := json.NewDecoder(client).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resp.Stats), `"slotFull":3`) {
		t.Errorf("stats %s: no slotFull 3", resp.Stats)
	}
	var st Stats
	if err := json.Unmarshal(resp.Stats, &st); err != nil {
		t.Fatal(err)
	}
	if st.SlotFull != 3 || st.Lost != 5 || st.Skipped != 0 || st.Alerts["r"]["alert"] != 2 {
		t.Errorf("stats %+v, want slotFull 3, lost 5, skipped 0, one alert count", st)
	}
}
