package kern

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

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
