package e2e

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func fileHash(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestCVE20195736 (runc /proc/self/exe overwrite): a container process
// opens /proc/PID/exe of the runtime process that joins the container for
// `exec`, and writes through it once it can. The runtime's binary on the
// host must not change. The runtime under test is a copy, so a vulnerable
// runtime only breaks its copy.
func TestCVE20195736(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := hostDir(t)
	copyBin := filepath.Join(dir, filepath.Base(runtimeBin(t)))
	data, err := os.ReadFile(runtimeBin(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, copyBin)
	// berth-runtime's init runs from berth-runtime-init beside it: the
	// container meets that binary first, and it must not change either.
	initBin := filepath.Join(filepath.Dir(runtimeBin(t)), "berth-runtime-init")
	copyInit := filepath.Join(dir, "berth-runtime-init")
	initBefore := ""
	if data, err := os.ReadFile(initBin); err == nil && !isRunc(t) {
		if err := os.WriteFile(copyInit, data, 0o755); err != nil {
			t.Fatal(err)
		}
		initBefore = fileHash(t, copyInit)
	}
	rt := testutil.NewRuntime(t, copyBin)

	// The attacker freezes every other process in the container (kill -STOP
	// -1 spares only init and itself), so the runtime's process that joins
	// the container for exec cannot slip by; it opens each frozen process's
	// /proc/PID/exe that is not busybox as fd 3, lets the processes go, and
	// keeps appending through /proc/self/fd/3 after the runtime exits.
	b := testutil.NewBundle(t, testutil.WithWritableRoot(), testutil.WithShell(`
		attack() {
			while :; do
				kill -STOP -1 2>/dev/null
				for p in /proc/[0-9]*; do
					[ "${p#/proc/}" = 1 ] && continue
					t=$(readlink $p/exe) || continue
					[ "$t" = /bin/busybox ] && continue
					echo "$t" >> /tmp/seen
					exec 3< $p/exe
				done
				kill -CONT -1 2>/dev/null
				[ -e /proc/self/fd/3 ] && echo pwned >> /proc/self/fd/3 2>/dev/null && echo wrote >> /tmp/seen
			done
		}
		attack & exec sleep 1000`))
	id := rt.NewID("cve5736")
	rt.Run(id, b.Dir, "-d").OK(t)
	// The vector of the CVE: exec a program that is the runtime's own
	// /proc/self/exe, directly or as a #! interpreter, so that a process in
	// the container runs the runtime's binary. A fixed runtime refuses, or
	// runs a sealed copy; either way its binary on the host is unchanged.
	b.WriteFile(t, "/bin/evil", "#!/proc/self/exe\n", 0o755)
	for i := 0; i < 5; i++ {
		for _, prog := range []string{"/proc/self/exe", "/bin/evil"} {
			res := rt.Exec(id, nil, prog)
			t.Logf("exec %s: exit %d: %s", prog, res.ExitCode, strings.TrimSpace(res.Stderr))
		}
	}
	seen, _ := os.ReadFile(b.Path("tmp/seen"))
	t.Logf("the attacker saw and opened: %q", seen)
	rt.Kill(id, "KILL").OK(t)
	rt.Wait(id)
	if after := fileHash(t, copyBin); after != before {
		t.Fatalf("the container overwrote the runtime binary on the host (CVE-2019-5736); attacker log:\n%s", seen)
	}
	if initBefore != "" && fileHash(t, copyInit) != initBefore {
		t.Fatalf("the container overwrote the init binary on the host (CVE-2019-5736); attacker log:\n%s", seen)
	}
}

// TestCVE202421626 (leaked fds, process.cwd through /proc/self/fd): no host
// file descriptor reaches the container, and a cwd of /proc/self/fd/N gives
// no way out to the host.
func TestCVE202421626(t *testing.T) {
	rt := newRuntime(t)
	// ls lists the fds of another process (its own would include the
	// directory it reads).
	b := testutil.NewBundle(t, testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("cve21626")
	rt.Run(id, b.Dir, "-d").OK(t)
	if out := rt.Exec(id, nil, "ls", "/proc/1/fd").Stdout; strings.Join(strings.Fields(out), " ") != "0 1 2" {
		t.Errorf("container init has file descriptors %q, want only 0 1 2", out)
	}
	if out := rt.Exec(id, nil, "sh", "-c", "ls /proc/$$/fd; :").Stdout; strings.Join(strings.Fields(out), " ") != "0 1 2" {
		t.Errorf("exec'd process has file descriptors %q, want only 0 1 2", out)
	}

	// The bundle directory's name exists only on the host.
	marker := filepath.Base(b.Dir)
	probe := `pwd; ls -a ../../../../../../../tmp 2>&1`
	for fd := 3; fd <= 9; fd++ {
		cwd := fmt.Sprintf("/proc/self/fd/%d", fd)
		res := rt.Exec(id, []string{"--cwd", cwd}, "sh", "-c", probe)
		if strings.Contains(res.Stdout, marker) {
			t.Errorf("exec --cwd %s reached the host's /tmp: %s", cwd, res)
		}
		b2 := testutil.NewBundle(t, testutil.WithShell(probe),
			testutil.WithSpec(func(s *specs.Spec) { s.Process.Cwd = cwd }))
		res = rt.Run(rt.NewID("cve21626cwd"), b2.Dir)
		if strings.Contains(res.Stdout, filepath.Base(b2.Dir)) || strings.Contains(res.Stdout, marker) {
			t.Errorf("process.cwd %s reached the host's /tmp: %s", cwd, res)
		}
	}
}

// TestCVE202130465 (symlink mount destinations): a mount destination that is
// a symlink pointing out of the rootfs must land inside the rootfs, or be
// refused; the host path it names must be untouched.
func TestCVE202130465(t *testing.T) {
	rt := newRuntime(t)
	victim, volume := hostDir(t), hostDir(t)
	os.WriteFile(filepath.Join(volume, "marker"), []byte("volume"), 0o644)
	for _, target := range []string{victim, "../../../../../../../../.." + victim} {
		b := testutil.NewBundle(t, testutil.WithWritableRoot(),
			testutil.WithShell(`cat /evil/marker; touch /evil/by-container`),
			testutil.WithRootfs(func(rootfs string) error { return os.Symlink(target, filepath.Join(rootfs, "evil")) }),
			testutil.WithMounts(specs.Mount{Destination: "/evil", Type: "bind", Source: volume, Options: []string{"rbind", "rw"}}))
		res := rt.Run(rt.NewID("cve30465"), b.Dir)
		if res.ExitCode == 0 && res.Stdout != "volume" {
			t.Errorf("mount on symlink -> %s: the container does not see the mount at /evil: %s", target, res)
		}
		if entries, _ := os.ReadDir(victim); len(entries) != 0 {
			t.Errorf("mount on symlink -> %s: the host directory it names was changed: %v", target, entries)
		}
		if m := testutil.MountsUnder(victim); len(m) != 0 {
			t.Errorf("mount on symlink -> %s: host mounts under it: %v", target, m)
		}
	}
}

// TestFakeProc: procfs writes (oom_score_adj, attr, sysctls) must not land on
// an ordinary directory standing in for /proc: the runtime must refuse such
// a rootfs, or mount real procfs.
func TestFakeProc(t *testing.T) {
	rt := newRuntime(t)
	adj := 100
	fake := hostDir(t)
	os.MkdirAll(filepath.Join(fake, "self"), 0o755)
	check := func(name string, b *testutil.Bundle) {
		t.Helper()
		res := rt.Run(rt.NewID("fakeproc"), b.Dir)
		if res.ExitCode == 0 && strings.TrimSpace(res.Stdout) != "proc" {
			t.Errorf("%s: /proc in the container is %q, not procfs: %s", name, res.Stdout, res)
		}
		if entries, _ := os.ReadDir(filepath.Join(fake, "self")); len(entries) != 0 {
			t.Errorf("%s: the runtime wrote into the fake /proc: %v", name, entries)
		}
	}
	// A bind mount of an ordinary directory over /proc.
	check("bind over /proc", testutil.NewBundle(t, testutil.WithShell("stat -f -c %T /proc"),
		testutil.WithMounts(specs.Mount{Destination: "/proc", Type: "bind", Source: fake, Options: []string{"rbind"}}),
		testutil.WithSpec(func(s *specs.Spec) { s.Process.OOMScoreAdj = &adj })))
	// /proc in the rootfs is a symlink to an ordinary directory.
	check("/proc a symlink", testutil.NewBundle(t, testutil.WithShell("stat -f -c %T /proc"),
		testutil.WithRootfs(func(rootfs string) error {
			os.Remove(filepath.Join(rootfs, "proc"))
			os.Mkdir(filepath.Join(rootfs, "fakeproc"), 0o755)
			return os.Symlink("/fakeproc", filepath.Join(rootfs, "proc"))
		}),
		testutil.WithSpec(func(s *specs.Spec) { s.Process.OOMScoreAdj = &adj })))
}

// TestProcSymlinkRefused: procfs is not mounted through a /proc that the
// image made a symlink, as runc refuses it (runc mounts.bats "runc run
// [/proc is a symlink]", CVE-2019-19921).
func TestProcSymlinkRefused(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"), testutil.WithRootfs(func(rootfs string) error {
		os.RemoveAll(filepath.Join(rootfs, "proc"))
		if err := os.Mkdir(filepath.Join(rootfs, "bad-proc"), 0o755); err != nil {
			return err
		}
		return os.Symlink("/bad-proc", filepath.Join(rootfs, "proc"))
	}))
	res := rt.Run(rt.NewID("procsym"), b.Dir)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "must be mounted on ordinary directory") {
		t.Errorf("run with /proc a symlink: %s; want a refusal", res)
	}
}

// TestProcBindOfProcRoot: the root of a procfs may be bound on /proc (a
// container in the host's pid namespace that cannot mount its own, as
// rootless Podman --pid=host does; runc start_hello.bats "runc run
// [rootless with host pidns]"); a directory inside a procfs may not.
func TestProcBindOfProcRoot(t *testing.T) {
	rt := newRuntime(t)
	bundle := func(src string) *testutil.Bundle {
		return testutil.NewBundle(t, testutil.WithShell("stat -f -c %T /proc; test -e /proc/1/status && echo host-pids"),
			testutil.WithSpec(func(s *specs.Spec) {
				var keep []specs.LinuxNamespace
				for _, ns := range s.Linux.Namespaces {
					if ns.Type != specs.PIDNamespace {
						keep = append(keep, ns)
					}
				}
				s.Linux.Namespaces = keep
				for i, m := range s.Mounts {
					if m.Type == "proc" {
						s.Mounts[i] = specs.Mount{Destination: "/proc", Type: "none", Source: src, Options: []string{"rbind", "nosuid", "nodev", "noexec"}}
					}
				}
			}))
	}
	res := rt.Run(rt.NewID("procbind"), bundle("/proc").Dir)
	if res.ExitCode != 0 || res.Stdout != "proc\nhost-pids\n" {
		t.Errorf("run with the host's /proc bound on /proc: %s; want procfs with the host's pids", res)
	}
	res = rt.Run(rt.NewID("procbind"), bundle("/proc/sys").Dir)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "not the root of a procfs") {
		t.Errorf("run with /proc/sys bound on /proc: %s; want a refusal", res)
	}
}

// TestNoPivotHidesHostProc: with --no-pivot the host's procfs stays in the
// container's mount namespace below the moved root; it is detached first, so
// a nested user namespace cannot mount a new, unmasked procfs (runc
// no_pivot.bats "runc run --no-pivot must not expose bare /proc").
func TestNoPivotHidesHostProc(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("busybox", "unshare", "-mrpf", "busybox", "sh", "-euc", "busybox mount -t proc none /proc && echo mounted"),
		testutil.WithSpec(func(s *specs.Spec) {
			c := s.Process.Capabilities
			c.Bounding = append(c.Bounding, "CAP_SETFCAP")
			c.Permitted = append(c.Permitted, "CAP_SETFCAP")
		}))
	res := rt.Run(rt.NewID("nopivot"), b.Dir, "--no-pivot")
	if res.ExitCode == 0 || strings.Contains(res.Stdout, "mounted") || !strings.Contains(res.Stderr, "Permission denied") && !strings.Contains(res.Stderr, "permission denied") {
		t.Errorf("mount of a new procfs in a nested user namespace under --no-pivot: %s; want permission denied", res)
	}
}
