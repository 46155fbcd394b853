package kern

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The probes below say why a feature is missing ("" when it is there).
// Each probes once per process (the kernel does not change under it) and
// needs the privilege to load BPF programs; without it the feature is
// missing, with the reason.
var (
	// ProbeLSM: BPF LSM programs load and run (deny on exec and open in
	// the kernel, for any runtime). It loads the kernel's BTF.
	ProbeLSM = sync.OnceValue(probeLSM)
	// ProbeConnectKill: the connect programs may call bpf_send_signal.
	ProbeConnectKill = sync.OnceValue(probeConnectKill)
	// ProbeConnectTaskSlot: the connect programs may keep their event
	// slot in task storage (bpf_task_storage_get and
	// bpf_get_current_task_btf), so that runs preempted halfway hold no
	// per-CPU slots.
	ProbeConnectTaskSlot = sync.OnceValue(probeConnectTaskSlot)
	// ProbeAtomics: BPF programs may use atomic fetch operations
	// (Linux 5.12), with which every program claims its event slot.
	// Without them nothing of the monitor loads.
	ProbeAtomics = sync.OnceValue(probeAtomics)
)

// probeAtomics loads a socket filter that does an atomic fetch-or on its
// stack.
func probeAtomics() string {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SocketFilter,
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R1, 1),
			asm.FetchOr.Mem(asm.RFP, asm.R1, asm.DWord, -8),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
		License: "GPL",
	})
	if err == nil {
		p.Close()
		return ""
	}
	if errors.Is(err, unix.EINVAL) {
		return "this kernel's BPF lacks atomic fetch operations (Linux 5.12 or later is needed: the monitor's programs claim their per-CPU event slots with them)"
	}
	return fmt.Sprintf("probing BPF atomic fetch operations failed: %v", firstLine(err))
}

func probeConnectKill() string { return connectHelperMissing(asm.FnSendSignal, "bpf_send_signal") }

func probeConnectTaskSlot() string {
	if why := connectHelperMissing(asm.FnGetCurrentTaskBtf, "bpf_get_current_task_btf"); why != "" {
		return why
	}
	return connectHelperMissing(asm.FnTaskStorageGet, "bpf_task_storage_get")
}

// connectHelperMissing says why cgroup/connect programs may not call the
// helper fn (named name), or "".
func connectHelperMissing(fn asm.BuiltinFunc, name string) string {
	err := features.HaveProgramHelper(ebpf.CGroupSockAddr, fn)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ebpf.ErrNotSupported):
		return "this kernel does not let cgroup/connect programs call " + name
	}
	return fmt.Sprintf("probing %s in cgroup/connect programs failed: %v", name, firstLine(err))
}

// probeLSM loads the probe program, attaches it to file_open and opens a
// file: a kernel can load and attach BPF LSM programs without running
// them (bpf not among its active LSMs), so only a run counts.
func probeLSM() string {
	spec, err := LoadSecmon()
	if err != nil {
		return err.Error()
	}
	var obj struct {
		Prog *ebpf.Program `ebpf:"berth_lsm_probe"`
		Map  *ebpf.Map     `ebpf:"lsm_probe"`
	}
	if err := spec.LoadAndAssign(&obj, nil); err != nil {
		if errors.Is(err, unix.EPERM) {
			// What a kernel without the lsm program type says
			// (cilium/ebpf adds a hint about MEMLOCK that misleads).
			return "BPF LSM programs do not load on this kernel (loading one fails with EPERM)"
		}
		return fmt.Sprintf("BPF LSM programs do not load on this kernel (%v)", firstLine(err))
	}
	defer obj.Prog.Close()
	defer obj.Map.Close()
	if err := obj.Map.Put(uint32(0), uint64(os.Getpid())); err != nil {
		return fmt.Sprintf("BPF LSM probe: %v", err)
	}
	l, err := link.AttachLSM(link.LSMOptions{Program: obj.Prog})
	if err != nil {
		return fmt.Sprintf("BPF LSM programs do not attach on this kernel (%v)", firstLine(err))
	}
	f, err := os.Open("/")
	if err == nil {
		f.Close()
	}
	l.Close()
	var hits uint64
	if err := obj.Map.Lookup(uint32(1), &hits); err != nil {
		return fmt.Sprintf("BPF LSM probe: %v", err)
	}
	if hits == 0 {
		return "this kernel loads BPF LSM programs but does not run them: bpf is not among its active LSMs (boot with lsm=...,bpf)"
	}
	// The deny programs themselves must load too: their hooks differ
	// across kernels (path_rename takes flags since 5.19; the path hooks
	// need CONFIG_SECURITY_PATH). Loaded here against small private maps,
	// then closed; where they fail, Landlock stands in.
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
		switch m.Type {
		case ebpf.RingBuf:
			m.MaxEntries = uint32(os.Getpagesize())
		case ebpf.Hash:
			m.MaxEntries = 1
		}
	}
	var progs lsmPrograms
	if err := spec.LoadAndAssign(&progs, nil); err != nil {
		return fmt.Sprintf("the BPF LSM deny programs do not load on this kernel (%v)", firstLine(err))
	}
	progs.close()
	return ""
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// ProbeLSMCached is ProbeLSM with a success kept in file for the rest of
// this boot: on a host with BPF LSM the probe loads the kernel's BTF and
// the deny programs, which every `berth run` with exec or open deny rules
// would otherwise pay on the container's start path. Only success is
// kept: BPF LSM cannot be turned off in a running kernel, while a failure
// may be passing (no memory). The file names the boot, the kernel and
// this package's BPF object, so a reboot or another build probes again.
// It is believed only as a regular file in a root-owned directory no one
// else may write. Were it wrong all the same, the agent's LoadLSM, which
// attaches the deny programs without asking the file, fails and the
// container is refused, never left to programs that do not run.
func ProbeLSMCached(file string) string {
	key := lsmCacheKey()
	if key != "" && readCache(file) == key {
		return ""
	}
	why := ProbeLSM()
	if why == "" && key != "" {
		writeCache(file, key)
	}
	return why
}

// lsmCacheKey names this boot, kernel and BPF object ("" when the boot
// cannot be named); once per process (it hashes the object).
var lsmCacheKey = sync.OnceValue(func() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	sum := sha256.Sum256(_SecmonBytes)
	return fmt.Sprintf("bpf-lsm ok boot=%s kernel=%s object=%x\n",
		strings.TrimSpace(string(boot)), unix.ByteSliceToString(u.Release[:]), sum[:8])
})

// readCache returns the file's first bytes if it is a regular file (not
// through a symlink, never blocking on a FIFO) in a directory that root
// owns and no one else may write; "" otherwise.
func readCache(file string) string {
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Dir(file), &st); err != nil ||
		st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0 {
		return ""
	}
	fd, err := unix.Open(file, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ""
	}
	buf := make([]byte, 512)
	n, err := unix.Read(fd, buf)
	if err != nil || n <= 0 {
		return ""
	}
	return string(buf[:n])
}

// writeCache writes the file whole or not at all (a temporary file
// renamed over it), in a directory only root may write. Failing that,
// the next process probes again.
func writeCache(file, data string) {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(dir, ".lsm-probe-*")
	if err != nil {
		return
	}
	_, werr := f.WriteString(data)
	if cerr := f.Close(); werr != nil || cerr != nil || os.Rename(f.Name(), file) != nil {
		os.Remove(f.Name())
	}
}
