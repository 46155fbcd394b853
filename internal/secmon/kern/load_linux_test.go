package kern

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
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
		l, err := link.LoadPinnedLink(o.linkPath("exit"), nil)
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
	mine, _ := o.BerthExit.Info()
	other, _ := o.BerthSysEnter.Info()
	// "Another version": the sys_enter program on the exit tracepoint
	// (it finds no policy and returns).
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_exit", Program: o.BerthSysEnter})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Pin(o.linkPath("exit"))
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := pinnedTag(); got != other.Tag {
		t.Fatalf("pinned tag %s, want %s", got, other.Tag)
	}
	if err := o.AttachExit(); err != nil {
		t.Fatal(err)
	}
	if got := pinnedTag(); got != mine.Tag {
		t.Errorf("after AttachExit the pinned link runs %s, want ours %s", got, mine.Tag)
	}
	if err := o.AttachExit(); err != nil || pinnedTag() != mine.Tag {
		t.Errorf("a second AttachExit: %v", err)
	}
	if err := o.DetachExit(); err != nil {
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
	const syn, synAck = 0x02, 0x12
	v4 := func(src [4]byte, opts int, port uint16, flags byte) []byte {
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
func ownCgroupID(t *testing.T) uint64 {
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
				var s unix.Stat_t
				if err := unix.Stat(filepath.Join(root, p), &s); err == nil {
					return s.Ino
				}
			}
		}
	}
	t.Skip("no cgroup v2 for this process")
	return 0
}
