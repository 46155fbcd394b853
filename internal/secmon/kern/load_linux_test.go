package kern

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// TestLoad loads the committed objects: the verifier accepts them on this
// kernel (raw tracepoints and cgroup sock_addr programs, CO-RE against
// the kernel's BTF).
func TestLoad(t *testing.T) {
	testutil.RequiresRoot(t)
	o, err := LoadUnpinned()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
}

// An earlier agent's pinned link to the same program stays; a link of
// another version (another program) is replaced by one to ours.
func TestAttachReplacesOtherVersion(t *testing.T) {
	testutil.RequiresRoot(t)
	if err := MountBPFFS(); err != nil {
		t.Skipf("no BPF file system: %v", err)
	}
	dir := filepath.Join(BPFFS, "berth-test-"+strconv.Itoa(os.Getpid()))
	o, err := Load(dir)
	if err != nil {
		// Load removes what it pinned in a directory it made.
		if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("a failed Load left %s: %v", dir, serr)
			Unpin(dir)
		}
		t.Fatal(err)
	}
	defer func() {
		o.Close()
		if err := Unpin(dir); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", dir, err)
		}
	}()
	pinnedTag := func() string {
		t.Helper()
		l, err := link.LoadPinnedLink(o.linkPath("exec"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		li, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		p, err := ebpf.NewProgramFromID(li.Program)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		pi, _ := p.Info()
		return pi.Tag
	}
	mine, _ := o.BerthExec.Info()
	other, _ := o.BerthExit.Info()
	// "Another version": the exit program on the exec tracepoint (it
	// reads only the first argument, which both have, and finds no
	// policy).
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_exec", Program: o.BerthExit})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Pin(o.linkPath("exec"))
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := pinnedTag(); got != other.Tag {
		t.Fatalf("pinned tag %s, want %s", got, other.Tag)
	}
	if err := o.AttachExec(); err != nil {
		t.Fatal(err)
	}
	if got := pinnedTag(); got != mine.Tag {
		t.Errorf("after AttachExec the pinned link runs %s, want ours %s", got, mine.Tag)
	}
	if err := o.AttachExec(); err != nil || pinnedTag() != mine.Tag {
		t.Errorf("a second AttachExec: %v", err)
	}
	// The exec program runs for every exec of the host (this test's
	// too), one at a time on a CPU: nothing skipped.
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	if n := o.Skipped(); n != 0 {
		t.Errorf("%d runs of the attached programs skipped", n)
	}
	if err := o.detach("exec"); err != nil {
		t.Error(err)
	}
}

// The same program loaded again (a restarted agent of the same version)
// has the same tag: its pinned links stay.
func TestSameProgramSameTag(t *testing.T) {
	testutil.RequiresRoot(t)
	a, err := LoadUnpinned()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := LoadUnpinned()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ai, _ := a.BerthExec.Info()
	bi, _ := b.BerthExec.Info()
	if ai.Tag == "" || ai.Tag != bi.Tag {
		t.Errorf("tags %q and %q", ai.Tag, bi.Tag)
	}
}

// TestIngressVerdicts runs the ingress program on crafted packets
// (BPF_PROG_TEST_RUN, in this process's cgroup, whose id gets the policy)
// under a rule "peer in 10.0.0.0/8 or fd00::/16, and local port 7777":
// the SYNs it matches are dropped, behind IPv4 options and IPv6
// extension headers too; replies, other peers and other ports pass.
func TestIngressVerdicts(t *testing.T) {
	testutil.RequiresRoot(t)
	o, err := LoadUnpinned()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	cg := ownCgroupID(t)
	pol := &SecmonPolicy{Nrules: 1}
	r := &pol.Rules[0]
	r.Natoms, r.Action, r.Id = 3, ActDeny, 4
	r.Table[0] = 1<<0b101 | 1<<0b110 | 1<<0b111 // (atom 0 || atom 1) && atom 2
	r.Atoms[0] = SecmonAtom{Kind: AtomCIDR, Len: 96 + 8}
	copy(r.Atoms[0].Data[:], []byte{10: 0xff, 11: 0xff, 12: 10})
	r.Atoms[1] = SecmonAtom{Kind: AtomCIDR, Len: 16}
	copy(r.Atoms[1].Data[:], []byte{0xfd, 0x00})
	r.Atoms[2] = SecmonAtom{Kind: AtomPort, Lo: 7777, Hi: 7777}
	if err := o.AcceptPolicy.Update(cg, pol, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	const syn, synAck = tcpSYN, 0x12
	v4 := tcpV4
	v6 := func(src [16]byte, ext []byte, port uint16, flags byte) []byte {
		ip := make([]byte, 40)
		ip[0] = 0x60
		ip[6] = 6
		if len(ext) > 0 {
			ip[6] = 0 // hop-by-hop first
		}
		ip[7] = 64
		copy(ip[8:], src[:])
		return frame(0x86dd, append(append(ip, ext...), tcp(port, flags)...))
	}
	// Hop-by-hop (8 bytes, next: destination options), destination
	// options (16 bytes, next: TCP).
	ext := append([]byte{60, 0, 1, 4, 0, 0, 0, 0}, append([]byte{6, 1, 1, 12}, make([]byte, 12)...)...)
	fd := [16]byte{0xfd, 0x00, 15: 1}
	other6 := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	for _, c := range []struct {
		name string
		pkt  []byte
		pass bool
	}{
		{"v4 SYN from 10/8 to 7777", v4([4]byte{10, 1, 2, 3}, 0, 7777, syn), false},
		{"v4 with options", v4([4]byte{10, 1, 2, 3}, 8, 7777, syn), false},
		{"v4 SYN-ACK", v4([4]byte{10, 1, 2, 3}, 0, 7777, synAck), true},
		{"v4 other peer", v4([4]byte{192, 168, 1, 1}, 0, 7777, syn), true},
		{"v4 other port", v4([4]byte{10, 1, 2, 3}, 0, 7778, syn), true},
		{"v6 SYN from fd00::/16", v6(fd, nil, 7777, syn), false},
		{"v6 behind extension headers", v6(fd, ext, 7777, syn), false},
		{"v6 other peer", v6(other6, nil, 7777, syn), true},
		{"v6 SYN-ACK", v6(fd, ext, 7777, synAck), true},
	} {
		ret, err := o.BerthIngress.Run(&ebpf.RunOptions{Data: c.pkt})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if (ret == 1) != c.pass {
			t.Errorf("%s: verdict %d, want pass=%v", c.name, ret, c.pass)
		}
	}
}

const tcpSYN = 0x02

// tcpV4 is an Ethernet frame with a TCP segment (to port, with flags)
// from src, in an IPv4 packet with opts bytes of options.
func tcpV4(src [4]byte, opts int, port uint16, flags byte) []byte {
	ip := make([]byte, 20+opts)
	ip[0] = 0x40 | byte((20+opts)/4)
	ip[8], ip[9] = 64, 6
	copy(ip[12:], src[:])
	copy(ip[16:], []byte{10, 9, 9, 9})
	for i := 20; i < 20+opts; i++ {
		ip[i] = 1 // NOP options
	}
	return frame(0x0800, append(ip, tcp(port, flags)...))
}

func frame(ethType uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	f[12], f[13] = byte(ethType>>8), byte(ethType)
	return append(f, payload...)
}

func tcp(dport uint16, flags byte) []byte {
	h := make([]byte, 20)
	h[0], h[1] = 0x9c, 0x40 // 40000
	h[2], h[3] = byte(dport>>8), byte(dport)
	h[12] = 5 << 4
	h[13] = flags
	return h
}

// ownCgroupID is the id of this process's cgroup v2 (its directory's
// inode), on a unified or hybrid host.
func ownCgroupID(t testing.TB) uint64 {
	t.Helper()
	return cgroupID(t, ownCgroupDir(t))
}

func cgroupID(t testing.TB, dir string) uint64 {
	t.Helper()
	var s unix.Stat_t
	if err := unix.Stat(dir, &s); err != nil {
		t.Fatal(err)
	}
	return s.Ino
}

// ownCgroupDir is the directory of this process's cgroup v2.
func ownCgroupDir(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
				var st unix.Statfs_t
				if unix.Statfs(root, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
					continue
				}
				if _, err := os.Stat(filepath.Join(root, p)); err == nil {
					return filepath.Join(root, p)
				}
			}
		}
	}
	t.Skip("no cgroup v2 for this process")
	return ""
}

// TestProbe prints what this kernel offers; under BERTH_EXPECT_LSM=1 (the
// test VM's kernel has BPF LSM) the LSM must be there.
func TestProbe(t *testing.T) {
	testutil.RequiresRoot(t)
	lsm := ProbeLSM()
	t.Logf("LSM: %q; connect kill: %q; connect task slot: %q; atomics: %q", lsm, ProbeConnectKill(), ProbeConnectTaskSlot(), ProbeAtomics())
	// test/vm checks that its guest runs with the command line it asked
	// for (preempt=full).
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		t.Logf("/proc/cmdline: %s", strings.TrimSpace(string(b)))
	}
	if why := ProbeAtomics(); why != "" {
		t.Errorf("the programs load here (TestLoad), so atomics must be there: %s", why)
	}
	if os.Getenv("BERTH_EXPECT_LSM") == "1" && lsm != "" {
		t.Errorf("BPF LSM expected here: %s", lsm)
	}
}

// A BPF LSM probe's success is kept for the boot, kernel and object its
// file names; a failure is not kept; a file naming another boot is not
// taken for a match (the success is written over it); a file in a
// directory others may write, or behind a symlink, is not read.
func TestProbeLSMCached(t *testing.T) {
	testutil.RequiresRoot(t)
	file := filepath.Join(t.TempDir(), "agent", "lsm-probe")
	why := ProbeLSMCached(file)
	if why != ProbeLSM() {
		t.Fatalf("cached probe %q, the probe %q", why, ProbeLSM())
	}
	b, err := os.ReadFile(file)
	if why != "" {
		if err == nil {
			t.Errorf("a failed probe (%s) was kept: %q", why, b)
		}
		if os.Getenv("BERTH_EXPECT_LSM") == "1" {
			t.Errorf("BPF LSM expected here: %s", why)
		}
		return
	}
	if err != nil || string(b) != lsmCacheKey() || !strings.Contains(string(b), "boot=") {
		t.Fatalf("the kept success: %q (%v), want %q", b, err, lsmCacheKey())
	}
	if ProbeLSMCached(file) != "" {
		t.Error("the kept success was not read back")
	}
	if err := os.WriteFile(file, []byte("bpf-lsm ok boot=another-boot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ProbeLSMCached(file) != "" {
		t.Error("a probe after a stale file failed")
	}
	if b, _ := os.ReadFile(file); string(b) != lsmCacheKey() {
		t.Errorf("a stale file was not rewritten: %q", b)
	}
}

// The kept probe is read only as a regular file, not through a symlink,
// not from a FIFO (without blocking), not from a directory others may
// write.
func TestReadCache(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := filepath.Join(t.TempDir(), "agent")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "lsm-probe")
	if err := os.WriteFile(file, []byte("bpf-lsm ok x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readCache(file); got != "bpf-lsm ok x\n" {
		t.Fatalf("the kept file is not read back: %q", got)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if got := readCache(link); got != "" {
		t.Errorf("read through a symlink: %q", got)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readCache(fifo); got != "" {
		t.Errorf("read from a FIFO: %q", got)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if got := readCache(file); got != "" {
		t.Errorf("read from a directory others may write: %q", got)
	}
}

// loadForLSM loads the objects pinned under a directory of the BPF file
// system named after the test (name) and this process, removed at the
// end, where the kernel runs BPF LSM programs; elsewhere the test is
// skipped saying why, except under BERTH_EXPECT_LSM=1 (the test VM).
func loadForLSM(t *testing.T, name string) *Objects {
	t.Helper()
	testutil.RequiresRoot(t)
	if why := ProbeLSM(); why != "" {
		if os.Getenv("BERTH_EXPECT_LSM") == "1" {
			t.Fatalf("BPF LSM expected here: %s", why)
		}
		t.Skipf("needs a kernel that runs BPF LSM programs: %s", why)
	}
	return loadPinned(t, name)
}

// loadPinned loads the objects pinned under a directory of the BPF file
// system named after the test (name) and this process, removed at the
// end.
func loadPinned(t *testing.T, name string) *Objects {
	t.Helper()
	if err := MountBPFFS(); err != nil {
		t.Fatalf("BPF file system: %v", err)
	}
	dir := filepath.Join(BPFFS, "berth-test-"+name+"-"+strconv.Itoa(os.Getpid()))
	o, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		o.Close()
		if err := Unpin(dir); err != nil {
			t.Error(err)
		}
	})
	return o
}

// TestLSMDeny: with the BPF LSM programs attached, an open for writing
// under a denied prefix and an exec of a denied path fail with EACCES for
// processes of the policy's cgroup (this test's own: the rules name a
// directory only this test uses), while other opens and execs, and opens
// for reading under the prefix, go on; each denial is reported with its
// rule. Where the kernel runs no BPF LSM programs the test says why and
// is skipped, except under BERTH_EXPECT_LSM=1 (the test VM).
func TestLSMDeny(t *testing.T) {
	o := loadForLSM(t, "lsm")
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	bin := filepath.Join(base, "bin")
	for _, d := range []string{etc, bin} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	existing := filepath.Join(etc, "passwd")
	if err := os.WriteFile(existing, []byte("root\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "ok"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(base, "own"), 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	deniedBin, allowedBin := filepath.Join(bin, "denied"), filepath.Join(bin, "allowed")
	for _, p := range []string{deniedBin, allowedBin} {
		if err := os.WriteFile(p, self, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	cg := ownCgroupID(t)
	atom := func(kind uint32, s string) SecmonAtom {
		a := SecmonAtom{Kind: kind, Len: uint32(len(s))}
		for i := range s {
			a.Data[i] = s[i]
		}
		return a
	}
	openPol := &SecmonPolicy{Nrules: 2, Flags: PolicyDeny}
	openPol.Rules[0].Natoms, openPol.Rules[0].Action, openPol.Rules[0].Id = 1, ActDeny, 3
	openPol.Rules[0].Table[0] = 1 << 1
	openPol.Rules[0].Atoms[0] = atom(AtomPathPrefix, etc+"/")
	// A rule on a directory that does not exist yet.
	conf := filepath.Join(base, "conf")
	openPol.Rules[1].Natoms, openPol.Rules[1].Action, openPol.Rules[1].Id = 1, ActDeny, 4
	openPol.Rules[1].Table[0] = 1 << 1
	openPol.Rules[1].Atoms[0] = atom(AtomPathEq, conf+"/app.yaml")
	execPol := &SecmonPolicy{Nrules: 1, Flags: PolicyDeny}
	execPol.Rules[0].Natoms, execPol.Rules[0].Action, execPol.Rules[0].Id = 1, ActDeny, 5
	execPol.Rules[0].Table[0] = 1 << 1
	execPol.Rules[0].Atoms[0] = atom(AtomPathEq, deniedBin)
	if err := o.OpenPolicy.Update(cg, openPol, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	defer o.OpenPolicy.Delete(cg)
	if err := o.ExecPolicy.Update(cg, execPol, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	defer o.ExecPolicy.Delete(cg)
	rd, err := ringbuf.NewReader(o.Events)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if err := o.AttachLSM(); err != nil {
		t.Fatal(err)
	}
	defer o.DetachLSM()

	if _, err := os.Create(filepath.Join(etc, "shadow")); !errors.Is(err, unix.EACCES) {
		t.Errorf("create under the denied prefix: %v, want EACCES", err)
	}
	if _, err := os.Lstat(filepath.Join(etc, "shadow")); err == nil {
		t.Error("the denied create left a file")
	}
	// The other changes of a directory's entries under the prefix.
	for what, err := range map[string]error{
		"mkdir":          os.Mkdir(filepath.Join(etc, "d"), 0o755),
		"mknod":          unix.Mknod(filepath.Join(etc, "fifo"), unix.S_IFIFO|0o600, 0),
		"unlink":         os.Remove(existing),
		"rename out":     os.Rename(existing, filepath.Join(base, "moved")),
		"rename in":      os.Rename(filepath.Join(base, "ok"), filepath.Join(etc, "ok")),
		"symlink":        os.Symlink("/x", filepath.Join(etc, "link")),
		"hard link":      os.Link(filepath.Join(base, "ok"), filepath.Join(etc, "hard")),
		"hard link out":  os.Link(existing, filepath.Join(base, "passwd")),
		"truncate(path)": os.Truncate(existing, 0),
		// Moving what a rule protects: its directory renamed, or
		// replaced by a directory or a symbolic link of one's own.
		"rename the directory":           os.Rename(etc, filepath.Join(base, "etc2")),
		"rename onto a rule's directory": os.Rename(filepath.Join(base, "own"), conf),
		"symlink as a rule's directory":  os.Symlink(filepath.Join(base, "own"), conf),
	} {
		if !errors.Is(err, unix.EACCES) {
			t.Errorf("%s under the denied prefix: %v, want EACCES", what, err)
		}
	}
	for what, err := range map[string]error{
		"mkdir":  os.Mkdir(filepath.Join(base, "d"), 0o755),
		"rename": os.Rename(filepath.Join(base, "ok"), filepath.Join(base, "ok2")),
		"unlink": os.Remove(filepath.Join(base, "ok2")),
	} {
		if err != nil {
			t.Errorf("%s elsewhere: %v", what, err)
		}
	}
	if _, err := os.OpenFile(existing, os.O_WRONLY|os.O_TRUNC, 0); !errors.Is(err, unix.EACCES) {
		t.Errorf("open for writing under the denied prefix: %v, want EACCES", err)
	}
	if b, err := os.ReadFile(existing); err != nil || string(b) != "root\n" {
		t.Errorf("read under the denied prefix: %q, %v (want the file unchanged and readable)", b, err)
	}
	run := func(p string) error {
		return exec.Command(p, "-test.run=^$").Run()
	}
	if err := run(deniedBin); !errors.Is(err, unix.EACCES) {
		t.Errorf("exec of the denied binary: %v, want EACCES", err)
	}
	if err := run(allowedBin); err != nil {
		t.Errorf("exec of another binary: %v", err)
	}
	// By another name: a symbolic link, and the file's descriptor.
	alias := filepath.Join(base, "alias")
	if err := os.Symlink(deniedBin, alias); err != nil {
		t.Fatal(err)
	}
	if err := run(alias); !errors.Is(err, unix.EACCES) {
		t.Errorf("exec of the denied binary through a symbolic link: %v, want EACCES", err)
	}
	f, err := os.Open(deniedBin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byFD := func() error {
		c := exec.Command("/proc/self/fd/3", "-test.run=^$")
		c.ExtraFiles = []*os.File{f}
		return c.Run()
	}
	if err := byFD(); !errors.Is(err, unix.EACCES) {
		t.Errorf("exec of the denied binary through /proc/self/fd: %v, want EACCES", err)
	}
	// Deleted, run through its descriptor: judged by its last path.
	if err := os.Remove(deniedBin); err != nil {
		t.Fatal(err)
	}
	if err := byFD(); !errors.Is(err, unix.EACCES) {
		t.Errorf("exec of the deleted denied binary through /proc/self/fd: %v, want EACCES", err)
	}
	// A chroot does not rename what the rules judge: the paths go up
	// to the mount namespace's root.
	bb, err := os.ReadFile(testutil.BusyboxPath)
	if err != nil {
		t.Fatalf("busybox for the chroot case: %v", err)
	}
	if err := os.WriteFile(filepath.Join(base, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testutil.BusyboxPath, "chroot", base, "/busybox", "sh", "-c", "echo x > /etc/chrooted; echo rc=$?").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rc=1") {
		t.Errorf("a write under the denied prefix from a chroot: %v: %s (want it refused)", err, out)
	}
	if _, err := os.Lstat(filepath.Join(etc, "chrooted")); err == nil {
		t.Error("the write from the chroot made the file")
	}

	want := map[uint32]string{KindOpen: filepath.Join(etc, "shadow"), KindExec: deniedBin}
	rd.SetDeadline(time.Now().Add(5 * time.Second))
	for len(want) > 0 {
		rec, err := rd.Read()
		if err != nil {
			t.Fatalf("events: %v (missing %v)", err, want)
		}
		var ev SecmonEvent
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Cgid != cg || ev.Action != ActDeny {
			continue
		}
		path := unix.ByteSliceToString(int8Bytes(ev.Path[:]))
		if path == want[ev.Kind] {
			if (ev.Kind == KindOpen && ev.Rule != 3) || (ev.Kind == KindExec && ev.Rule != 5) {
				t.Errorf("event %d for %s: rule %d", ev.Kind, path, ev.Rule)
			}
			delete(want, ev.Kind)
		}
	}
	// Every run gave its event slot back, on every path above.
	o.DetachLSM()
	checkFree(t, o, "the denied and allowed operations")
}

func int8Bytes(b []int8) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = byte(c)
	}
	return out
}
