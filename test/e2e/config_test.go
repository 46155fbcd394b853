package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// procStatus is a script that prints the container process's own
// /proc/self/status, which the kernel fills in and busybox cannot fake.
const procStatus = "cat /proc/self/status"

func TestHostnameDomainname(t *testing.T) {
	rt := newRuntime(t)
	host, _ := os.Hostname()
	out := runOut(t, rt, "uts", testutil.WithShell("hostname; cat /proc/sys/kernel/domainname"),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Hostname = "berth-host"
			s.Domainname = "berth.example"
		}))
	got := strings.Fields(out)
	wantDomain := "berth.example"
	if isRunc(t) {
		// runc 1.1.5 ignores the domainname field (runtime-spec 1.1).
		wantDomain = "(none)"
	}
	if len(got) != 2 || got[0] != "berth-host" || got[1] != wantDomain {
		t.Errorf("hostname, domainname = %q, want berth-host %s", got, wantDomain)
	}
	if h, _ := os.Hostname(); h != host {
		t.Errorf("the host's hostname changed from %q to %q", host, h)
	}
}

func TestEnvAndCwd(t *testing.T) {
	rt := newRuntime(t)
	out := runOut(t, rt, "env", testutil.WithShell("env; pwd"),
		testutil.WithEnv("BERTH_A=1", "BERTH_B=two words"),
		testutil.WithSpec(func(s *specs.Spec) { s.Process.Cwd = "/home/user" }))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, want := range []string{"BERTH_A=1", "BERTH_B=two words", "TERM=xterm"} {
		if !contains(lines, want) {
			t.Errorf("container env lacks %q:\n%s", want, out)
		}
	}
	// The test process has BERTH_RUNTIME set: it must not leak in.
	if strings.Contains(out, "BERTH_RUNTIME") {
		t.Errorf("the runtime's own environment leaked into the container:\n%s", out)
	}
	if lines[len(lines)-1] != "/home/user" {
		t.Errorf("cwd = %q, want /home/user", lines[len(lines)-1])
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

func TestUserIDs(t *testing.T) {
	rt := newRuntime(t)
	umask := uint32(0o027)
	out := runOut(t, rt, "user", testutil.WithShell(procStatus+"; umask"),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5, 65534}, Umask: &umask}
		}))
	for field, want := range map[string]string{
		"Uid":    "1000 1000 1000 1000",
		"Gid":    "1000 1000 1000 1000",
		"Groups": "5 65534",
	} {
		if got := statusField(out, field); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	if lines := strings.Fields(out); lines[len(lines)-1] != "0027" {
		t.Errorf("umask = %q, want 0027", lines[len(lines)-1])
	}
}

func TestRlimits(t *testing.T) {
	rt := newRuntime(t)
	out := runOut(t, rt, "rlimit", testutil.WithShell("ulimit -n; ulimit -Hn"),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1000, Hard: 2000}}
		}))
	if got := strings.Fields(out); len(got) != 2 || got[0] != "1000" || got[1] != "2000" {
		t.Errorf("RLIMIT_NOFILE soft, hard = %q, want 1000 2000", got)
	}
}

func TestCapabilities(t *testing.T) {
	rt := newRuntime(t)
	// A non-root user keeps across execve only its ambient set (and
	// inheritable and bounding, which execve does not change), so each set
	// below shows in /proc/self/status as configured.
	out := runOut(t, rt, "caps", testutil.WithShell(procStatus),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Process.User = specs.User{UID: 1000, GID: 1000}
			s.Process.Capabilities = &specs.LinuxCapabilities{
				Bounding:    []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
				Permitted:   []string{"CAP_CHOWN", "CAP_KILL"},
				Inheritable: []string{"CAP_CHOWN", "CAP_KILL"},
				Effective:   []string{"CAP_CHOWN", "CAP_KILL"},
				Ambient:     []string{"CAP_KILL"},
			}
		}))
	// CAP_CHOWN is bit 0, CAP_KILL bit 5, CAP_NET_BIND_SERVICE bit 10.
	for field, want := range map[string]string{
		"CapInh": "0000000000000021",
		"CapPrm": "0000000000000020",
		"CapEff": "0000000000000020",
		"CapBnd": "0000000000000421",
		"CapAmb": "0000000000000020",
	} {
		if got := statusField(out, field); got != want {
			t.Errorf("%s: %s, want %s", field, got, want)
		}
	}

	// Root with the default set: the bounding set limits what it gets.
	out = runOut(t, rt, "capsroot", testutil.WithShell(procStatus))
	for _, field := range []string{"CapBnd", "CapPrm", "CapEff"} {
		// CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10).
		if got := statusField(out, field); got != "0000000020000420" {
			t.Errorf("default spec, %s: %s, want 0000000020000420", field, got)
		}
	}
}

func TestNoNewPrivileges(t *testing.T) {
	rt := newRuntime(t)
	for _, nnp := range []bool{true, false} {
		out := runOut(t, rt, "nnp", testutil.WithShell(procStatus),
			testutil.WithSpec(func(s *specs.Spec) { s.Process.NoNewPrivileges = nnp }))
		want := "0"
		if nnp {
			want = "1"
		}
		if got := statusField(out, "NoNewPrivs"); got != want {
			t.Errorf("noNewPrivileges %v: NoNewPrivs %q, want %s", nnp, got, want)
		}
	}
}

func TestOOMScoreAdj(t *testing.T) {
	rt := newRuntime(t)
	adj := 500
	out := runOut(t, rt, "oom", testutil.WithShell("cat /proc/self/oom_score_adj"),
		testutil.WithSpec(func(s *specs.Spec) { s.Process.OOMScoreAdj = &adj }))
	if strings.TrimSpace(out) != "500" {
		t.Errorf("oom_score_adj = %q, want 500", out)
	}

	// Lowering it below the runtime's own needs CAP_SYS_RESOURCE, which the
	// runtime here runs without (as on this project's CI machine): it must
	// say what it could not do.
	noRes := runtimeWithoutCap(t, "sys_resource")
	low := -500
	b := testutil.NewBundle(t, testutil.WithArgs("true"),
		testutil.WithSpec(func(s *specs.Spec) { s.Process.OOMScoreAdj = &low }))
	res := noRes.Run(noRes.NewID("oomlow"), b.Dir)
	if res.ExitCode == 0 {
		t.Fatalf("lowering oom_score_adj without CAP_SYS_RESOURCE succeeded: %s", res)
	}
	t.Logf("lowering oom_score_adj refused: %s", strings.TrimSpace(res.Stderr))
	if !strings.Contains(res.Stderr, "oom_score_adj") {
		t.Errorf("run with oomScoreAdj -500 failed without naming oom_score_adj:\n%s", res)
	}
}

func TestReadonlyRoot(t *testing.T) {
	rt := newRuntime(t)
	for _, ro := range []bool{true, false} {
		b := testutil.NewBundle(t, testutil.WithShell("touch /berth-written"),
			testutil.WithSpec(func(s *specs.Spec) { s.Root.Readonly = ro }))
		res := rt.Run(rt.NewID("roroot"), b.Dir)
		switch {
		case ro && (res.ExitCode == 0 || !strings.Contains(res.Stderr, "Read-only file system")):
			t.Errorf("readonly root: touch / should fail with EROFS: %s", res)
		case !ro && res.ExitCode != 0:
			t.Errorf("writable root: touch / failed: %s", res)
		case !ro && !fileExists(b.Path("berth-written")):
			t.Errorf("writable root: the file did not land in the rootfs")
		}
	}
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	rt := newRuntime(t)
	hostFirmware, _ := os.ReadDir("/sys/firmware")
	// /proc/kcore is absent on some kernels; mask a file this host has.
	masked := ""
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list"} {
		if fileExists(p) {
			masked = p
			break
		}
	}
	if masked == "" {
		t.Fatal("none of /proc/kcore, /proc/keys, /proc/timer_list exists on the host")
	}
	b := testutil.NewBundle(t, testutil.WithShell(`
		stat -c 'masked %F %t:%T' `+masked+`
		echo "firmware $(ls -A /sys/firmware | wc -l)"
		echo berth > /proc/sys/kernel/domainname && echo sysctl-written
		grep -E ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6`),
		testutil.WithSpec(func(s *specs.Spec) {
			// CAP_SYS_ADMIN, so that only the read-only mount stops the
			// write to /proc/sys.
			c := s.Process.Capabilities
			c.Bounding = append(c.Bounding, "CAP_SYS_ADMIN")
			c.Effective = append(c.Effective, "CAP_SYS_ADMIN")
			c.Permitted = append(c.Permitted, "CAP_SYS_ADMIN")
		}))
	res := rt.Run(rt.NewID("masked"), b.Dir)
	out := res.Stdout
	// Masked files are /dev/null bound over them: character device 1:3.
	if !strings.Contains(out, "masked character special file 1:3") {
		t.Errorf("%s is not masked by /dev/null:\n%s", masked, res)
	}
	if len(hostFirmware) > 0 && !strings.Contains(out, "firmware 0") {
		t.Errorf("/sys/firmware is not masked (empty):\n%s", res)
	}
	if strings.Contains(out, "sysctl-written") || !strings.Contains(res.Stderr, "Read-only file system") {
		t.Errorf("/proc/sys is writable:\n%s", res)
	}
	if !strings.Contains(out, "ro,") && !strings.HasSuffix(strings.TrimSpace(out), "ro") {
		t.Errorf("/proc/sys mount options lack ro:\n%s", out)
	}
}

func TestSysctl(t *testing.T) {
	rt := newRuntime(t)
	out := runOut(t, rt, "sysctl",
		testutil.WithShell("cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ip_default_ttl"),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.ip_default_ttl": "77"}
		}))
	if got := strings.Fields(out); len(got) != 2 || got[0] != "1" || got[1] != "77" {
		t.Errorf("ip_forward, ip_default_ttl = %q, want 1 77", got)
	}
	host, _ := os.ReadFile("/proc/sys/net/ipv4/ip_default_ttl")
	if strings.TrimSpace(string(host)) == "77" {
		t.Errorf("the sysctl leaked into the host's network namespace")
	}
}

func TestCgroupNamespace(t *testing.T) {
	rt := newRuntime(t)
	out := runOut(t, rt, "cgns", testutil.WithShell("cat /proc/self/cgroup"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 {
		t.Fatal("empty /proc/self/cgroup")
	}
	for _, l := range lines {
		// In its own cgroup namespace the container's cgroup is the root;
		// without one, the path would name the container.
		if !strings.HasSuffix(l, ":/") {
			t.Errorf("/proc/self/cgroup line %q, want the cgroup namespace root \"/\"", l)
		}
	}
}

func TestTimeNamespace(t *testing.T) {
	skipIfRunc(t, "time namespaces and linux.timeOffsets are not supported (added in runc 1.2)")
	rt := newRuntime(t)
	const offset = 10 * 86400
	out := runOut(t, rt, "timens", testutil.WithShell("cut -d. -f1 /proc/uptime"),
		testutil.WithNamespaces(append(testutil.DefaultSpec().Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})...),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{
				"boottime":  {Secs: offset},
				"monotonic": {Secs: offset},
			}
		}))
	raw, _ := os.ReadFile("/proc/uptime")
	var host, inside int
	fmt.Sscanf(string(raw), "%d", &host)
	fmt.Sscanf(out, "%d", &inside)
	if d := inside - host; d < offset-60 || d > offset+60 {
		t.Errorf("uptime inside %d, host %d: want the container's %d seconds ahead", inside, host, offset)
	}
}

// TestTimeNamespaceUserns: time offsets are set in a container that also
// has a user namespace (runc timens.bats "runc run [simple timens +
// userns]"); they used to fail with EACCES on /proc/self/timens_offsets.
func TestTimeNamespaceUserns(t *testing.T) {
	skipIfRunc(t, "time namespaces and linux.timeOffsets are not supported (added in runc 1.2)")
	rt := newRuntime(t)
	mapping := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	out := runOut(t, rt, "timensuserns", testutil.WithShell("cat /proc/self/timens_offsets"),
		testutil.WithNamespaces(append(testutil.DefaultSpec().Linux.Namespaces,
			specs.LinuxNamespace{Type: specs.TimeNamespace}, specs.LinuxNamespace{Type: specs.UserNamespace})...),
		testutil.WithSpec(func(s *specs.Spec) {
			s.Linux.UIDMappings = mapping
			s.Linux.GIDMappings = mapping
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 7881, Nanosecs: 2718281}}
		}))
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "monotonic 7881 2718281") {
		t.Errorf("timens_offsets in a container with a user namespace: %q, want monotonic 7881 2718281", out)
	}
}
