package secmon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/secmon/kern"
)

// AgentOptions configure the agent.
type AgentOptions struct {
	Dir    string // DefaultAgentDir
	PinDir string // DefaultPinDir
	Log    *slog.Logger
	// IdleExit is how long an agent without containers waits for one
	// before it removes its pins and exits (default 10s).
	IdleExit time.Duration
}

// agent is the one monitor process of a host.
type agent struct {
	o          AgentOptions
	objs       *kern.Objects
	bootOffset time.Duration // wall clock minus CLOCK_BOOTTIME
	hooks      chan Alert    // to the webhook poster

	mu       sync.Mutex // guards the fields below
	regs     map[string]*agentReg
	byCgroup map[uint64]*agentReg
	files    map[string]*os.File
	stats    Stats
	// synSeen dedupes accept deny reports: a denied SYN is sent again
	// by the peer (1 s, 3 s, ...); one attempt is one alert.
	synSeen map[synKey]time.Time
	exiting bool
	empty   chan struct{} // closed when the last container goes
}

type agentReg struct {
	Registration
	rs     *RuleSet
	sys    bool // has system calls reported
	accept bool // has inbound connections reported
	exit   bool // has process exits reported
	// sysDeny: has the refusals of its seccomp deny rules reported.
	sysDeny bool
	lsm     bool // has exec or open denies the BPF LSM programs carry out
	// landlockOpen: berth-runtime's Landlock denies the container's
	// opens (no BPF LSM), so the open attempts reported at system call
	// entry are judged by the deny rules for their alerts.
	landlockOpen bool
	// Engine events are limited to engineEventsPerSecond per container
	// (the alerts log has them all): a container exec'ing in a loop must
	// not flood the engine's log. Guarded by agent.mu.
	evWindow time.Time
	evCount  int
}

const (
	engineEventsPerSecond = 20
	// maxAlertsFile is where the alerts log is rotated (to .1).
	maxAlertsFile = 64 << 20
)

// RunAgent runs the agent until ctx ends or the last container with rules
// goes (then every pin is removed). Only one agent runs per Dir: a second
// waits for the first's lock, up to 10 s.
func RunAgent(ctx context.Context, o AgentOptions) error {
	if o.Dir == "" {
		o.Dir = DefaultAgentDir
	}
	if o.PinDir == "" {
		o.PinDir = DefaultPinDir
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.IdleExit == 0 {
		o.IdleExit = 10 * time.Second
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "containers"), 0o700); err != nil {
		return fmt.Errorf("agent directory: %w", err)
	}
	lock, err := lockFile(ctx, filepath.Join(o.Dir, "agent.lock"), 10*time.Second)
	if err != nil {
		return fmt.Errorf("another agent holds %s: %w", o.Dir, err)
	}
	defer lock.Close()

	if err := kern.MountBPFFS(); err != nil {
		return err
	}
	objs, err := kern.Load(o.PinDir)
	if err != nil {
		return err
	}
	a := &agent{
		o: o, objs: objs, hooks: make(chan Alert, 256),
		regs: map[string]*agentReg{}, byCgroup: map[uint64]*agentReg{}, files: map[string]*os.File{}, synSeen: map[synKey]time.Time{},
		empty: make(chan struct{}),
	}
	a.stats.Alerts = map[string]map[string]uint64{}
	var ts, bt unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt)
	a.bootOffset = time.Duration(ts.Nano() - bt.Nano())
	if err := objs.AttachExec(); err != nil {
		objs.Close()
		return err
	}
	a.restore()

	rd, err := ringbuf.NewReader(objs.Events)
	if err != nil {
		objs.Close()
		return fmt.Errorf("open the event ring buffer: %w", err)
	}
	sock := filepath.Join(o.Dir, "agent.sock")
	os.Remove(sock) // ours: we hold the agent lock
	ln, err := net.Listen("unix", sock)
	if err != nil {
		rd.Close()
		objs.Close()
		return fmt.Errorf("agent socket: %w", err)
	}
	os.Chmod(sock, 0o600)
	os.WriteFile(filepath.Join(o.Dir, "agent.pid"), []byte(fmt.Sprint(os.Getpid())), 0o600)
	o.Log.Info("secmon agent started", "containers", len(a.regs), "pins", o.PinDir)

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a.serve(ln) }()
	go func() { defer wg.Done(); a.read(rd) }()
	go func() { defer wg.Done(); a.postWebhooks() }()

	sweep := time.NewTicker(2 * time.Second)
	defer sweep.Stop()
	idle := time.NewTimer(o.IdleExit)
	defer idle.Stop()
	last := false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-a.empty:
			last = true
			break loop
		case <-idle.C:
			a.mu.Lock()
			if len(a.regs) == 0 {
				a.exiting, last = true, true
			}
			a.mu.Unlock()
			if last {
				break loop
			}
		case <-sweep.C:
			a.sweep()
		}
	}
	a.mu.Lock()
	a.exiting = true
	a.mu.Unlock()
	ln.Close()
	os.Remove(sock)
	rd.Close()
	close(a.hooks)
	wg.Wait()
	a.mu.Lock()
	for _, f := range a.files {
		f.Close()
	}
	a.mu.Unlock()
	objs.Close()
	if last {
		o.Log.Info("secmon agent: no containers left; removing the pins")
		if err := kern.Unpin(o.PinDir); err != nil {
			return fmt.Errorf("remove the pins: %w", err)
		}
	}
	os.Remove(filepath.Join(o.Dir, "agent.pid"))
	return nil
}

// lockFile takes an exclusive flock, waiting up to d.
func lockFile(ctx context.Context, path string, d time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(d)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) || ctx.Err() != nil {
			f.Close()
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *agent) regPath(id string) string { return filepath.Join(a.o.Dir, "containers", id+".json") }

// restore takes up the containers a previous agent registered: their
// kernel state is still pinned; the maps are rewritten from the rules
// (the same values) and containers whose cgroup is gone are dropped.
func (a *agent) restore() {
	ents, _ := os.ReadDir(filepath.Join(a.o.Dir, "containers"))
	for _, e := range ents {
		p := filepath.Join(a.o.Dir, "containers", e.Name())
		b, err := os.ReadFile(p)
		var reg Registration
		if err == nil {
			err = json.Unmarshal(b, &reg)
		}
		if err == nil {
			_, err = a.add(&reg, false)
		}
		if err != nil {
			a.o.Log.Warn("secmon agent: dropping a registration", "file", p, "err", err)
			os.Remove(p)
			// What an earlier agent put in the kernel for a cgroup
			// that is gone goes too. A live container's entries stay:
			// its rules keep being enforced as they were compiled
			// (never dropped silently), without alerts.
			if reg.CgroupID != 0 && a.byCgroup[reg.CgroupID] == nil && !cgroupAlive(reg.CgroupDir, reg.CgroupID) {
				a.forget(reg.CgroupID)
			}
		}
	}
	live := map[uint64]bool{}
	for id := range a.byCgroup {
		live[id] = true
	}
	for _, id := range a.objs.CgroupLinks() {
		if !live[id] {
			a.objs.DetachCgroup(id)
		}
	}
}

// add compiles a container's rules and puts them in the kernel.
// add takes a container's registration: it compiles the rules and puts
// the plan into the kernel. It says whether the BPF LSM programs carry
// out some of them.
func (a *agent) add(reg *Registration, persist bool) (bool, error) {
	if reg.Container.ID == "" || strings.ContainsAny(reg.Container.ID, "/.") || reg.CgroupID == 0 || reg.CgroupDir == "" {
		return false, errors.New("registration without a container id or cgroup")
	}
	if !cgroupAlive(reg.CgroupDir, reg.CgroupID) {
		return false, fmt.Errorf("cgroup %s (id %d) does not exist", reg.CgroupDir, reg.CgroupID)
	}
	rs, err := CompileRules(reg.Rules)
	if err != nil {
		return false, err
	}
	plan, err := rs.Plan(reg.Container)
	if err != nil {
		return false, err
	}
	if reg.LSM && !plan.NeedsLSM() {
		return false, fmt.Errorf("the engine left exec and open denies to BPF LSM programs, which this agent does not use here (%s)", kern.ProbeLSM())
	}
	return plan.NeedsLSM(), a.install(reg, persist, rs, plan)
}

// install puts a container's plan into the kernel.
func (a *agent) install(reg *Registration, persist bool, rs *RuleSet, plan *Plan) error {
	r := &agentReg{Registration: *reg, rs: rs}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.exiting {
		return errAgentExiting
	}
	if persist {
		b, _ := json.Marshal(reg)
		if err := writeFileAtomic(a.regPath(reg.Container.ID), b); err != nil {
			return err
		}
	}
	cg := reg.CgroupID
	if old := a.regs[reg.Container.ID]; old != nil && old.CgroupID != cg {
		// The container restarted in a new cgroup.
		a.forget(old.CgroupID)
		delete(a.byCgroup, old.CgroupID)
	}
	if plan.NeedsLSM() {
		// Before the policies: an exec deny in exec_policy without the
		// LSM program would be nobody's to carry out.
		if err := a.objs.AttachLSM(); err != nil {
			return err
		}
	}
	for _, x := range []struct {
		m   *ebpf.Map
		pol KernelPolicy
	}{{a.objs.ExecPolicy, plan.Exec}, {a.objs.ConnectPolicy, plan.Connect}, {a.objs.AcceptPolicy, plan.AcceptDeny}, {a.objs.ExitPolicy, plan.Exit}, {a.objs.OpenPolicy, plan.Open}} {
		if x.pol.Empty() {
			x.m.Delete(cg)
			continue
		}
		kp := toKern(x.pol)
		if err := x.m.Update(cg, kp, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update the policy map: %w", err)
		}
	}
	if !plan.Connect.Empty() {
		if err := a.objs.AttachConnect(reg.CgroupDir, cg); err != nil {
			return err
		}
	}
	if !plan.AcceptDeny.Empty() {
		if err := a.objs.AttachIngress(reg.CgroupDir, cg); err != nil {
			return err
		}
	} else {
		a.objs.DetachIngress(cg)
	}
	if !plan.Exit.Empty() {
		if err := a.objs.AttachExit(); err != nil {
			return err
		}
	}
	if err := putEntry(a.objs.SysPolicies, cg, len(plan.Syscalls) > 0, func() any { return sysPolicy(plan.Syscalls) }, a.objs.AttachSysEnter); err != nil {
		return fmt.Errorf("the system calls reported: %w", err)
	}
	if err := putEntry(a.objs.SysDenies, cg, len(plan.SysDeny) > 0, func() any { return sysDeny(plan.SysDeny) }, a.objs.AttachSysExit); err != nil {
		return fmt.Errorf("the system call refusals reported: %w", err)
	}
	if plan.Accept {
		if err := a.objs.AcceptWatch.Update(cg, uint32(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update the accept map: %w", err)
		}
		if err := a.objs.AttachAccept(); err != nil {
			return err
		}
	} else {
		a.objs.AcceptWatch.Delete(cg)
	}
	r.sys, r.accept, r.exit = len(plan.Syscalls) > 0, plan.Accept, !plan.Exit.Empty()
	r.lsm, r.landlockOpen, r.sysDeny = plan.NeedsLSM(), len(plan.Landlock.Write) > 0, len(plan.SysDeny) > 0
	a.regs[reg.Container.ID] = r
	a.byCgroup[cg] = r
	return nil
}

// putEntry sets the container's entry of m (when on) and attaches the
// host-wide program that reads it, or deletes the entry.
func putEntry(m *ebpf.Map, cg uint64, on bool, value func() any, attach func() error) error {
	if !on {
		m.Delete(cg)
		return nil
	}
	if err := m.Update(cg, value(), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update the map: %w", err)
	}
	return attach()
}

// sysPolicy is the kernel's table of the system calls to report.
func sysPolicy(names []string) *kern.SecmonSysPolicy {
	sp := &kern.SecmonSysPolicy{NrOpen: ^uint32(0), NrOpenat: ^uint32(0), NrOpenat2: ^uint32(0), NrCreat: ^uint32(0),
		NrExecve: ^uint32(0), NrExecveat: ^uint32(0)}
	for _, n := range names {
		nr, ok := sysNumbers[n]
		if !ok || nr >= kern.MaxSyscall {
			continue
		}
		sp.Report[nr/64] |= 1 << (nr % 64)
		switch n {
		case "open":
			sp.NrOpen = nr
		case "openat":
			sp.NrOpenat = nr
		case "openat2":
			sp.NrOpenat2 = nr
		case "creat":
			sp.NrCreat = nr
		case "execve":
			sp.NrExecve = nr
		case "execveat":
			sp.NrExecveat = nr
		}
	}
	return sp
}

// sysDeny is the kernel's table of the calls whose refusals are reported.
func sysDeny(names []string) *kern.SecmonSysDeny {
	sd := &kern.SecmonSysDeny{}
	for _, n := range names {
		if nr, ok := sysNumbers[n]; ok && nr < kern.MaxSyscall {
			sd.Calls[nr/64] |= 1 << (nr % 64)
		}
	}
	return sd
}

// syscallKinds maps a reported call's number to its name and event kind.
func syscallKind(nr uint32) (name, kind string) {
	for n, v := range sysNumbers {
		if v == nr {
			name = n
			break
		}
	}
	for k, names := range syscallEvents {
		if slices.Contains(names, name) {
			return name, k
		}
	}
	return name, ""
}

var errAgentExiting = errors.New("the agent is exiting")

// remove takes a container out of the kernel and the agent.
func (a *agent) remove(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.removeLocked(id)
}

// forget removes a cgroup's entries from every policy map and its links.
func (a *agent) forget(cg uint64) {
	for _, m := range []*ebpf.Map{a.objs.ExecPolicy, a.objs.ConnectPolicy, a.objs.SysPolicies, a.objs.AcceptWatch,
		a.objs.AcceptPolicy, a.objs.ExitPolicy, a.objs.OpenPolicy, a.objs.SysDenies} {
		m.Delete(cg)
	}
	a.objs.DetachCgroup(cg)
}

func (a *agent) removeLocked(id string) {
	r := a.regs[id]
	os.Remove(a.regPath(id))
	if r == nil {
		return
	}
	a.forget(r.CgroupID)
	delete(a.regs, id)
	delete(a.byCgroup, r.CgroupID)
	// The host-wide programs no container needs any more go: every
	// system call, exit, TCP state change, exec or open of the host
	// pays their lookup.
	left := slices.Collect(maps.Values(a.regs))
	for _, x := range []struct {
		needs  func(*agentReg) bool
		detach func() error
	}{
		{func(r *agentReg) bool { return r.sys }, a.objs.DetachSysEnter},
		{func(r *agentReg) bool { return r.accept }, a.objs.DetachAccept},
		{func(r *agentReg) bool { return r.exit }, a.objs.DetachExit},
		{func(r *agentReg) bool { return r.lsm }, a.objs.DetachLSM},
		{func(r *agentReg) bool { return r.sysDeny }, a.objs.DetachSysExit},
	} {
		if !slices.ContainsFunc(left, x.needs) {
			x.detach()
		}
	}
	if len(a.regs) == 0 && !a.exiting {
		a.exiting = true
		close(a.empty)
	}
}

// sweep drops containers whose cgroup is gone (a teardown that did not
// tell the agent: a crash, a kill -9).
func (a *agent) sweep() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, r := range a.regs {
		if !cgroupAlive(r.CgroupDir, r.CgroupID) {
			a.removeLocked(id)
		}
	}
}

// killCgroup kills every process of a container's cgroup (and its
// children) at once: cgroup.kill (Linux 5.14), else frozen, each process
// SIGKILLed, thawed. The id guards against a new cgroup of the same name.
func killCgroup(dir string, id uint64) error {
	if !cgroupAlive(dir, id) {
		return nil // gone already
	}
	err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return freezeAndKill(dir)
}

// freezeAndKill kills every process of the cgroup dir and its children
// where the kernel has no cgroup.kill (before 5.14): frozen first, so that
// no process forks a child between the read of cgroup.procs and the
// kills, then SIGKILLed (a fatal signal reaches frozen tasks), then
// thawed. Freezing is not immediate: the kills wait until cgroup.events
// says "frozen 1" (bounded), and the passes repeat while processes remain
// (a child forked before the freeze took hold), a bounded number of times.
func freezeAndKill(dir string) error {
	freeze := filepath.Join(dir, "cgroup.freeze")
	if err := os.WriteFile(freeze, []byte("1"), 0); err != nil {
		return fmt.Errorf("freeze %s: %w", dir, err)
	}
	defer os.WriteFile(freeze, []byte("0"), 0)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.events")); err != nil || strings.Contains(string(b), "frozen 1") {
			break
		}
	}
	for pass := 0; pass < 10; pass++ {
		killed := 0
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 && unix.Kill(pid, unix.SIGKILL) == nil {
					killed++
				}
			}
			return nil
		})
		if killed == 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond) // the killed leave cgroup.procs
	}
	return fmt.Errorf("kill the processes of %s: some remain after 10 passes", dir)
}

// cgroupAlive says whether dir is still the cgroup with that id (a new
// cgroup of the same name has another id).
func cgroupAlive(dir string, id uint64) bool {
	var st unix.Stat_t
	return unix.Stat(dir, &st) == nil && st.Ino == id
}

func toKern(p KernelPolicy) *kern.SecmonPolicy {
	kp := &kern.SecmonPolicy{Nrules: uint32(len(p.Rules))}
	if p.Report {
		kp.Flags |= kern.PolicyReport
	}
	for i, r := range p.Rules {
		kr := &kp.Rules[i]
		kr.Natoms, kr.Action, kr.Id, kr.Table = uint32(len(r.Atoms)), r.Action, r.ID, r.Table
		if r.Action == kern.ActDeny {
			kp.Flags |= kern.PolicyDeny
		}
		for j, at := range r.Atoms {
			ka := &kr.Atoms[j]
			ka.Kind, ka.Len, ka.Lo, ka.Hi = at.Kind, at.Len, at.Lo, at.Hi
			copy(ka.Data[:], at.Data)
		}
	}
	return kp
}

// serve answers the engine's and the hooks' requests.
func (a *agent) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go a.handle(c)
	}
}

func (a *agent) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var req request
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		return
	}
	var resp response
	switch req.Op {
	case "ping":
	case "add":
		if req.Reg == nil {
			resp.Error = "add: no registration"
		} else if lsm, err := a.add(req.Reg, true); err != nil {
			resp.Error = err.Error()
		} else {
			resp.LSM = lsm
		}
	case "remove":
		a.remove(req.ID)
	case "stats":
		// The kernel's counters are read outside the lock: Skipped
		// opens a pinned link per host-wide program, and a.objs does
		// not change.
		lost, full, skipped := a.objs.Lost(), a.objs.SlotFull(), a.objs.Skipped()
		a.mu.Lock()
		st := a.stats
		st.Containers = len(a.regs)
		st.Lost, st.SlotFull, st.Skipped = lost, full, skipped
		b, _ := json.Marshal(st) // under the lock: st.Alerts is a.stats'
		a.mu.Unlock()
		resp.Stats = b
	default:
		resp.Error = fmt.Sprintf("unknown op %q", req.Op)
	}
	json.NewEncoder(c).Encode(resp)
}

// read turns the kernel's events into alerts.
func (a *agent) read(rd *ringbuf.Reader) {
	size := binary.Size(kern.SecmonEvent{})
	buf := make([]byte, size)
	for {
		rec, err := rd.Read()
		if err != nil {
			return
		}
		var ev kern.SecmonEvent
		if err := decodeEvent(rec.RawSample, buf, &ev); err != nil {
			continue
		}
		a.event(&ev)
	}
}

// decodeEvent decodes one ring-buffer sample into ev. A sample shorter
// than the event comes from an older version's program (queued before
// this agent replaced its pinned link, or sent through a link it could
// not check): the fields added since read as zero. buf is scratch space
// of the event's size.
func decodeEvent(sample, buf []byte, ev *kern.SecmonEvent) error {
	n := copy(buf, sample)
	clear(buf[n:])
	return binary.Read(bytes.NewReader(buf), binary.NativeEndian, ev)
}

// synKey is one inbound connection attempt of a container.
type synKey struct {
	cgid             uint64
	peer             [16]byte
	peerPort, locPrt uint16
}

// synWindow is how long after the last SYN of an attempt a SYN from the
// same peer address and port counts as its retransmit (Linux waits 1, 2,
// 4, 8, 16, 32 s between tries: a peer still trying after some 15 s
// shows up again).
const synWindow = 10 * time.Second

// synRepeat says whether a denied SYN repeats one seen within synWindow,
// and records it. Guarded by a.mu.
func (a *agent) synRepeat(k synKey, now time.Time) bool {
	if t, ok := a.synSeen[k]; ok && now.Sub(t) < synWindow {
		a.synSeen[k] = now
		return true
	}
	if len(a.synSeen) >= 4096 {
		for k, t := range a.synSeen {
			if now.Sub(t) >= synWindow {
				delete(a.synSeen, k)
			}
		}
	}
	if len(a.synSeen) < 4096 { // a flood of distinct peers: report them all
		a.synSeen[k] = now
	}
	return false
}

func cstr(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

var actionNames = map[uint32]string{kern.ActAlert: ActionAlert, kern.ActDeny: ActionDeny, kern.ActKill: ActionKill}

func (a *agent) event(ev *kern.SecmonEvent) {
	a.mu.Lock()
	r := a.byCgroup[ev.Cgid]
	a.mu.Unlock()
	if r == nil {
		return
	}
	when := time.Unix(0, int64(ev.Ts)).Add(a.bootOffset)
	proc := AlertProcess{Pid: int(ev.Tgid), PPid: int(ev.Ppid), UID: int(ev.Uid), Comm: cstr(ev.Comm[:])}
	in := Input{Process: ProcessVars{Pid: int64(ev.Tgid), UID: int64(ev.Uid)}, Container: r.Container}
	base := Alert{Container: r.Container.ID, Name: r.Container.Name, Image: r.Container.Image, ImageDigest: r.Container.ImageDigest, Pod: r.Container.Pod}
	var kind string
	lsmDeny := ev.Action == kern.ActDeny && (ev.Kind == kern.KindExec || ev.Kind == kern.KindOpen)
	switch ev.Kind {
	case kern.KindExec:
		kind = EventExec
		path := cstr(ev.Path[:])
		argv := []string{}
		if lsmDeny {
			// Refused before the new image: the process is the one
			// that asked (its own executable and argv), the kernel
			// judged the path, drift and parent.
			proc.Path, proc.Argv = a.procInfo(r, int(ev.Tgid))
		} else {
			n := min(int(ev.ArgsLen), len(ev.Args))
			args := make([]byte, n)
			for i := range n {
				args[i] = byte(ev.Args[i])
			}
			argv = strings.Split(strings.TrimRight(string(args), "\x00"), "\x00")
			proc.Path, proc.Argv = path, argv
		}
		parent := ParentVars{Pid: int64(ev.Ppid), Name: cstr(ev.Pcomm[:]), Path: a.parentPath(r, int(ev.Ppid))}
		in.Exec = &ExecVars{Path: path, Argv: argv, Drift: ev.Drift != 0, Parent: parent}
		base.Exec = &AlertExec{Path: path, Drift: ev.Drift != 0}
		proc.Parent = &AlertParent{Pid: int(parent.Pid), Name: parent.Name, Path: parent.Path}
	case kern.KindConnect:
		kind = EventConnect
		ip := netip.AddrFrom16(ev.Addr).Unmap()
		proto := map[uint32]string{6: "tcp", 17: "udp"}[ev.Proto]
		if proto == "" {
			proto = fmt.Sprint(ev.Proto)
		}
		in.Connect = &ConnectVars{Address: ip.String(), Port: int64(ev.Port), Protocol: proto}
		base.Connect = &AlertConnect{Address: ip.String(), Port: int(ev.Port), Protocol: proto}
		proc.Path, proc.Argv = a.procInfo(r, int(ev.Tgid))
	case kern.KindSyscall:
		name, k := syscallKind(ev.Nr)
		if k == "" {
			return
		}
		kind = k
		args := make([]int64, len(ev.Sargs))
		w := argWidths[name]
		for i, v := range ev.Sargs {
			args[i] = int64(v)
			if i < len(w) && w[i] == 'w' {
				// As the kernel reads it (and the seccomp rules
				// compare it): the low half, -1 for 0xffffffff.
				args[i] = int64(int32(v))
			}
		}
		in.Syscall = &SyscallVars{Name: name, Args: args}
		base.Syscall = &AlertSyscall{Name: name, Args: args}
		proc.Path, proc.Argv = a.procInfo(r, int(ev.Tgid))
	case kern.KindAccept:
		// In softirq: no process; the peer's port is in sargs[0].
		kind = EventAccept
		if ev.Rule >= 0 && ev.Action == kern.ActDeny {
			a.mu.Lock()
			again := a.synRepeat(synKey{ev.Cgid, ev.Addr, uint16(ev.Sargs[0]), ev.Port}, time.Now())
			a.mu.Unlock()
			if again {
				return
			}
		}
		ip := netip.AddrFrom16(ev.Addr).Unmap()
		in.Connect = &ConnectVars{Address: ip.String(), Port: int64(ev.Port), Protocol: "tcp"}
		base.Connect = &AlertConnect{Address: ip.String(), Port: int(ev.Port), Protocol: "tcp", PeerPort: int(ev.Sargs[0])}
		proc = AlertProcess{Argv: []string{}}
	case kern.KindExit:
		// The last thread of a process: its memory map (so its
		// executable and argv) is gone; the kernel's comm stays.
		kind = EventExit
		code, sig := int64(ev.ExitCode>>8)&0xff, int64(ev.ExitCode&0x7f)
		core := sig != 0 && ev.ExitCode&0x80 != 0
		if sig != 0 {
			code = 0
		}
		in.Exit = &ExitVars{Code: code, Signal: sig, Core: core}
		base.Exit = &AlertExit{Code: int(code), Signal: int(sig), Core: core}
		proc.Argv = []string{}
	case kern.KindExecTry:
		kind = EventExec
		path := a.absPath(r, int(ev.Tgid), cstr(ev.Path[:]), ev.Nr, ev.Sargs[0])
		proc.Path, proc.Argv = a.procInfo(r, int(ev.Tgid))
		in.Exec = &ExecVars{Path: path, Argv: []string{}}
		base.Exec = &AlertExec{Path: path}
	case kern.KindOpen:
		kind = EventOpen
		path := a.absPath(r, int(ev.Tgid), cstr(ev.Path[:]), ev.Nr, ev.Sargs[0])
		in.File = &FileVars{Path: path, Write: true}
		base.File = &AlertFile{Path: path, Write: true}
		proc.Path, proc.Argv = a.procInfo(r, int(ev.Tgid))
	default:
		return
	}
	in.Process.Path = proc.Path
	base.Event, base.Process = kind, proc
	if ev.Kind == kern.KindExecTry || (ev.Kind == kern.KindSyscall && ev.Action == kern.ActDeny) {
		// A refusal the kernel reports without a rule: an exec attempt
		// Landlock refuses (the alert rules see the exec itself when it
		// happens), or a call that failed with EPERM or EACCES, reported
		// at exit, which seccomp refused where a deny rule's condition
		// holds (it may also have failed on its own). The deny rules'
		// conditions name the rule.
		a.denyAlerts(r, kind, in, base, when)
		return
	}
	// A kernel match of an alert rule only sent the event up: the loop
	// below writes the alerts, from the rules' CEL.
	if ev.Rule >= 0 && int(ev.Rule) < len(r.Rules) && ev.Action != kern.ActAlert {
		al := base
		al.Time, al.Rule, al.Action = when, r.Rules[ev.Rule].Name, actionNames[ev.Action]
		if al.Action == ActionKill && r.Rules[ev.Rule].Scope == ScopeContainer {
			// The kernel killed the offender; the rest of the
			// container goes now.
			al.Scope = ScopeContainer
			if err := killCgroup(r.CgroupDir, r.CgroupID); err != nil {
				a.o.Log.Warn("secmon: kill the container", "container", r.Container.ID, "rule", al.Rule, "err", err)
			}
		}
		a.write(r, al)
	}
	if lsmDeny {
		// Denied in the kernel: the operation did not happen, and the
		// deny alert is written; the alert rules see operations.
		return
	}
	if kind == EventOpen && r.landlockOpen {
		a.denyAlerts(r, kind, in, base, when)
	}
	for i, rule := range r.Rules {
		if rule.Event != kind || rule.Action != ActionAlert {
			continue
		}
		ok, err := r.rs.Eval(i, in)
		if err != nil || !ok {
			continue
		}
		al := base
		al.Time, al.Rule, al.Action = when, rule.Name, ActionAlert
		a.write(r, al)
	}
}

// denyAlerts writes an alert with action deny for each deny rule of the
// kind whose condition holds: Landlock, in the container's processes,
// refuses the same operation (the rule reduced to the paths it denies).
func (a *agent) denyAlerts(r *agentReg, kind string, in Input, base Alert, when time.Time) {
	for i, rule := range r.Rules {
		if rule.Event != kind || rule.Action != ActionDeny {
			continue
		}
		if ok, err := r.rs.Eval(i, in); err != nil || !ok {
			continue
		}
		al := base
		al.Time, al.Rule, al.Action = when, rule.Name, ActionDeny
		a.write(r, al)
	}
}

// absPath makes a relative path of an open or exec absolute, from the
// process's working directory when the call named none other (best
// effort: the process may have moved on), as the container sees it.
func (a *agent) absPath(r *agentReg, pid int, p string, nr uint32, arg0 uint64) string {
	if p == "" || strings.HasPrefix(p, "/") {
		return p
	}
	if nr != sysNumbers["open"] && nr != sysNumbers["creat"] && nr != sysNumbers["execve"] && int32(arg0) != unix.AT_FDCWD {
		return p // relative to a directory fd
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return p
	}
	if r.Rootfs != "" {
		if rel, ok := strings.CutPrefix(cwd, strings.TrimSuffix(r.Rootfs, "/")); ok && (rel == "" || strings.HasPrefix(rel, "/")) {
			cwd = rel
		}
	}
	return filepath.Join("/", cwd, p)
}

// parentPath reads an exec's parent's executable as the container sees
// it (best effort: "" when the parent has exited, or when it is not in
// the container but on the host, in the agent's mount namespace: the
// container's first process's parent is the runtime's, whose path is
// not the container's business). The kernel names a file by its path in
// the process's own mount namespace when the agent's cannot reach it, so
// only a path under the container's root as mounted on the host needs
// translating.
func (a *agent) parentPath(r *agentReg, pid int) string {
	if pid <= 0 {
		return ""
	}
	var own, theirs unix.Stat_t
	if unix.Stat("/proc/self/ns/mnt", &own) != nil || unix.Stat(fmt.Sprintf("/proc/%d/ns/mnt", pid), &theirs) != nil || own.Ino == theirs.Ino {
		return ""
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	if r.Rootfs != "" {
		if rel, ok := strings.CutPrefix(exe, strings.TrimSuffix(r.Rootfs, "/")); ok && strings.HasPrefix(rel, "/") {
			return rel
		}
	}
	return exe
}

// procInfo reads a live process's executable and argv (best effort: it
// may have exited).
func (a *agent) procInfo(r *agentReg, pid int) (string, []string) {
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if r.Rootfs != "" {
		if rel, ok := strings.CutPrefix(exe, strings.TrimSuffix(r.Rootfs, "/")); ok && strings.HasPrefix(rel, "/") {
			exe = rel
		}
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	argv := []string{}
	if len(b) > 0 {
		argv = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	return exe, argv
}

// write appends an alert to the container's alerts log and the engine's
// events, counts it and queues it for the webhook.
func (a *agent) write(r *agentReg, al Alert) {
	al.DelayMicros = time.Since(al.Time).Microseconds()
	b, err := json.Marshal(al)
	if err != nil {
		return
	}
	a.mu.Lock()
	byAct := a.stats.Alerts[al.Rule]
	if byAct == nil {
		byAct = map[string]uint64{}
		a.stats.Alerts[al.Rule] = byAct
	}
	byAct[al.Action]++
	now := time.Now()
	if now.Sub(r.evWindow) >= time.Second {
		r.evWindow, r.evCount = now, 0
	}
	r.evCount++
	toEngine := r.EventsPath != "" && r.evCount <= engineEventsPerSecond
	if !toEngine && r.EventsPath != "" {
		a.stats.EngineEventsDropped++
	}
	f := a.files[r.AlertsPath]
	if f != nil {
		if st, err := f.Stat(); err == nil && st.Size() > maxAlertsFile {
			f.Close()
			os.Rename(r.AlertsPath, r.AlertsPath+".1")
			delete(a.files, r.AlertsPath)
			f = nil
		}
	}
	if f == nil && r.AlertsPath != "" {
		os.MkdirAll(filepath.Dir(r.AlertsPath), 0o700)
		f, err = os.OpenFile(r.AlertsPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err == nil {
			a.files[r.AlertsPath] = f
		}
	}
	a.mu.Unlock()
	if f != nil {
		f.Write(append(b, '\n'))
	}
	if toEngine {
		appendEngineEvent(r, al)
	}
	if r.Webhook != "" {
		select {
		case a.hooks <- al:
		default:
			a.mu.Lock()
			a.stats.WebhookErrors++
			a.mu.Unlock()
		}
	}
}

// appendEngineEvent records the alert in the engine's events log in the
// engine's own shape (internal/engine.Event), under the same flock.
func appendEngineEvent(r *agentReg, al Alert) {
	attrs := map[string]string{"rule": al.Rule, "action": al.Action, "event": al.Event, "name": al.Name, "image": al.Image,
		"pid": fmt.Sprint(al.Process.Pid), "path": al.Process.Path, "namespace": r.Namespace}
	now := time.Now()
	ev := map[string]any{
		"Type": "container", "Action": "secmon_" + al.Action,
		"Actor": map[string]any{"ID": al.Container, "Attributes": attrs},
		"scope": "local", "time": now.Unix(), "timeNano": now.UnixNano(),
		"status": "secmon_" + al.Action, "id": al.Container, "from": al.Image,
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	f, err := os.OpenFile(r.EventsPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX) == nil {
		f.Write(append(b, '\n'))
	}
}

func (a *agent) postWebhooks() {
	client := &http.Client{Timeout: 5 * time.Second}
	for al := range a.hooks {
		a.mu.Lock()
		r := a.regs[al.Container]
		a.mu.Unlock()
		if r == nil || r.Webhook == "" {
			continue
		}
		b, _ := json.Marshal(al)
		resp, err := client.Post(r.Webhook, "application/json", bytes.NewReader(b))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				err = fmt.Errorf("status %s", resp.Status)
			}
		}
		if err != nil {
			a.mu.Lock()
			a.stats.WebhookErrors++
			a.mu.Unlock()
			a.o.Log.Warn("secmon webhook", "url", r.Webhook, "err", err)
		}
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
