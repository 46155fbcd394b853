package kern

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BPFFS is where the host's BPF file system is (or is mounted by Mount).
const BPFFS = "/sys/fs/bpf"

// Objects are the loaded programs and maps, with their maps pinned in a
// directory of a BPF file system so that they outlive the agent process.
type Objects struct {
	SecmonMaps
	basePrograms
	spec *ebpf.CollectionSpec
	// lsm are the BPF LSM programs, loaded on first use (LoadLSM): a
	// kernel without BPF LSM refuses them, and the rest must load there.
	lsm *lsmPrograms
	dir string
}

// basePrograms are the programs every supported kernel loads.
type basePrograms struct {
	BerthAccept   *ebpf.Program `ebpf:"berth_accept"`
	BerthConnect4 *ebpf.Program `ebpf:"berth_connect4"`
	BerthConnect6 *ebpf.Program `ebpf:"berth_connect6"`
	BerthExec     *ebpf.Program `ebpf:"berth_exec"`
	BerthExit     *ebpf.Program `ebpf:"berth_exit"`
	BerthIngress  *ebpf.Program `ebpf:"berth_ingress"`
	BerthSendmsg4 *ebpf.Program `ebpf:"berth_sendmsg4"`
	BerthSendmsg6 *ebpf.Program `ebpf:"berth_sendmsg6"`
	BerthSysEnter *ebpf.Program `ebpf:"berth_sys_enter"`
	BerthSysExit  *ebpf.Program `ebpf:"berth_sys_exit"`
}

// lsmPrograms are the deny programs of kernels with BPF LSM.
type lsmPrograms struct {
	BerthExecCheck    *ebpf.Program `ebpf:"berth_exec_check"`
	BerthFileOpen     *ebpf.Program `ebpf:"berth_file_open"`
	BerthPathMknod    *ebpf.Program `ebpf:"berth_path_mknod"`
	BerthPathMkdir    *ebpf.Program `ebpf:"berth_path_mkdir"`
	BerthPathUnlink   *ebpf.Program `ebpf:"berth_path_unlink"`
	BerthPathRmdir    *ebpf.Program `ebpf:"berth_path_rmdir"`
	BerthPathSymlink  *ebpf.Program `ebpf:"berth_path_symlink"`
	BerthPathLink     *ebpf.Program `ebpf:"berth_path_link"`
	BerthPathRename   *ebpf.Program `ebpf:"berth_path_rename"`
	BerthPathTruncate *ebpf.Program `ebpf:"berth_path_truncate"`
}

// lsmLink is an LSM program and the name of its link's pin.
type lsmLink struct {
	pin  string
	prog *ebpf.Program
}

// links lists the LSM programs with their pins' names (the names alone
// on an empty lsmPrograms: DetachLSM removes the pins even when this
// agent has not loaded the programs).
func (p *lsmPrograms) links() []lsmLink {
	return []lsmLink{
		{"lsm_exec", p.BerthExecCheck}, {"lsm_open", p.BerthFileOpen}, {"lsm_mknod", p.BerthPathMknod}, {"lsm_mkdir", p.BerthPathMkdir},
		{"lsm_unlink", p.BerthPathUnlink}, {"lsm_rmdir", p.BerthPathRmdir}, {"lsm_symlink", p.BerthPathSymlink}, {"lsm_link", p.BerthPathLink},
		{"lsm_rename", p.BerthPathRename}, {"lsm_truncate", p.BerthPathTruncate},
	}
}

// close closes the loaded LSM programs.
func (p *lsmPrograms) close() error {
	var errs []error
	for _, l := range p.links() {
		errs = append(errs, closeAll(l.prog))
	}
	return errors.Join(errs...)
}

// loaded is what Load assigns from the collection.
type loaded struct {
	SecmonMaps
	basePrograms
}

// Close closes the programs and maps (pinned ones stay in the kernel).
func (o *Objects) Close() error {
	var errs []error
	if o.lsm != nil {
		errs = append(errs, o.lsm.close())
	}
	b := &o.basePrograms
	errs = append(errs, closeAll(b.BerthAccept, b.BerthConnect4, b.BerthConnect6, b.BerthExec, b.BerthExit, b.BerthIngress,
		b.BerthSendmsg4, b.BerthSendmsg6, b.BerthSysEnter, b.BerthSysExit), o.SecmonMaps.Close())
	return errors.Join(errs...)
}

func closeAll(ps ...*ebpf.Program) error {
	var errs []error
	for _, p := range ps {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	return errors.Join(errs...)
}

// loadSpec is the collection as this kernel can load it: where the
// connect programs may not call bpf_send_signal (before it was allowed
// there), the call is taken out, and Mechanisms then refuses connect kill
// rules (ConnectSignal); where they may not use task storage, the calls
// that get the task's own slot are, and the programs use the per-CPU
// slots of their pool.
func loadSpec() (*ebpf.CollectionSpec, error) {
	if why := ProbeAtomics(); why != "" {
		return nil, errors.New(why)
	}
	spec, err := LoadSecmon()
	if err != nil {
		return nil, err
	}
	var out []asm.BuiltinFunc
	if ProbeConnectKill() != "" {
		out = append(out, asm.FnSendSignal)
	}
	if ProbeConnectTaskSlot() != "" {
		out = append(out, asm.FnGetCurrentTaskBtf, asm.FnTaskStorageGet)
	}
	for _, ps := range spec.Programs {
		if ps.Type == ebpf.CGroupSockAddr {
			takeOutCalls(ps.Instructions, out...)
		}
	}
	return spec, nil
}

// takeOutCalls replaces the calls of the helpers fns with r0 = 0: the
// result of bpf_send_signal is unused, and a null task slot sends the
// program to a per-CPU one (the verifier then drops the code that used
// the task's). It returns how many it replaced.
func takeOutCalls(insns asm.Instructions, fns ...asm.BuiltinFunc) int {
	n := 0
	for i, ins := range insns {
		if ins.IsBuiltinCall() && slices.Contains(fns, asm.BuiltinFunc(ins.Constant)) {
			insns[i] = asm.Mov.Imm(asm.R0, 0).WithMetadata(ins.Metadata)
			n++
		}
	}
	return n
}

// MountBPFFS mounts a BPF file system on /sys/fs/bpf when none is there,
// as systemd does at boot; hosts without systemd (this project's CI VM)
// have none. The mount is host infrastructure and stays.
func MountBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs(BPFFS, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", BPFFS, err)
	}
	if st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpffs", BPFFS, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
		return fmt.Errorf("mount a BPF file system on %s: %w", BPFFS, err)
	}
	return nil
}

// Load loads the programs and opens the maps pinned in dir (a directory
// on a BPF file system), creating and pinning those not there yet: a
// restarted agent finds the maps its predecessor filled and the programs
// its predecessor attached go on using them.
func Load(dir string) (*Objects, error) {
	_, statErr := os.Stat(dir)
	fresh := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(filepath.Join(dir, "links"), 0o700); err != nil {
		return nil, fmt.Errorf("pin directory: %w", err)
	}
	spec, err := loadSpec()
	if err != nil {
		if fresh {
			Unpin(dir)
		}
		return nil, err
	}
	var l loaded
	if err := spec.LoadAndAssign(&l, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}}); err != nil {
		// The maps pinned on the way go with the directory this call
		// made; an earlier agent's pins stay, they are still in use.
		if fresh {
			Unpin(dir)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load the BPF programs: %+v", ve)
		}
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			// Pins of another berth-secmon version (a map's layout
			// changed): they enforce its containers' rules still.
			return nil, fmt.Errorf("load the BPF programs: the maps pinned under %s are another berth-secmon version's (%w): stop the containers with monitor rules, which removes them, then start again", dir, err)
		}
		return nil, fmt.Errorf("load the BPF programs: %w", err)
	}
	return &Objects{SecmonMaps: l.SecmonMaps, basePrograms: l.basePrograms, spec: spec, dir: dir}, nil
}

// LoadUnpinned loads the objects without pinning anything (tests).
func LoadUnpinned() (*Objects, error) {
	spec, err := loadSpec()
	if err != nil {
		return nil, err
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	var l loaded
	if err := spec.LoadAndAssign(&l, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load the BPF programs: %+v", ve)
		}
		return nil, err
	}
	return &Objects{SecmonMaps: l.SecmonMaps, basePrograms: l.basePrograms, spec: spec}, nil
}

// LoadLSM loads the BPF LSM programs (once), using the maps already
// loaded. It fails where the kernel has no BPF LSM (Probe says why).
func (o *Objects) LoadLSM() error {
	if o.lsm != nil {
		return nil
	}
	if why := ProbeLSM(); why != "" {
		return errors.New(why)
	}
	var p lsmPrograms
	if err := o.spec.LoadAndAssign(&p, &ebpf.CollectionOptions{MapReplacements: mapsByName(&o.SecmonMaps)}); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load the BPF LSM programs: %+v", ve)
		}
		return fmt.Errorf("load the BPF LSM programs: %w", err)
	}
	o.lsm = &p
	return nil
}

// mapsByName lists the loaded maps by their names in the C source (the
// generated struct's ebpf tags).
func mapsByName(m *SecmonMaps) map[string]*ebpf.Map {
	out := map[string]*ebpf.Map{}
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		if mp, ok := v.Field(i).Interface().(*ebpf.Map); ok && mp != nil {
			out[v.Type().Field(i).Tag.Get("ebpf")] = mp
		}
	}
	return out
}

// AttachLSM attaches the BPF LSM deny programs (host-wide: they filter by
// cgroup id themselves; every exec and every open for writing of the
// host pays a lookup, so they are attached only while some container has
// deny rules they carry out).
func (o *Objects) AttachLSM() error {
	if err := o.LoadLSM(); err != nil {
		return err
	}
	for _, x := range o.lsm.links() {
		err := attachPinned(o.linkPath(x.pin), x.prog, func() (link.Link, error) {
			l, err := link.AttachLSM(link.LSMOptions{Program: x.prog})
			if err != nil {
				return nil, fmt.Errorf("attach the %s LSM program: %w", x.pin, err)
			}
			return l, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// DetachLSM removes the BPF LSM programs' links.
func (o *Objects) DetachLSM() error {
	var errs []error
	for _, x := range (&lsmPrograms{}).links() {
		errs = append(errs, o.detach(x.pin))
	}
	return errors.Join(errs...)
}

func (o *Objects) linkPath(name string) string { return filepath.Join(o.dir, "links", name) }

// AttachExec attaches the exec program (host-wide: it filters by cgroup
// id itself) unless a pinned link from an earlier agent already does.
func (o *Objects) AttachExec() error {
	return o.attachRawTracepoint("sched_process_exec", "exec", o.BerthExec)
}

// AttachSysEnter attaches the system call program (host-wide: it costs
// every system call of the host a map lookup, so it is attached only while
// some container has alert rules on system calls).
func (o *Objects) AttachSysEnter() error {
	return o.attachRawTracepoint("sys_enter", "sys_enter", o.BerthSysEnter)
}

// attachRawTracepoint attaches prog to a raw tracepoint and pins the link
// as links/pin, unless that pin exists (an earlier agent's link).
func (o *Objects) attachRawTracepoint(tp, pin string, prog *ebpf.Program) error {
	return attachPinned(o.linkPath(pin), prog, func() (link.Link, error) {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp, Program: prog})
		if err != nil {
			return nil, fmt.Errorf("attach to the %s tracepoint: %w", tp, err)
		}
		return l, nil
	})
}

// attachPinned attaches prog (through attach) and pins the link at p,
// unless p is an earlier agent's link to the same program. A link to
// another program (an agent of another version) is replaced: the new
// link is made before the old pin goes, so nothing goes unwatched
// between (for that moment both programs run: an event may be
// reported twice).
func attachPinned(p string, prog *ebpf.Program, attach func() (link.Link, error)) error {
	_, err := os.Stat(p)
	exists := err == nil
	if exists && samePinnedProgram(p, prog) {
		return nil
	}
	l, err := attach()
	if err != nil {
		return err
	}
	defer l.Close()
	if exists {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("replace the link %s of another berth-secmon version: %w", p, err)
		}
	}
	if err := l.Pin(p); err != nil {
		return fmt.Errorf("pin the link %s: %w", p, err)
	}
	return nil
}

// samePinnedProgram says whether the link pinned at p runs prog's code
// (the kernel's tag of the instructions, which ignores map fds). When it
// cannot tell, it says yes: the pinned link stays.
func samePinnedProgram(p string, prog *ebpf.Program) bool {
	l, err := link.LoadPinnedLink(p, nil)
	if err != nil {
		return true
	}
	defer l.Close()
	li, err := l.Info()
	if err != nil {
		return true
	}
	old, err := ebpf.NewProgramFromID(li.Program)
	if err != nil {
		return true
	}
	defer old.Close()
	oi, err1 := old.Info()
	ni, err2 := prog.Info()
	if err1 != nil || err2 != nil || oi.Tag == "" {
		return true
	}
	return oi.Tag == ni.Tag
}

// detach removes a host-wide program's pinned link (the program goes with
// its last link); a link that is not there is no error.
func (o *Objects) detach(pin string) error {
	if err := os.Remove(o.linkPath(pin)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// AttachAccept attaches the inbound-connection program (host-wide: every
// TCP state change of the host pays a check, so it is attached only while
// some container has accept rules).
func (o *Objects) AttachAccept() error {
	return o.attachRawTracepoint("inet_sock_set_state", "accept", o.BerthAccept)
}

// DetachAccept removes the inbound-connection program's link.
func (o *Objects) DetachAccept() error { return o.detach("accept") }

// AttachExit attaches the process-exit program (host-wide: every exit of
// the host pays a check, so it is attached only while some container has
// exit rules).
func (o *Objects) AttachExit() error {
	return o.attachRawTracepoint("sched_process_exit", "exit", o.BerthExit)
}

// DetachExit removes the process-exit program's link.
func (o *Objects) DetachExit() error { return o.detach("exit") }

// DetachSysEnter removes the system call program's link.
func (o *Objects) DetachSysEnter() error { return o.detach("sys_enter") }

// AttachSysExit attaches the program that reports the calls seccomp
// deny rules refused (host-wide: every system call of the host that
// fails with EPERM or EACCES pays a lookup, so it is attached only while
// some container has such rules).
func (o *Objects) AttachSysExit() error {
	return o.attachRawTracepoint("sys_exit", "sys_exit", o.BerthSysExit)
}

// DetachSysExit removes its link.
func (o *Objects) DetachSysExit() error { return o.detach("sys_exit") }

// cgroupProg is a program attached to each container's cgroup.
type cgroupProg struct {
	name string
	prog *ebpf.Program
	typ  ebpf.AttachType
}

func (o *Objects) connectProgs() []cgroupProg {
	return []cgroupProg{
		{"connect4", o.BerthConnect4, ebpf.AttachCGroupInet4Connect}, {"connect6", o.BerthConnect6, ebpf.AttachCGroupInet6Connect},
		{"sendmsg4", o.BerthSendmsg4, ebpf.AttachCGroupUDP4Sendmsg}, {"sendmsg6", o.BerthSendmsg6, ebpf.AttachCGroupUDP6Sendmsg},
	}
}

// cgroupLinkNames are the per-cgroup link pins, "NAME-CGROUPID".
var cgroupLinkNames = []string{"connect4", "connect6", "sendmsg4", "sendmsg6", "ingress"}

// AttachConnect attaches the connect programs to one container's cgroup
// (a v2 directory) and pins the links under the cgroup's id.
func (o *Objects) AttachConnect(cgroupDir string, cgid uint64) error {
	return o.attachCgroup(cgroupDir, cgid, o.connectProgs())
}

// AttachIngress attaches the inbound-packet program (accept deny: it
// drops the SYNs a rule denies) to one container's cgroup.
func (o *Objects) AttachIngress(cgroupDir string, cgid uint64) error {
	return o.attachCgroup(cgroupDir, cgid, []cgroupProg{{"ingress", o.BerthIngress, ebpf.AttachCGroupInetIngress}})
}

func (o *Objects) attachCgroup(cgroupDir string, cgid uint64, progs []cgroupProg) error {
	for _, a := range progs {
		p := o.linkPath(a.name + "-" + strconv.FormatUint(cgid, 10))
		err := attachPinned(p, a.prog, func() (link.Link, error) {
			l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupDir, Attach: a.typ, Program: a.prog})
			if err != nil {
				return nil, fmt.Errorf("attach the %s program to %s: %w", a.name, cgroupDir, err)
			}
			return l, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// DetachCgroup removes the links of one cgroup (connect and ingress).
func (o *Objects) DetachCgroup(cgid uint64) error {
	var errs []error
	for _, n := range cgroupLinkNames {
		if err := os.Remove(o.linkPath(n + "-" + strconv.FormatUint(cgid, 10))); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DetachIngress removes the ingress link of one cgroup.
func (o *Objects) DetachIngress(cgid uint64) error {
	if err := os.Remove(o.linkPath("ingress-" + strconv.FormatUint(cgid, 10))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// CgroupLinks lists the cgroup ids that have links pinned.
func (o *Objects) CgroupLinks() []uint64 {
	ents, _ := os.ReadDir(filepath.Join(o.dir, "links"))
	var ids []uint64
	for _, e := range ents {
		name, id, ok := strings.Cut(e.Name(), "-")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(id, 10, 64)
		if err == nil && slices.Contains(cgroupLinkNames, name) && !slices.Contains(ids, n) {
			ids = append(ids, n)
		}
	}
	return ids
}

// Lost reads how many events the ring buffer had no room for.
func (o *Objects) Lost() uint64 {
	var v uint64
	o.SecmonMaps.Lost.Lookup(uint32(0), &v)
	return v
}

// SlotFull reads how many program runs found every event slot of their
// pool on their CPU in use: each decided without an event (a deny or
// kill rule failed closed: the operation was refused, the process
// killed, the SYN dropped) and its report was lost (counted in Lost too).
func (o *Objects) SlotFull() uint64 {
	var v uint64
	o.SecmonMaps.SlotFull.Lookup(uint32(0), &v)
	return v
}

// hostLinks are the pins of the host-wide programs' links: the raw
// tracepoint ones (AttachExec and the like) and the BPF LSM ones. The
// per-cgroup links run the connect and ingress programs, which the
// kernel does not check for recursion.
func hostLinks() []string {
	names := []string{"exec", "exit", "accept", "sys_enter", "sys_exit"}
	for _, l := range (&lsmPrograms{}).links() {
		names = append(names, l.pin)
	}
	return names
}

// Skipped counts the runs the kernel skipped of the host-wide programs
// attached through the links pinned under the objects' directory (their
// recursion_misses, each program counted once). The kernel does not run
// a raw tracepoint program twice at once on one CPU: the realistic case
// is the accept program running in process context, interrupted by a
// softirq that runs it again. BPF LSM programs have no such check from
// Linux 6.2 (and 6.1.54) on; before, a second run while another task was
// preempted inside the first was skipped, which let the operation
// through unjudged. A skipped run reports nothing. The counts are the
// programs': they start again from zero when an agent of another
// version replaces a program.
func (o *Objects) Skipped() uint64 {
	seen := map[ebpf.ProgramID]bool{}
	var n uint64
	for _, name := range hostLinks() {
		l, err := link.LoadPinnedLink(o.linkPath(name), nil)
		if err != nil {
			continue
		}
		li, err := l.Info()
		l.Close()
		if err != nil || seen[li.Program] {
			continue
		}
		seen[li.Program] = true
		if p, err := ebpf.NewProgramFromID(li.Program); err == nil {
			if st, err := p.Stats(); err == nil {
				n += st.RecursionMisses
			}
			p.Close()
		}
	}
	return n
}

// Unpin removes every pinned map and link under dir and dir itself: with
// the last file descriptors closed, the kernel frees the programs, which
// detaches them. A pin directory on a BPF file system holds nothing but
// pins, so removing the tree is exact.
func Unpin(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("%s is not on a BPF file system", dir)
	}
	return os.RemoveAll(dir)
}
