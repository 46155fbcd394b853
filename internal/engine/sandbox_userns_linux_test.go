package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// openForPodRoot lets an unprivileged host user (a pod's root) through
// the test's private directories (t.TempDir makes them 0700), as an
// operator's /var/lib and /run do.
func openForPodRoot(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		for ; d != "/" && d != "."; d = filepath.Dir(d) {
			st, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func usernsTestEngine(t *testing.T) *Engine {
	t.Helper()
	if os.Getenv("BERTH_RUNTIME") == "" {
		t.Skip("needs berth-runtime in BERTH_RUNTIME (make test sets it): runc 1.1 has no idmapped mounts")
	}
	e := testEngine(t)
	openForPodRoot(t, filepath.Dir(e.opts.MonitorBin), e.opts.Root, e.opts.RunRoot)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.ProbeUserNS(ctx); err != nil {
		t.Fatalf("ProbeUserNS: %v (idmapped mounts need Linux 5.12 and a file system that takes them)", err)
	}
	return e
}

func podIDs() *SandboxUserNS {
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	return &SandboxUserNS{UIDMappings: m, GIDMappings: m}
}

// nsOwner is the inode of the user namespace that owns the namespace
// file at p.
func nsOwner(t *testing.T, p string) uint64 {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	owner, err := unix.IoctlRetInt(fd, unix.NS_GET_USERNS)
	if err != nil {
		t.Fatalf("NS_GET_USERNS %s: %v", p, err)
	}
	defer unix.Close(owner)
	var st unix.Stat_t
	if err := unix.Fstat(owner, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func nsInode(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// pauseProcs are the live pause processes of e's sandbox id (of any of
// its sandboxes for "").
func pauseProcs(e *Engine, id string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), e.opts.MonitorBin+"\x00--pause\x00"+id) {
			out = append(out, d.Name())
		}
	}
	return out
}

// checkSandboxGone checks that nothing of sandbox id is left on the host.
func checkSandboxGone(t *testing.T, e *Engine, id string) {
	t.Helper()
	for _, p := range []string{e.sandboxRunDir(id), filepath.Join(e.opts.RunRoot, "network", "netns", id), e.sandboxDir(id)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left (%v)", p, err)
		}
	}
	if m := testutil.MountsUnder(e.opts.RunRoot); len(m) > 0 {
		t.Errorf("mounts left under the run root: %v", m)
	}
	if p := pauseProcs(e, id); len(p) > 0 {
		t.Errorf("the sandbox's namespace holder still runs: pids %v", p)
	}
}

// A sandbox with a user namespace pins it and its network, IPC and UTS
// namespaces, all owned by it; a container of the sandbox runs as the
// namespace's root over an idmapped image, in the pod's hostname; the
// sandbox's removal leaves nothing.
func TestSandboxUserNamespace(t *testing.T) {
	e := usernsTestEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, sharePID := range []bool{false, true} {
		t.Run(fmt.Sprintf("sharePID=%v", sharePID), func(t *testing.T) {
			sb, err := e.RunSandbox(ctx, SandboxConfig{Name: "uns" + newID()[:8], Hostname: "podhost", UserNS: podIDs(), SharePID: sharePID})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.RemoveSandbox(context.Background(), sb.ID) })
			userns := nsInode(t, sb.UserNSPath)
			if self := nsInode(t, "/proc/self/ns/user"); userns == self {
				t.Fatalf("the sandbox's user namespace is the host's")
			}
			for _, p := range []string{sb.NetNSPath, sb.IPCPath, sb.UTSPath} {
				if got := nsOwner(t, p); got != userns {
					t.Errorf("%s is owned by user namespace %d, want the sandbox's %d", p, got, userns)
				}
			}
			if sharePID != (sb.PausePid > 0) || len(pauseProcs(e, sb.ID)) != map[bool]int{false: 0, true: 1}[sharePID] {
				t.Errorf("pause pid %d, holders %v: want a pause process only with a shared PID namespace", sb.PausePid, pauseProcs(e, sb.ID))
			}
			if sharePID {
				if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", sb.PausePid)); got != fmt.Sprintf("user:[%d]", userns) {
					t.Errorf("the pause process is in %s, want the sandbox's user namespace", got)
				}
			}
			{
				_, out, code := runTest(t, e, CreateOptions{SandboxID: sb.ID, Config: Config{Cmd: []string{"sh", "-c",
					"hostname; id -u; cat /proc/self/uid_map; stat -c %u:%g /bin/busybox; touch /new && stat -c %u /new"}}})
				want := []string{"podhost", "0", "0 100000 65536", "0:0", "0"}
				got := strings.Fields(strings.Join(strings.Fields(out), " "))
				if code != 0 || strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("in the sandbox: exit %d, output %q; want %q", code, out, want)
				}
			}
			if err := e.RemoveSandbox(ctx, sb.ID); err != nil {
				t.Fatal(err)
			}
			checkSandboxGone(t, e, sb.ID)
		})
	}
}

// A failure after the namespaces are made (here sethostname refusing a
// name over 64 bytes) leaves no pin, file, mount or process.
func TestSandboxUserNamespaceFailureLeavesNothing(t *testing.T) {
	e := usernsTestEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, sharePID := range []bool{false, true} {
		_, err := e.RunSandbox(ctx, SandboxConfig{Name: "unsbad" + newID()[:8], Hostname: strings.Repeat("h", 70), UserNS: podIDs(), SharePID: sharePID})
		if err == nil || !strings.Contains(err.Error(), "set hostname") {
			t.Fatalf("sharePID=%v: RunSandbox = %v, want the hostname refused", sharePID, err)
		}
		sbs, _ := e.ListSandboxes(ctx)
		if len(sbs) > 0 {
			t.Errorf("sandboxes after a failed run: %v", sbs)
		}
		for _, d := range []string{filepath.Join(e.opts.RunRoot, "sandboxes"), filepath.Join(e.opts.RunRoot, "network", "netns")} {
			if ents, _ := os.ReadDir(d); len(ents) > 0 {
				t.Errorf("%s holds %d entries after a failed run", d, len(ents))
			}
		}
		if p := pauseProcs(e, ""); len(p) > 0 {
			t.Errorf("namespace holders still run: %v", p)
		}
		if m := testutil.MountsUnder(e.opts.RunRoot); len(m) > 0 {
			t.Errorf("mounts left: %v", m)
		}
	}
}

func TestValidateSandboxUserNS(t *testing.T) {
	m := func(c, h, n uint32) specs.LinuxIDMapping {
		return specs.LinuxIDMapping{ContainerID: c, HostID: h, Size: n}
	}
	ok := podIDs()
	for _, tc := range []struct {
		name string
		cfg  SandboxConfig
		want string // "" for valid
	}{
		{"ok", SandboxConfig{UserNS: ok}, ""},
		{"none", SandboxConfig{HostNetwork: true}, ""},
		{"hostnet", SandboxConfig{UserNS: ok, HostNetwork: true}, "host's network namespace"},
		{"hostipc", SandboxConfig{UserNS: ok, HostIPC: true}, "host's IPC namespace"},
		{"hostpid", SandboxConfig{UserNS: ok, HostPID: true}, "host's PID namespace"},
		{"empty", SandboxConfig{UserNS: &SandboxUserNS{GIDMappings: ok.GIDMappings}}, "userNS.uidMappings: no mapping"},
		{"zero", SandboxConfig{UserNS: &SandboxUserNS{UIDMappings: ok.UIDMappings, GIDMappings: []specs.LinuxIDMapping{m(0, 5, 0)}}}, "userNS.gidMappings: mapping 0 has length 0"},
		{"hostroot", SandboxConfig{UserNS: &SandboxUserNS{UIDMappings: []specs.LinuxIDMapping{m(0, 0, 10)}, GIDMappings: ok.GIDMappings}}, "host's root"},
		{"wrap", SandboxConfig{UserNS: &SandboxUserNS{UIDMappings: []specs.LinuxIDMapping{m(0, 1<<32-10, 20)}, GIDMappings: ok.GIDMappings}}, "32-bit"},
		{"overlap", SandboxConfig{UserNS: &SandboxUserNS{UIDMappings: []specs.LinuxIDMapping{m(0, 1000, 10), m(5, 5000, 10)}, GIDMappings: ok.GIDMappings}}, "overlap in container IDs"},
		{"hostoverlap", SandboxConfig{UserNS: &SandboxUserNS{UIDMappings: []specs.LinuxIDMapping{m(0, 1000, 10), m(10, 1005, 10)}, GIDMappings: ok.GIDMappings}}, "overlap in host IDs"},
		{"noroot", SandboxConfig{UserNS: &SandboxUserNS{UIDMappings: []specs.LinuxIDMapping{m(1, 1000, 10)}, GIDMappings: ok.GIDMappings}}, "container ID 0 (root) is not mapped"},
	} {
		err := validateSandboxUserNS(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func FuzzValidateIDMap(f *testing.F) {
	f.Add(uint32(0), uint32(100000), uint32(65536), uint32(65536), uint32(300000), uint32(10))
	f.Add(uint32(0), uint32(0), uint32(1), uint32(0), uint32(1), uint32(1))
	f.Add(uint32(0), uint32(1<<32-1), uint32(2), uint32(5), uint32(6), uint32(0))
	f.Fuzz(func(t *testing.T, c1, h1, n1, c2, h2, n2 uint32) {
		ms := []specs.LinuxIDMapping{{ContainerID: c1, HostID: h1, Size: n1}, {ContainerID: c2, HostID: h2, Size: n2}}
		if validateIDMap("f", ms) != nil {
			return
		}
		// What passes, the kernel takes: no overlap, no wrap, root mapped.
		if overlap(c1, n1, c2, n2) || overlap(h1, n1, h2, n2) || h1 == 0 || h2 == 0 || n1 == 0 || n2 == 0 {
			t.Fatalf("accepted %v", ms)
		}
		if _, ok := hostIDOf(ms, 0); !ok {
			t.Fatalf("accepted %v without root", ms)
		}
	})
}
