package kern

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// The event slots (slot_claim in secmon.bpf.c) are exercised through
// BPF_PROG_TEST_RUN: the programs run in this process, under this
// process's cgroup id, against private maps; nothing is attached.

// perCPU reads the per-CPU values at key k of m.
func perCPU(t *testing.T, m *ebpf.Map, k uint32) []uint64 {
	t.Helper()
	var v []uint64
	if err := m.Lookup(k, &v); err != nil {
		t.Fatalf("read %v: %v", m, err)
	}
	return v
}

// setClaims marks the slots of mask in pool as in use on every CPU, as
// runs preempted halfway through their events would.
func setClaims(t *testing.T, o *Objects, pool uint32, mask uint64) {
	t.Helper()
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	v := make([]uint64, n)
	for i := range v {
		v[i] = mask
	}
	if err := o.SlotClaims.Update(pool, v, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
}

// checkClaims fails unless every CPU's claim mask of pool is want.
func checkClaims(t *testing.T, o *Objects, pool uint32, want uint64, after string) {
	t.Helper()
	for cpu, m := range perCPU(t, o.SlotClaims, pool) {
		if m != want {
			t.Errorf("after %s, CPU %d's claimed slots of pool %d are %#x, want %#x", after, cpu, pool, m, want)
		}
	}
}

// checkFree fails unless every slot of every pool is free.
func checkFree(t *testing.T, o *Objects, after string) {
	t.Helper()
	for pool := range uint32(NPools) {
		checkClaims(t, o, pool, 0, after)
	}
}

// slotTest is the setup the slot tests share: the objects, loaded
// unpinned, with policies for this process's cgroup that make each
// program build an event: exit (every exit reported), sys_enter (write
// and open reported), sys_exit (read denied), exec (an alert rule that
// matches nothing, every exec reported) and ingress (a deny rule on SYNs
// from 10.0.0.0/8 to port 7777).
type slotTest struct {
	o  *Objects
	rd *ringbuf.Reader
	cg uint64
}

func newSlotTest(t *testing.T) *slotTest {
	t.Helper()
	testutil.RequiresRoot(t)
	o, err := LoadUnpinned()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	cg := ownCgroupID(t)
	if err := o.ExitPolicy.Update(cg, &SecmonPolicy{Flags: PolicyReport}, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	sp := &SecmonSysPolicy{NrOpen: 2, NrOpenat: ^uint32(0), NrOpenat2: ^uint32(0), NrCreat: ^uint32(0), NrExecve: ^uint32(0), NrExecveat: ^uint32(0)}
	sp.Report[0] = 1<<1 | 1<<2 // write, open (x86-64 numbers; only the bits matter here)
	if err := o.SysPolicies.Update(cg, sp, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	sd := &SecmonSysDeny{}
	sd.Calls[0] = 1 // the registers read as zeros: call 0
	if err := o.SysDenies.Update(cg, sd, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	ep := &SecmonPolicy{Nrules: 1, Flags: PolicyReport}
	ep.Rules[0].Natoms, ep.Rules[0].Action, ep.Rules[0].Id = 1, ActAlert, 1
	ep.Rules[0].Table[0] = 1 << 1
	ep.Rules[0].Atoms[0] = SecmonAtom{Kind: AtomPathEq, Len: 5}
	copy(ep.Rules[0].Atoms[0].Data[:], "/none")
	if err := o.ExecPolicy.Update(cg, ep, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	setAcceptRule(t, o, cg, ActDeny)
	rd, err := ringbuf.NewReader(o.Events)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return &slotTest{o: o, rd: rd, cg: cg}
}

// setAcceptRule gives the cgroup one accept rule with action act on SYNs
// from 10.0.0.0/8 to port 7777.
func setAcceptRule(t testing.TB, o *Objects, cg uint64, act uint32) {
	t.Helper()
	pol := &SecmonPolicy{Nrules: 1}
	r := &pol.Rules[0]
	r.Natoms, r.Action, r.Id = 2, act, 4
	r.Table[0] = 1 << 0b11
	r.Atoms[0] = SecmonAtom{Kind: AtomCIDR, Len: 96 + 8}
	copy(r.Atoms[0].Data[:], []byte{10: 0xff, 11: 0xff, 12: 10})
	r.Atoms[1] = SecmonAtom{Kind: AtomPort, Lo: 7777, Hi: 7777}
	if err := o.AcceptPolicy.Update(cg, pol, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
}

var (
	deniedSYN  = tcpV4([4]byte{10, 1, 2, 3}, 0, 7777, tcpSYN)
	allowedSYN = tcpV4([4]byte{192, 168, 1, 1}, 0, 7777, tcpSYN)
)

// ingress runs the ingress program on pkt: true when it passes.
func (s *slotTest) ingress(t *testing.T, pkt []byte, repeat uint32) bool {
	t.Helper()
	ret, err := s.o.BerthIngress.Run(&ebpf.RunOptions{Data: pkt, Repeat: repeat})
	if err != nil {
		t.Fatalf("run the ingress program: %v", err)
	}
	return ret == 1
}

// onCPU0 keeps the test's goroutine on CPU 0 until the test ends: a raw
// tracepoint program test-run on CPU 0 from another CPU runs in an
// interrupt there, in another task's cgroup.
func onCPU0(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	var old, cpu0 unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	cpu0.Set(0)
	if err := unix.SchedSetaffinity(0, &cpu0); err != nil {
		t.Skipf("cannot run on CPU 0: %v", err)
	}
	t.Cleanup(func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	})
}

// rawTP runs a raw tracepoint program with arguments args, on CPU 0.
func rawTP(t *testing.T, p *ebpf.Program, args ...uint64) {
	t.Helper()
	ctx := make([]uint64, 3)
	copy(ctx, args)
	if _, err := p.Run(&ebpf.RunOptions{Context: ctx, Flags: unix.BPF_F_TEST_RUN_ON_CPU, CPU: 0}); err != nil {
		t.Fatalf("run %v: %v", p, err)
	}
}

// drain reads the events waiting in the ring buffer, by kind.
func (s *slotTest) drain(t *testing.T) map[uint32]int {
	t.Helper()
	got := map[uint32]int{}
	s.rd.SetDeadline(time.Now().Add(100 * time.Millisecond))
	for {
		rec, err := s.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		var ev SecmonEvent
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Cgid == s.cg {
			got[ev.Kind]++
		}
	}
}

// rounds runs every program that builds an event n times, with the
// right verdicts, and checks the events they reported and that none
// found its pool's slots all in use.
func (s *slotTest) rounds(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if s.ingress(t, deniedSYN, 1) {
			t.Fatalf("run %d: the denied SYN passed", i)
		}
		if !s.ingress(t, allowedSYN, 1) {
			t.Fatalf("run %d: the allowed SYN was dropped", i)
		}
		rawTP(t, s.o.BerthExit, 0)
		rawTP(t, s.o.BerthExec, 0, 0, 0)
		rawTP(t, s.o.BerthSysEnter, 0, 1)              // write: reported
		rawTP(t, s.o.BerthSysEnter, 0, 2)              // open for reading: not reported
		rawTP(t, s.o.BerthSysExit, 0, uint64(1<<64-1)) // -EPERM
		rawTP(t, s.o.BerthAccept, 0, 3, 1)             // no socket: returns before a slot
	}
	got := s.drain(t)
	// Two system call events a round (write at entry, the refused call
	// at exit); accept events for the denied SYNs only (the policy does
	// not report every SYN).
	for kind, want := range map[uint32]int{KindExit: n, KindExec: n, KindSyscall: 2 * n, KindAccept: n} {
		if got[kind] != want {
			t.Errorf("%d events of kind %d, want %d (all: %v)", got[kind], kind, want, got)
		}
	}
	if f := s.o.SlotFull(); f != 0 {
		t.Errorf("%d runs found no slot free", f)
	}
}

// TestSlotsReleased: every program that builds an event gives its slot
// back on every path (reported or not, passed or dropped), so the claim
// masks are zero after many runs.
func TestSlotsReleased(t *testing.T) {
	s := newSlotTest(t)
	onCPU0(t)
	s.rounds(t, 50)
	checkFree(t, s.o, "many runs of every program")
}

// TestSlotsInterleaved: a run that starts while another holds a slot of
// its pool on the same CPU (preempted halfway through its event) takes
// another slot and leaves the held one as it was; with every slot of its
// pool held, a run fails closed where a rule denies and counts its event
// lost.
func TestSlotsInterleaved(t *testing.T) {
	s := newSlotTest(t)
	onCPU0(t)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	// Slot 0 of the tracepoint and ingress pools of every CPU holds
	// another run's half-built event.
	held := make([]SecmonSlot, ncpu)
	for i := range held {
		held[i].Ev.Kind, held[i].Ev.Cgid, held[i].Ev.Pid = 99, 12345, 678
		held[i].Pb.B[100] = 7
	}
	pools := []uint32{PoolTracepoint, PoolSoftirq}
	for _, pool := range pools {
		if err := s.o.Slots.Update(pool*NSlots, held, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
		setClaims(t, s.o, pool, 1)
	}
	if s.ingress(t, deniedSYN, 1) || !s.ingress(t, allowedSYN, 1) {
		t.Error("with slot 0 held, the ingress verdicts changed")
	}
	rawTP(t, s.o.BerthExit, 0)
	rawTP(t, s.o.BerthExec, 0, 0, 0)
	for _, pool := range pools {
		checkClaims(t, s.o, pool, 1, "runs while slot 0 was held")
		var slot0 []SecmonSlot
		if err := s.o.Slots.Lookup(pool*NSlots, &slot0); err != nil {
			t.Fatal(err)
		}
		for cpu := range slot0 {
			if e := slot0[cpu].Ev; e.Kind != 99 || e.Cgid != 12345 || e.Pid != 678 || slot0[cpu].Pb.B[100] != 7 {
				t.Errorf("pool %d, CPU %d: the held slot 0 was overwritten: kind %d, cgroup %d, pid %d", pool, cpu, e.Kind, e.Cgid, e.Pid)
			}
		}
	}
	checkClaims(t, s.o, PoolTask, 0, "runs while slot 0 was held")
	var slot1 []SecmonSlot
	if err := s.o.Slots.Lookup(uint32(PoolTracepoint*NSlots+1), &slot1); err != nil {
		t.Fatal(err)
	}
	// The raw tracepoint programs ran on CPU 0; the exec run came last.
	if e := slot1[0].Ev; e.Kind != KindExec || e.Cgid != s.cg {
		t.Errorf("CPU 0's tracepoint slot 1 holds an event of kind %d for cgroup %d, want the exec run's (%d, %d)", e.Kind, e.Cgid, KindExec, s.cg)
	}
	if got := s.drain(t); got[KindExit] != 1 || got[KindExec] != 1 {
		t.Errorf("events %v, want one exit and one exec", got)
	}

	// Every slot of the two pools held.
	for _, pool := range pools {
		setClaims(t, s.o, pool, 1<<NSlots-1)
	}
	lost, full := s.o.Lost(), s.o.SlotFull()
	rawTP(t, s.o.BerthExit, 0)
	if s.ingress(t, allowedSYN, 1) {
		t.Error("with every slot held, a SYN the rule does not match passed: want it dropped (fail closed)")
	}
	setAcceptRule(t, s.o, s.cg, ActAlert)
	if !s.ingress(t, deniedSYN, 1) {
		t.Error("with every slot held and only an alert rule, the SYN was dropped")
	}
	if d := s.o.Lost() - lost; d != 3 {
		t.Errorf("lost grew by %d, want 3", d)
	}
	if d := s.o.SlotFull() - full; d != 3 {
		t.Errorf("slot_full grew by %d, want 3", d)
	}
	if got := s.drain(t); len(got) != 0 {
		t.Errorf("events %v with every slot held, want none", got)
	}
	for _, pool := range pools {
		checkClaims(t, s.o, pool, 1<<NSlots-1, "runs that found every slot held")
		setClaims(t, s.o, pool, 0)
	}
}

// TestSlotsPools: with every slot of the preemptible programs' pool held
// on every CPU (what connect and sendmsg runs preempted halfway could do,
// by the thousand, under full preemption), the tracepoint and ingress
// programs still get slots: execs are judged and reported, not killed,
// SYNs judged, not dropped, and nothing counts in slot_full.
func TestSlotsPools(t *testing.T) {
	s := newSlotTest(t)
	onCPU0(t)
	setClaims(t, s.o, PoolTask, 1<<NSlots-1)
	t.Cleanup(func() { setClaims(t, s.o, PoolTask, 0) })
	lost := s.o.Lost()
	s.rounds(t, 10)
	if d := s.o.Lost() - lost; d != 0 {
		t.Errorf("lost grew by %d", d)
	}
	checkClaims(t, s.o, PoolTask, 1<<NSlots-1, "the runs")
	checkClaims(t, s.o, PoolTracepoint, 0, "the runs")
	checkClaims(t, s.o, PoolSoftirq, 0, "the runs")
}

// runThreads runs f(0) .. f(n-1) at once, each on a thread of its own,
// and fails the test with their errors.
func runThreads(t *testing.T, n int, f func(g int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := f(g); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSlotsConcurrent runs the ingress program from many threads at once
// on denied and allowed SYNs: every verdict is right, and the slots are
// all free at the end.
func TestSlotsConcurrent(t *testing.T) {
	s := newSlotTest(t)
	const threads, rounds = 8, 200
	runThreads(t, threads, func(g int) error {
		for i := range rounds {
			pkt, pass := deniedSYN, false
			if (g+i)%2 == 0 {
				pkt, pass = allowedSYN, true
			}
			ret, err := s.o.BerthIngress.Run(&ebpf.RunOptions{Data: pkt, Repeat: 20})
			if err != nil {
				return err
			}
			if (ret == 1) != pass {
				return fmt.Errorf("thread %d round %d: verdict %d, want pass=%v", g, i, ret, pass)
			}
		}
		return nil
	})
	checkFree(t, s.o, "concurrent runs")
	t.Logf("runs that found no slot free: %d", s.o.SlotFull())
}

// TestLSMSlotsStress: with the BPF LSM programs attached, many threads
// open files for writing at once, under a denied prefix and beside it;
// every open gets the right answer and the slots are free at the end.
// On a kernel with full preemption (the test VM boots with preempt=full)
// the programs are preempted halfway through their events here.
func TestLSMSlotsStress(t *testing.T) {
	o := loadForLSM(t, "slots")
	base := t.TempDir()
	denied, allowed := filepath.Join(base, "denied"), filepath.Join(base, "allowed")
	const threads, rounds = 16, 300
	for _, d := range []string{denied, allowed} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for g := range threads {
			if err := os.WriteFile(filepath.Join(d, strconv.Itoa(g)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cg := ownCgroupID(t)
	pol := &SecmonPolicy{Nrules: 1, Flags: PolicyDeny}
	pol.Rules[0].Natoms, pol.Rules[0].Action, pol.Rules[0].Id = 1, ActDeny, 3
	pol.Rules[0].Table[0] = 1 << 1
	prefix := denied + "/"
	pol.Rules[0].Atoms[0] = SecmonAtom{Kind: AtomPathPrefix, Len: uint32(len(prefix))}
	copy(pol.Rules[0].Atoms[0].Data[:], prefix)
	if err := o.OpenPolicy.Update(cg, pol, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	defer o.OpenPolicy.Delete(cg)
	if err := o.AttachLSM(); err != nil {
		t.Fatal(err)
	}
	defer o.DetachLSM()

	runThreads(t, threads, func(g int) error {
		name := strconv.Itoa(g)
		for i := range rounds {
			p, deny := filepath.Join(allowed, name), false
			if (g+i)%2 == 0 {
				p, deny = filepath.Join(denied, name), true
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			if deny != errors.Is(err, unix.EACCES) || (!deny && err != nil) {
				return fmt.Errorf("thread %d round %d: open %s for writing: %v (want denied=%v)", g, i, p, err, deny)
			}
		}
		return nil
	})
	o.DetachLSM()
	checkFree(t, o, "the concurrent opens")
	t.Logf("runs that found no slot free: %d", o.SlotFull())
}

// TestConnectSlots: the connect programs, attached to a cgroup this test
// makes, refuse the connects a rule denies and let the others through,
// from several processes in the cgroup at once, and give their slots
// back. Where the kernel lets them use task storage they build their
// events in their tasks' own slots, and work with every per-CPU slot
// held; where it does not (their task storage calls taken out, as the
// loader does on such kernels), they use the preemptible programs' pool,
// not the others'.
func TestConnectSlots(t *testing.T) {
	testutil.RequiresRoot(t)
	if os.Getenv("BERTH_CONNECT_HELPER") != "" {
		t.Skip("the helper's own run")
	}
	t.Run("task", func(t *testing.T) {
		if why := ProbeConnectTaskSlot(); why != "" {
			t.Skip(why)
		}
		connectSlots(t, false)
	})
	t.Run("percpu", func(t *testing.T) { connectSlots(t, true) })
}

// withoutTaskSlots replaces o's connect programs with ones whose task
// storage calls are taken out.
func withoutTaskSlots(t *testing.T, o *Objects) {
	t.Helper()
	spec := o.spec.Copy()
	want := 2
	if ProbeConnectTaskSlot() != "" {
		want = 0 // the loader took them out already
	}
	for _, ps := range spec.Programs {
		if ps.Type != ebpf.CGroupSockAddr {
			continue
		}
		if n := takeOutCalls(ps.Instructions, asm.FnGetCurrentTaskBtf, asm.FnTaskStorageGet); n != want {
			t.Fatalf("%s: %d task storage calls taken out, want %d", ps.Name, n, want)
		}
	}
	var p struct {
		C4 *ebpf.Program `ebpf:"berth_connect4"`
		C6 *ebpf.Program `ebpf:"berth_connect6"`
		S4 *ebpf.Program `ebpf:"berth_sendmsg4"`
		S6 *ebpf.Program `ebpf:"berth_sendmsg6"`
	}
	if err := spec.LoadAndAssign(&p, &ebpf.CollectionOptions{MapReplacements: mapsByName(&o.SecmonMaps)}); err != nil {
		t.Fatalf("load the connect programs without task storage: %v", err)
	}
	closeAll(o.BerthConnect4, o.BerthConnect6, o.BerthSendmsg4, o.BerthSendmsg6)
	o.BerthConnect4, o.BerthConnect6, o.BerthSendmsg4, o.BerthSendmsg6 = p.C4, p.C6, p.S4, p.S6
}

func connectSlots(t *testing.T, perCPU bool) {
	name := "connect-task"
	if perCPU {
		name = "connect-percpu"
	}
	o := loadPinned(t, name)
	if perCPU {
		withoutTaskSlots(t, o)
	}
	cgDir := filepath.Join(ownCgroupDir(t), "berth-test-slots-"+name+"-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cgDir); err != nil {
			t.Errorf("remove the test's cgroup: %v", err)
		}
	})
	cg := cgroupID(t, cgDir)
	pol := &SecmonPolicy{Nrules: 1}
	r := &pol.Rules[0]
	r.Natoms, r.Action, r.Id = 1, ActDeny, 9
	r.Table[0] = 1 << 1
	r.Atoms[0] = SecmonAtom{Kind: AtomCIDR, Len: 128}
	copy(r.Atoms[0].Data[:], []byte{10: 0xff, 11: 0xff, 12: 127, 13: 0, 14: 0, 15: 77})
	if err := o.ConnectPolicy.Update(cg, pol, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if err := o.AttachConnect(cgDir, cg); err != nil {
		t.Fatal(err)
	}
	defer o.DetachCgroup(cg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	fd, err := unix.Open(cgDir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// The other pools' slots held throughout (and, with task slots,
	// the preemptible programs' pool too): the connect programs take
	// theirs from that pool alone, or from their tasks'.
	held := []uint32{PoolTracepoint, PoolSoftirq}
	if !perCPU {
		held = append(held, PoolTask)
	}
	for _, pool := range held {
		setClaims(t, o, pool, 1<<NSlots-1)
	}
	const procs = 4
	var cmds []*exec.Cmd
	for range procs {
		c := exec.Command("/proc/self/exe", "-test.run=^TestConnectHelper$", "-test.v")
		c.Env = append(os.Environ(), "BERTH_CONNECT_HELPER="+strconv.Itoa(port))
		c.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		c.Stdout, c.Stderr = &bytes.Buffer{}, &bytes.Buffer{}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil || !strings.Contains(fmt.Sprint(c.Stdout), "--- PASS: TestConnectHelper") {
			t.Errorf("helper: %v: %s%s", err, c.Stdout, c.Stderr)
		}
	}
	o.DetachCgroup(cg)
	for _, pool := range held {
		checkClaims(t, o, pool, 1<<NSlots-1, "the connects")
		setClaims(t, o, pool, 0)
	}
	checkFree(t, o, "the connects")
	t.Logf("connect runs that found no slot free: %d", o.SlotFull())
}

// TestConnectHelper runs in the processes TestConnectSlots starts in its
// cgroup: connects to 127.0.0.77 fail with EPERM, those to the test's
// listener on 127.0.0.1 succeed.
func TestConnectHelper(t *testing.T) {
	port := os.Getenv("BERTH_CONNECT_HELPER")
	if port == "" {
		t.Skip("run by TestConnectSlots")
	}
	runThreads(t, 4, func(g int) error {
		for i := range 100 {
			c, err := net.DialTimeout("tcp", "127.0.0.77:"+port, 5*time.Second)
			if err == nil {
				c.Close()
			}
			if !errors.Is(err, unix.EPERM) {
				return fmt.Errorf("thread %d round %d: connect to 127.0.0.77: %v, want EPERM", g, i, err)
			}
			c, err = net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
			if err != nil {
				return fmt.Errorf("thread %d round %d: connect to 127.0.0.1: %v", g, i, err)
			}
			c.Close()
		}
		return nil
	})
}

// BenchmarkIngressProgram times one run of the ingress program
// (BPF_PROG_TEST_RUN) under an accept deny rule, on a SYN the rule denies
// (the event is built, judged and reported) and on one it lets through
// (built and judged): what a program run that builds an event costs,
// slot claim and release included.
func BenchmarkIngressProgram(b *testing.B) {
	testutil.RequiresRoot(b)
	o, err := LoadUnpinned()
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	setAcceptRule(b, o, ownCgroupID(b), ActDeny)
	for name, pkt := range map[string][]byte{"denied": deniedSYN, "allowed": allowedSYN} {
		b.Run(name, func(b *testing.B) {
			_, d, err := o.BerthIngress.Benchmark(pkt, b.N, b.ResetTimer)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/run")
		})
	}
}

// TestSlotFullPinned: slot_full is pinned: an agent that loads the
// objects again (a restart, whose predecessor's programs go on running
// through their pinned links) reads the count those programs keep.
func TestSlotFullPinned(t *testing.T) {
	o := loadPinned(t, "slotfull")
	if err := o.SecmonMaps.SlotFull.Put(uint32(0), uint64(7)); err != nil {
		t.Fatal(err)
	}
	again, err := Load(o.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if n := again.SlotFull(); n != 7 {
		t.Errorf("the second load reads slot_full %d, want 7", n)
	}
}
