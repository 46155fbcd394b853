package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/seccomp"
	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// specInput is a minimal valid input over a rootfs with passwd and group.
func specInput(t *testing.T) SpecInput {
	t.Helper()
	return SpecInput{
		ID:          testID,
		Config:      Config{Hostname: testID[:12], Cmd: []string{"sh", "-c", "true"}, Env: []string{"PATH=/bin", "A=1"}},
		Rootfs:      writeRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup}),
		NetNSPath:   "/run/netns/test",
		CgroupsPath: "/berth/" + testID,
	}
}

func buildSpec(t *testing.T, in SpecInput) *specs.Spec {
	t.Helper()
	s, err := BuildSpec(context.Background(), in)
	if err != nil {
		t.Fatalf("BuildSpec: %v", err)
	}
	return s
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func mountAt(s *specs.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

func hasNamespace(s *specs.Spec, t specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return ns, true
		}
	}
	return specs.LinuxNamespace{}, false
}

func TestSpecDefaults(t *testing.T) {
	in := specInput(t)
	s := buildSpec(t, in)

	docker := sorted(seccomp.DockerDefaultCaps())
	if len(docker) != 14 {
		t.Fatalf("Docker's default capabilities: %d, want 14", len(docker))
	}
	c := s.Process.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
		if !reflect.DeepEqual(sorted(set), docker) {
			t.Errorf("%s capabilities: %v, want %v", name, set, docker)
		}
	}
	if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Errorf("inheritable/ambient capabilities: %v %v", c.Inheritable, c.Ambient)
	}
	if s.Linux.Seccomp == nil || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Fatal("no default seccomp profile")
	}
	if !reflect.DeepEqual(s.Linux.Seccomp, seccomp.DefaultProfileFor(c.Bounding)) {
		t.Error("seccomp profile is not the default one for the final capabilities")
	}
	for _, p := range []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"} {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("%s not masked", p)
		}
	}
	for _, p := range []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"} {
		if !slices.Contains(s.Linux.ReadonlyPaths, p) {
			t.Errorf("%s not read-only", p)
		}
	}
	if m := mountAt(s, "/dev"); m == nil || m.Type != "tmpfs" {
		t.Errorf("/dev: %+v", m)
	}
	if m := mountAt(s, "/dev/shm"); m == nil || !slices.Contains(m.Options, "size=67108864") {
		t.Errorf("/dev/shm: %+v", m)
	}
	if m := mountAt(s, "/dev/mqueue"); m == nil || m.Type != "mqueue" {
		t.Errorf("/dev/mqueue: %+v", m)
	}
	for _, d := range []string{"/sys", "/sys/fs/cgroup"} {
		if m := mountAt(s, d); m == nil || !slices.Contains(m.Options, "ro") {
			t.Errorf("%s not read-only: %+v", d, m)
		}
	}
	if m := mountAt(s, "/proc"); m == nil || !reflect.DeepEqual(m.Options, []string{"nosuid", "noexec", "nodev"}) {
		t.Errorf("/proc: %+v", m)
	}
	if got := s.Linux.Resources.Devices; len(got) != 1 || got[0].Allow {
		t.Errorf("devices cgroup: %+v, want deny all (the runtime adds the defaults)", got)
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("devices: %+v", s.Linux.Devices)
	}
	if s.Process.NoNewPrivileges {
		t.Error("no_new_privs on by default (Docker leaves it off)")
	}
	if s.Process.Rlimits != nil || s.Process.OOMScoreAdj != nil {
		t.Errorf("rlimits %v, oomScoreAdj %v: want none", s.Process.Rlimits, s.Process.OOMScoreAdj)
	}
	if s.Root.Path != in.Rootfs || s.Root.Readonly {
		t.Errorf("root: %+v", s.Root)
	}
	if s.Hostname != testID[:12] {
		t.Errorf("hostname %q", s.Hostname)
	}
	if s.Linux.CgroupsPath != "/berth/"+testID {
		t.Errorf("cgroupsPath %q", s.Linux.CgroupsPath)
	}
	if s.Process.Cwd != "/" || s.Process.Terminal || !reflect.DeepEqual(s.Process.Args, []string{"sh", "-c", "true"}) {
		t.Errorf("process: cwd %q terminal %v args %q", s.Process.Cwd, s.Process.Terminal, s.Process.Args)
	}
	wantEnv := []string{"PATH=/bin", "HOSTNAME=" + testID[:12], "A=1", "HOME=/root"}
	if !reflect.DeepEqual(s.Process.Env, wantEnv) {
		t.Errorf("env %q, want %q", s.Process.Env, wantEnv)
	}
	for _, typ := range []specs.LinuxNamespaceType{specs.MountNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if ns, ok := hasNamespace(s, typ); !ok || ns.Path != "" {
			t.Errorf("namespace %s: %+v %v", typ, ns, ok)
		}
	}
	if ns, ok := hasNamespace(s, specs.NetworkNamespace); !ok || ns.Path != "/run/netns/test" {
		t.Errorf("network namespace: %+v", ns)
	}
	if _, ok := hasNamespace(s, specs.CgroupNamespace); ok != cgroupV2() {
		t.Errorf("cgroup namespace %v on a cgroup v2 host %v", ok, cgroupV2())
	}
	if _, ok := hasNamespace(s, specs.UserNamespace); ok {
		t.Error("user namespace")
	}
	validate(t, s)
}

// validate checks s with the runtime's own validation, as far as it does
// not depend on the test's fake namespace paths.
func validate(t *testing.T, s *specs.Spec) {
	t.Helper()
	c := *s
	linux := *s.Linux
	c.Linux = &linux
	linux.Namespaces = nil
	for _, ns := range s.Linux.Namespaces {
		ns.Path = "" // the tests' paths do not exist
		linux.Namespaces = append(linux.Namespaces, ns)
	}
	if err := oci.Validate(&c); err != nil {
		t.Errorf("oci.Validate: %v", err)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Errorf("marshal: %v", err)
	}
}

func TestSpecPrivileged(t *testing.T) {
	in := specInput(t)
	in.HostConfig.Privileged = true
	in.HostConfig.CapDrop = []string{"chown"} // Docker ignores drops when privileged
	in.HostConfig.SecurityOpt = []string{"seccomp=/x.json"}
	in.SeccompProfile = `{"defaultAction":"SCMP_ACT_ERRNO"}`
	s := buildSpec(t, in)
	if !reflect.DeepEqual(sorted(s.Process.Capabilities.Bounding), hostCapabilities()) {
		t.Errorf("privileged bounding set %v", s.Process.Capabilities.Bounding)
	}
	if s.Linux.Seccomp != nil {
		t.Error("privileged has a seccomp profile")
	}
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("privileged masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, d := range []string{"/sys", "/sys/fs/cgroup"} {
		if m := mountAt(s, d); m == nil || slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rw") {
			t.Errorf("privileged %s: %+v", d, m)
		}
	}
	if got := s.Linux.Resources.Devices; len(got) != 1 || !got[0].Allow || got[0].Access != "rwm" {
		t.Errorf("privileged devices cgroup %+v", got)
	}
	var null bool
	for _, d := range s.Linux.Devices {
		if d.Path == "/dev/null" && d.Type == "c" && d.Major == 1 && d.Minor == 3 {
			null = true
		}
		if strings.HasPrefix(d.Path, "/dev/pts/") || d.Path == "/dev/console" {
			t.Errorf("privileged device %s should be the container's own", d.Path)
		}
	}
	if !null {
		t.Errorf("the host's /dev/null is not among the %d devices", len(s.Linux.Devices))
	}
	validate(t, s)
}

func TestSpecHostDevicesSkipsLinksAndFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/file", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", dir+"/link"); err != nil {
		t.Fatal(err)
	}
	devs, err := hostDevices(context.Background(), dir)
	if err != nil || len(devs) != 0 {
		t.Fatalf("devices %+v, %v", devs, err)
	}
	if _, err := hostDevices(context.Background(), dir+"/missing"); err == nil {
		t.Fatal("a missing /dev is not an error")
	}
}

func TestSpecCapabilities(t *testing.T) {
	docker := seccomp.DockerDefaultCaps()
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(docker), func(c string) bool { return slices.Contains(drop, c) })
	}
	all := hostCapabilities()
	for _, tc := range []struct {
		add, drop []string
		want      []string
	}{
		{nil, nil, docker},
		{[]string{"net_admin"}, nil, append(slices.Clone(docker), "CAP_NET_ADMIN")},
		{[]string{"CAP_SYS_ADMIN", "Sys_Admin"}, nil, append(slices.Clone(docker), "CAP_SYS_ADMIN")},
		{nil, []string{"chown", "CAP_KILL"}, without("CAP_CHOWN", "CAP_KILL")},
		{[]string{"chown"}, []string{"chown"}, docker}, // add wins, as Docker's order
		{nil, []string{"ALL"}, nil},
		{[]string{"NET_BIND_SERVICE"}, []string{"all"}, []string{"CAP_NET_BIND_SERVICE"}},
		{[]string{"ALL"}, nil, all},
		{[]string{"all"}, []string{"SYS_ADMIN"}, slices.DeleteFunc(slices.Clone(all), func(c string) bool { return c == "CAP_SYS_ADMIN" })},
	} {
		in := specInput(t)
		in.HostConfig.CapAdd, in.HostConfig.CapDrop = tc.add, tc.drop
		s := buildSpec(t, in)
		if got := s.Process.Capabilities.Bounding; !reflect.DeepEqual(sorted(got), sorted(tc.want)) {
			t.Errorf("add %v drop %v: %v, want %v", tc.add, tc.drop, got, tc.want)
		}
		if !reflect.DeepEqual(s.Linux.Seccomp, seccomp.DefaultProfileFor(s.Process.Capabilities.Bounding)) {
			t.Errorf("add %v drop %v: seccomp not resolved for the final capabilities", tc.add, tc.drop)
		}
	}
	for _, tc := range []struct{ add, drop []string }{{[]string{"CAP_NOPE"}, nil}, {nil, []string{"fly"}}, {[]string{""}, nil}} {
		in := specInput(t)
		in.HostConfig.CapAdd, in.HostConfig.CapDrop = tc.add, tc.drop
		name := append(tc.add, tc.drop...)[0]
		_, err := BuildSpec(context.Background(), in)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("bad capability %q: %v", name, err)
		}
	}
	// A capability this host withholds cannot be granted: say so now, not
	// as the runtime's bare EPERM at start.
	for _, c := range oci.KnownCapabilities() {
		if slices.Contains(all, c) {
			continue
		}
		in := specInput(t)
		in.HostConfig.CapAdd = []string{c}
		if _, err := BuildSpec(context.Background(), in); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), c) {
			t.Errorf("--cap-add %s outside the bounding set: %v", c, err)
		}
		break
	}
	// CAP_SYS_ADMIN changes the default profile (Docker's includes.caps).
	in := specInput(t)
	in.HostConfig.CapAdd = []string{"SYS_ADMIN"}
	if reflect.DeepEqual(buildSpec(t, in).Linux.Seccomp, seccomp.DefaultProfile()) {
		t.Error("seccomp profile did not follow --cap-add SYS_ADMIN")
	}
}

func TestSpecSecurityOpt(t *testing.T) {
	for _, tc := range []struct {
		opts    []string
		nnp     bool
		seccomp bool
	}{
		{[]string{"no-new-privileges"}, true, true},
		{[]string{"no-new-privileges:true"}, true, true},
		{[]string{"no-new-privileges=true", "no-new-privileges=false"}, false, true},
		{[]string{"seccomp=unconfined"}, false, false},
		{[]string{"seccomp:unconfined"}, false, false},
		{[]string{"seccomp=builtin"}, false, true},
	} {
		in := specInput(t)
		in.HostConfig.SecurityOpt = tc.opts
		s := buildSpec(t, in)
		if s.Process.NoNewPrivileges != tc.nnp || (s.Linux.Seccomp != nil) != tc.seccomp {
			t.Errorf("%q: nnp %v seccomp %v", tc.opts, s.Process.NoNewPrivileges, s.Linux.Seccomp != nil)
		}
	}
	for _, o := range []string{"apparmor=unconfined", "no-new-privileges=maybe", "seccomp=", "label:disable", "bogus"} {
		in := specInput(t)
		in.HostConfig.SecurityOpt = []string{o}
		_, err := BuildSpec(context.Background(), in)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), fmt.Sprintf("%q", o)) {
			t.Errorf("%q: %v", o, err)
		}
	}
	in := specInput(t)
	in.HostConfig.SecurityOpt = []string{"seccomp=/etc/profile.json"}
	if _, err := BuildSpec(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "/etc/profile.json") {
		t.Errorf("seccomp=FILE without content: %v", err)
	}
}

func TestSpecSeccompCustomProfile(t *testing.T) {
	data, err := os.ReadFile("../seccomp/moby-default.json")
	if err != nil {
		t.Fatal(err)
	}
	in := specInput(t)
	in.HostConfig.SecurityOpt = []string{"seccomp=moby-default.json"}
	in.SeccompProfile = string(data)
	s := buildSpec(t, in)
	// Docker's default profile in Docker's format resolves to exactly what
	// the built-in resolution gives.
	if want := seccomp.DefaultProfileFor(s.Process.Capabilities.Bounding); !reflect.DeepEqual(s.Linux.Seccomp, want) {
		got, _ := json.Marshal(s.Linux.Seccomp)
		w, _ := json.Marshal(want)
		t.Errorf("moby-default.json resolved differently:\n got %.400s\nwant %.400s", got, w)
	}
	in.HostConfig.CapAdd = []string{"SYS_ADMIN"}
	s = buildSpec(t, in)
	if want := seccomp.DefaultProfileFor(s.Process.Capabilities.Bounding); !reflect.DeepEqual(s.Linux.Seccomp, want) {
		t.Error("moby-default.json with SYS_ADMIN resolved differently from the built-in profile")
	}
}

func TestSpecSeccompParse(t *testing.T) {
	caps := []string{"CAP_CHOWN"}
	prof := `{
	  "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
	  "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
	              {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
	  "syscalls": [
	    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
	    {"name": "chown", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_CHOWN"]}},
	    {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
	    {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
	    {"names": ["s390_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
	    {"names": ["new_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.8"}},
	    {"names": ["old_call"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.8"}},
	    {"names": ["nochown"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}},
	    {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}], "comment": "x"}
	  ]
	}`
	got, err := parseDockerSeccomp([]byte(prof), caps, "amd64", "6.1.0-13-amd64")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range got.Syscalls {
		names = append(names, sc.Names...)
	}
	want := []string{"read", "write", "chown", "arch_prctl", "new_call", "personality"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("syscalls %v, want %v", names, want)
	}
	if !reflect.DeepEqual(got.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
		t.Errorf("architectures %v", got.Architectures)
	}
	if got.DefaultErrnoRet == nil || *got.DefaultErrnoRet != 1 || got.Syscalls[4].Args[0].Value != 8 {
		t.Errorf("errnoRet/args lost: %+v", got)
	}
	old, err := parseDockerSeccomp([]byte(prof), caps, "arm64", "4.19")
	if err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, sc := range old.Syscalls {
		names = append(names, sc.Names...)
	}
	if !reflect.DeepEqual(names, []string{"read", "write", "chown", "old_call", "personality"}) || !reflect.DeepEqual(old.Architectures, []specs.Arch{specs.ArchAARCH64, specs.ArchARM}) {
		t.Errorf("arm64 on 4.19: %v %v", names, old.Architectures)
	}

	for _, tc := range []struct{ prof, want string }{
		{`{`, "unexpected end"},
		{`[]`, "cannot unmarshal"},
		{`{}`, "defaultAction: missing"},
		{`{"defaultAction":"SCMP_ACT_MAYBE"}`, `unknown action "SCMP_ACT_MAYBE"`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86"}]}`, "both 'architectures' and 'archMap'"},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}`, "syscalls[0]: use either 'name' or 'names'"},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":[],"action":"SCMP_ACT_ALLOW"}]}`, "syscalls[0].names: missing"},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_X"}]}`, "syscalls[0].action"},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}`, "syscalls[0].args[0].index"},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"EQ"}]}]}`, "syscalls[0].args[0].op"},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"five"}}]}`, "syscalls[0].includes: minKernel"},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW"}]}` + strings.Repeat(" ", maxSeccompProfile), "more than"},
	} {
		_, err := parseDockerSeccomp([]byte(tc.prof), caps, "amd64", "6.1")
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.80s: %v, want %q", tc.prof, err, tc.want)
		}
	}
}

func FuzzSpecSeccompProfile(f *testing.F) {
	f.Add(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_CHOWN"],"minKernel":"4.8"}}]}`)
	f.Add(`{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],"syscalls":[{"name":"x","action":"SCMP_ACT_ERRNO","errnoRet":1,"args":[{"index":1,"value":2,"valueTwo":3,"op":"SCMP_CMP_MASKED_EQ"}],"excludes":{"arches":["amd64"]}}]}`)
	f.Add(`{"defaultAction":""}`)
	f.Fuzz(func(t *testing.T, data string) {
		p, err := parseDockerSeccomp([]byte(data), seccomp.DockerDefaultCaps(), runtime.GOARCH, "6.1")
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error without ErrInvalidArgument: %v", err)
			}
			return
		}
		if p.DefaultAction == "" {
			t.Fatal("accepted a profile without defaultAction")
		}
		for _, sc := range p.Syscalls {
			if len(sc.Names) == 0 || !slices.Contains(seccompActions, sc.Action) {
				t.Fatalf("accepted rule %+v", sc)
			}
		}
	})
}

func TestSpecUser(t *testing.T) {
	in := specInput(t)
	in.Config.User = "app"
	s := buildSpec(t, in)
	if u := s.Process.User; u.UID != 1000 || u.GID != 1000 || !reflect.DeepEqual(u.AdditionalGids, []uint32{29, 44}) {
		t.Errorf("user %+v", u)
	}
	if !slices.Contains(s.Process.Env, "HOME=/home/app") {
		t.Errorf("env %q has no HOME of app", s.Process.Env)
	}
	in.Config.Env = append(in.Config.Env, "HOME=/elsewhere")
	if s := buildSpec(t, in); !slices.Contains(s.Process.Env, "HOME=/elsewhere") || slices.Contains(s.Process.Env, "HOME=/home/app") {
		t.Errorf("env %q: the user's HOME was replaced", s.Process.Env)
	}
	in.Config.User = "ghost"
	_, err := BuildSpec(context.Background(), in)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "unable to find user ghost: no matching entries in passwd file") {
		t.Errorf("unknown user: %v", err)
	}
}

func TestSpecProcess(t *testing.T) {
	in := specInput(t)
	in.Config.Tty = true
	in.Config.WorkingDir = "/srv"
	in.Config.Entrypoint = []string{"/entry"}
	in.Config.Env = []string{"PATH=/bin", "HOSTNAME=mine"}
	yes := true
	in.HostConfig.Init = &yes
	in.InitPath = "/usr/bin/tini-static"
	s := buildSpec(t, in)
	if want := []string{"/sbin/docker-init", "--", "/entry", "sh", "-c", "true"}; !reflect.DeepEqual(s.Process.Args, want) {
		t.Errorf("args %q, want %q", s.Process.Args, want)
	}
	m := mountAt(s, "/sbin/docker-init")
	if m == nil || m.Source != "/usr/bin/tini-static" || !slices.Contains(m.Options, "ro") || !oci.IsBind(*m) {
		t.Errorf("init mount %+v", m)
	}
	if !s.Process.Terminal || s.Process.Cwd != "/srv" {
		t.Errorf("terminal %v cwd %q", s.Process.Terminal, s.Process.Cwd)
	}
	if want := []string{"PATH=/bin", "HOSTNAME=mine", "TERM=xterm", "HOME=/root"}; !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env %q, want %q", s.Process.Env, want)
	}
	validate(t, s)

	in.InitPath = ""
	if _, err := BuildSpec(context.Background(), in); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("--init without a binary: %v", err)
	}
	in = specInput(t)
	in.Config.Cmd, in.Config.Entrypoint = nil, []string{}
	if _, err := BuildSpec(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no command: %v", err)
	}
	in = specInput(t)
	in.Config.WorkingDir = "rel"
	if _, err := BuildSpec(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("relative workdir: %v", err)
	}
	in = specInput(t)
	in.Rootfs = ""
	if _, err := BuildSpec(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no rootfs: %v", err)
	}
}

func TestSpecNamespaces(t *testing.T) {
	in := specInput(t)
	in.HostConfig.NetworkMode, in.HostConfig.PidMode, in.HostConfig.IpcMode, in.HostConfig.UTSMode = "host", "host", "host", "host"
	in.NetNSPath = ""
	s := buildSpec(t, in)
	for _, typ := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if _, ok := hasNamespace(s, typ); ok {
			t.Errorf("host mode still has a %s namespace", typ)
		}
	}
	if s.Hostname != "" {
		t.Errorf("hostname %q with the host's UTS namespace", s.Hostname)
	}
	if m := mountAt(s, "/dev/shm"); m == nil || m.Source != "/dev/shm" || !oci.IsBind(*m) {
		t.Errorf("--ipc host /dev/shm: %+v", m)
	}
	validate(t, s)

	in = specInput(t)
	in.PIDNSPath, in.IPCNSPath, in.UTSNSPath = "/proc/1/ns/pid", "/proc/1/ns/ipc", "/proc/1/ns/uts"
	in.HostConfig.PidMode = "container:other"
	s = buildSpec(t, in)
	for typ, p := range map[specs.LinuxNamespaceType]string{specs.PIDNamespace: in.PIDNSPath, specs.IPCNamespace: in.IPCNSPath, specs.UTSNamespace: in.UTSNSPath} {
		if ns, ok := hasNamespace(s, typ); !ok || ns.Path != p {
			t.Errorf("%s: %+v", typ, ns)
		}
	}
	if s.Hostname != "" {
		t.Errorf("hostname %q set in a joined UTS namespace", s.Hostname)
	}

	in = specInput(t)
	in.HostConfig.IpcMode = "none"
	if s := buildSpec(t, in); mountAt(s, "/dev/shm") != nil {
		t.Error("--ipc none has /dev/shm")
	}
	in = specInput(t)
	in.HostConfig.NetworkMode = "container:other"
	in.NetNSPath = ""
	if _, err := BuildSpec(context.Background(), in); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "--network container:other") {
		t.Errorf("unresolved container network: %v", err)
	}
}

func TestSpecMounts(t *testing.T) {
	in := specInput(t)
	in.HostConfig.Tmpfs = map[string]string{"/run": "", "/tmp/": "size=64m,exec,mode=1777"}
	in.HostConfig.Mounts = []Mount{{Type: "tmpfs", Target: "/cache", TmpfsSize: 1 << 20, TmpfsMode: 0o700, ReadOnly: true}, {Type: "bind", Source: "/x", Target: "/y"}}
	in.Mounts = []specs.Mount{
		{Destination: "/dev/shm", Type: "bind", Source: "/host/shm", Options: []string{"rbind"}},
		{Destination: "/run/sub", Type: "bind", Source: "/host/sub", Options: []string{"rbind"}},
		{Destination: "/etc/hosts", Type: "bind", Source: "/host/hosts", Options: []string{"rbind", "ro"}},
	}
	in.HostConfig.ReadonlyRootfs = true
	s := buildSpec(t, in)
	if !s.Root.Readonly {
		t.Error("root not read-only")
	}
	if m := mountAt(s, "/run"); m == nil || !reflect.DeepEqual(m.Options, []string{"noexec", "nosuid", "nodev"}) {
		t.Errorf("/run: %+v", m)
	}
	if m := mountAt(s, "/tmp"); m == nil || !reflect.DeepEqual(m.Options, []string{"exec", "nosuid", "nodev", "size=64m", "mode=1777"}) {
		t.Errorf("/tmp: %+v", m)
	}
	if m := mountAt(s, "/cache"); m == nil || !reflect.DeepEqual(m.Options, []string{"noexec", "nosuid", "nodev", "size=1048576", "mode=700", "ro"}) {
		t.Errorf("/cache: %+v", m)
	}
	if mountAt(s, "/y") != nil {
		t.Error("a bind from HostConfig.Mounts was added (the engine resolves those)")
	}
	var shm int
	idx := map[string]int{}
	for i, m := range s.Mounts {
		idx[m.Destination] = i
		if m.Destination == "/dev/shm" {
			shm++
			if m.Source != "/host/shm" {
				t.Errorf("/dev/shm not replaced: %+v", m)
			}
		}
	}
	if shm != 1 {
		t.Errorf("%d /dev/shm mounts", shm)
	}
	if idx["/run"] > idx["/run/sub"] {
		t.Error("/run/sub is mounted before /run")
	}
	validate(t, s)

	// A user /dev replaces the whole default /dev tree.
	in = specInput(t)
	in.Mounts = []specs.Mount{{Destination: "/dev", Type: "bind", Source: "/dev", Options: []string{"rbind"}}}
	for _, m := range buildSpec(t, in).Mounts {
		if strings.HasPrefix(m.Destination, "/dev/") {
			t.Errorf("default %s kept under a user /dev", m.Destination)
		}
	}

	for _, tc := range []struct {
		tmpfs  map[string]string
		mounts []specs.Mount
		want   string
	}{
		{map[string]string{"rel": ""}, nil, `--tmpfs "rel"`},
		{map[string]string{"/": ""}, nil, `--tmpfs "/"`},
		{map[string]string{"/t": "size=lots"}, nil, `"size=lots"`},
		{map[string]string{"/t": "mode=999"}, nil, `"mode=999"`},
		{map[string]string{"/t": "bogus"}, nil, `"bogus"`},
		{map[string]string{"/t": "a=b"}, nil, `"a=b"`},
		{map[string]string{"/t": "mpol=bind:0\x00"}, nil, `"mpol=bind:0\x00"`},
		{map[string]string{"/t": ""}, []specs.Mount{{Destination: "/t/", Source: "/x", Options: []string{"rbind"}}}, "duplicate mount point /t"},
		{nil, []specs.Mount{{Destination: "x", Source: "/x", Options: []string{"rbind"}}}, `"x"`},
		{nil, []specs.Mount{{Destination: "/../", Source: "/x", Options: []string{"rbind"}}}, "cannot be /"},
	} {
		in := specInput(t)
		in.HostConfig.Tmpfs, in.Mounts = tc.tmpfs, tc.mounts
		_, err := BuildSpec(context.Background(), in)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want %q", tc.tmpfs, tc.mounts, err, tc.want)
		}
	}
}

func TestSpecResources(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	host := hostLimits{cpus: 2, onlineCPU: "0-1", swap: true}
	for _, tc := range []struct {
		name string
		in   Resources
		host hostLimits
		want specs.LinuxResources
	}{
		{"none", Resources{}, host, specs.LinuxResources{}},
		{"memory", Resources{Memory: 64 << 20}, host, specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20), Swap: i64(128 << 20)}}},
		{"memory without swap accounting", Resources{Memory: 64 << 20}, hostLimits{cpus: 2}, specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20)}}},
		{"swap unlimited", Resources{Memory: 64 << 20, MemorySwap: -1}, host, specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20), Swap: i64(-1)}}},
		{"swap", Resources{Memory: 64 << 20, MemorySwap: 100 << 20, MemoryReservation: 32 << 20}, host,
			specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20), Swap: i64(100 << 20), Reservation: i64(32 << 20)}}},
		{"cpus", Resources{NanoCPUs: 1_500_000_000}, host, specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(100000), Quota: i64(150000)}}},
		{"shares and cpuset", Resources{CPUShares: 1, CPUSetCPUs: "1"}, host, specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(2), Cpus: "1"}}},
		{"shares clamp", Resources{CPUShares: 1 << 30}, host, specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(262144)}}},
		{"pids", Resources{PidsLimit: i64(100)}, host, specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(100)}}},
		{"pids unlimited", Resources{PidsLimit: i64(-1)}, host, specs.LinuxResources{}},
	} {
		got, err := buildResources(tc.in, tc.host)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(tc.want)
			t.Errorf("%s: %s, want %s", tc.name, g, w)
		}
	}
	for _, tc := range []struct {
		in   Resources
		want string
	}{
		{Resources{Memory: 1 << 20}, "invalid --memory: Minimum memory limit allowed is 6MB"},
		{Resources{Memory: -1}, "invalid --memory"},
		{Resources{MemorySwap: 1 << 30}, "invalid --memory-swap: You should always set the Memory limit"},
		{Resources{Memory: 64 << 20, MemorySwap: 32 << 20}, "invalid --memory-swap: Minimum memoryswap limit"},
		{Resources{Memory: 64 << 20, MemorySwap: -2}, "invalid --memory-swap"},
		{Resources{MemoryReservation: 1 << 20}, "invalid --memory-reservation: Minimum memory reservation allowed is 6MB"},
		{Resources{Memory: 64 << 20, MemoryReservation: 128 << 20}, "invalid --memory-reservation"},
		{Resources{NanoCPUs: 3e9}, "invalid --cpus: range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"},
		{Resources{NanoCPUs: 1e6}, "invalid --cpus"},
		{Resources{NanoCPUs: -1}, "invalid --cpus"},
		{Resources{CPUShares: -5}, "invalid --cpu-shares"},
		{Resources{CPUSetCPUs: "0-3"}, "invalid --cpuset-cpus: Requested CPUs are not available - requested 0-3, available: 0-1"},
		{Resources{CPUSetCPUs: "1-0"}, "invalid --cpuset-cpus"},
		{Resources{CPUSetCPUs: "0,,1"}, "invalid --cpuset-cpus"},
		{Resources{CPUSetCPUs: "0-99999999999"}, "invalid --cpuset-cpus"},
	} {
		_, err := buildResources(tc.in, host)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.in, err, tc.want)
		}
	}
	// Through BuildSpec, with this host's facts.
	in := specInput(t)
	in.HostConfig.Memory = 64 << 20
	in.HostConfig.NanoCPUs = 5e8
	s := buildSpec(t, in)
	if r := s.Linux.Resources; r.Memory == nil || *r.Memory.Limit != 64<<20 || r.CPU == nil || *r.CPU.Quota != 50000 || len(r.Devices) != 1 {
		t.Errorf("resources %+v", r)
	}
	in.HostConfig.NanoCPUs = int64(runtime.NumCPU()+1) * 1e9
	if _, err := BuildSpec(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("too many CPUs: %v", err)
	}
}

func TestSpecSysctls(t *testing.T) {
	in := specInput(t)
	in.HostConfig.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20"}
	s := buildSpec(t, in)
	if !reflect.DeepEqual(s.Linux.Sysctl, in.HostConfig.Sysctls) {
		t.Errorf("sysctl %v", s.Linux.Sysctl)
	}
	validate(t, s)
	for _, tc := range []struct {
		key, netMode, ipcMode, want string
	}{
		{"kernel.hostname", "", "", "not a namespaced sysctl"},
		{"vm.swappiness", "", "", "not a namespaced sysctl"},
		{"net.ipv4.ip_forward", "host", "", "host's network namespace"},
		{"kernel.sem", "", "host", "host's IPC namespace"},
		{"net.ipv4..", "", "", "malformed"},
		{"net.ipv4.conf/../../../kernel/x", "", "", "malformed"},
		{"net.", "", "", "malformed"},
	} {
		in := specInput(t)
		in.HostConfig.Sysctls = map[string]string{tc.key: "1"}
		in.HostConfig.NetworkMode, in.HostConfig.IpcMode = tc.netMode, tc.ipcMode
		if tc.netMode == "host" {
			in.NetNSPath = ""
		}
		_, err := BuildSpec(context.Background(), in)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v, want %q", tc.key, err, tc.want)
		}
	}
}

func TestMergeImageConfig(t *testing.T) {
	img := image.RuntimeConfig{
		User: "app", Env: []string{"PATH=/usr/bin", "A=img", "B=img"}, WorkingDir: "/app",
		Entrypoint: []string{"/entry"}, Cmd: []string{"serve"}, ExposedPorts: []string{"80/tcp"},
		Volumes: []string{"/data"}, StopSignal: "SIGQUIT", Labels: map[string]string{"x": "img", "y": "img"},
	}
	noEntry := img
	noEntry.Entrypoint = nil
	for _, tc := range []struct {
		name             string
		img              image.RuntimeConfig
		entrypoint, cmd  []string
		wantEntry, wantC []string
	}{
		{"image's both", img, nil, nil, []string{"/entry"}, []string{"serve"}},
		{"user cmd", img, nil, []string{"debug"}, []string{"/entry"}, []string{"debug"}},
		{"user entrypoint drops image cmd", img, []string{"/bin/sh"}, nil, []string{"/bin/sh"}, nil},
		{"user both", img, []string{"/bin/sh"}, []string{"-c", "x"}, []string{"/bin/sh"}, []string{"-c", "x"}},
		{"cleared entrypoint with cmd", img, []string{}, []string{"ls"}, []string{}, []string{"ls"}},
		{"docker's [\"\"] entrypoint", img, []string{""}, []string{"ls"}, []string{}, []string{"ls"}},
		{"empty user cmd keeps none", noEntry, nil, []string{}, nil, []string{}},
		{"no image entrypoint", noEntry, nil, nil, nil, []string{"serve"}},
	} {
		c := Config{Entrypoint: tc.entrypoint, Cmd: tc.cmd}
		got, err := MergeImageConfig(c, tc.img)
		if tc.name == "empty user cmd keeps none" {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "no command specified") {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(got.Entrypoint) != len(tc.wantEntry) || !slices.Equal(got.Entrypoint, tc.wantEntry) || !slices.Equal(got.Cmd, tc.wantC) {
			t.Errorf("%s: entrypoint %q cmd %q, want %q %q", tc.name, got.Entrypoint, got.Cmd, tc.wantEntry, tc.wantC)
		}
	}
	for _, tc := range []struct{ entrypoint, cmd []string }{{[]string{}, nil}, {[]string{""}, nil}} {
		if _, err := MergeImageConfig(Config{Entrypoint: tc.entrypoint, Cmd: tc.cmd}, img); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("entrypoint %q cmd %q: %v", tc.entrypoint, tc.cmd, err)
		}
	}

	c := Config{
		Env: []string{"B=user", "C=user", "A"}, User: "", WorkingDir: "/w",
		Labels: map[string]string{"y": "user", "z": "user"}, ExposedPorts: map[string]struct{}{"443/tcp": {}},
	}
	got, err := MergeImageConfig(c, img)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PATH=/usr/bin", "B=user", "C=user"}; !reflect.DeepEqual(got.Env, want) {
		t.Errorf("env %q, want %q", got.Env, want)
	}
	if got.User != "app" || got.WorkingDir != "/w" || got.StopSignal != "SIGQUIT" {
		t.Errorf("user %q workdir %q stop signal %q", got.User, got.WorkingDir, got.StopSignal)
	}
	if want := map[string]string{"x": "img", "y": "user", "z": "user"}; !reflect.DeepEqual(got.Labels, want) {
		t.Errorf("labels %v", got.Labels)
	}
	if _, ok := got.ExposedPorts["80/tcp"]; !ok || len(got.ExposedPorts) != 2 {
		t.Errorf("ports %v", got.ExposedPorts)
	}
	if _, ok := got.Volumes["/data"]; !ok || len(got.Volumes) != 1 {
		t.Errorf("volumes %v", got.Volumes)
	}
	if len(c.ExposedPorts) != 1 {
		t.Error("MergeImageConfig modified the caller's map")
	}
}

// TestSpecRunsInRuntimes runs a built spec with the real runtimes (runc,
// crun, and berth-runtime when $BERTH_RUNTIME names it) and checks, from
// inside the container, what Docker's defaults promise.
func TestSpecRunsInRuntimes(t *testing.T) {
	testutil.RequiresRoot(t)
	bins := map[string]string{"runc": "runc", "crun": "crun"}
	if b := os.Getenv("BERTH_RUNTIME"); b != "" {
		bins["berth-runtime"] = b
	}
	for name, bin := range bins {
		t.Run(name, func(t *testing.T) {
			bin := testutil.RequiresBinary(t, bin, name)
			if b, _ := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers"); name == "crun" && len(strings.TrimSpace(string(b))) > 0 {
				t.Skip("requires a host that is not hybrid with controllers on the v2 hierarchy: crun 1.8 refuses that layout")
			}
			bundle := testutil.NewBundle(t)
			rt := testutil.NewRuntime(t, bin)
			id := rt.NewID("spec")
			cg := "/" + id
			t.Cleanup(func() { removeTestCgroup(t, id) })
			yes := true
			limit := int64(64)
			in := SpecInput{
				ID: id,
				Config: Config{
					Hostname: "spectest", User: "user", WorkingDir: "/tmp", Env: []string{"PATH=/bin", "X=1"},
					Cmd: []string{"sh", "-c", `id; grep -E '^(CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; hostname; echo "H=$HOSTNAME HOME=$HOME X=$X"; pwd; cat /proc/1/cmdline | tr '\0' ' '; echo; grep -E ' /(tmp|dev/shm|sys) ' /proc/self/mounts; cat /proc/sys/net/ipv4/ip_forward; touch /rootfs-write 2>&1 || echo ro-root`},
				},
				HostConfig: HostConfig{
					NetworkMode: "none", Init: &yes, ReadonlyRootfs: true,
					Tmpfs:   map[string]string{"/tmp": "size=1m,mode=1777"},
					Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
					Resources: Resources{
						Memory: 64 << 20, NanoCPUs: 5e8, PidsLimit: &limit,
					},
				},
				Rootfs:      bundle.Rootfs,
				CgroupsPath: cg,
				InitPath:    testutil.RequiresBinary(t, "/usr/bin/tini-static", "tini"),
			}
			s, err := BuildSpec(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			s.Process.Terminal = false
			if name == "crun" {
				// Debian's crun 1.8 refuses any ociVersion but 1.0.x;
				// the fields used here are all 1.0's.
				s.Version = "1.0.2-dev"
			}
			bundle.Spec = s
			bundle.Save(t)
			rt.Run(id, bundle.Dir).OK(t)
			out, errOut := rt.Output(id)
			t.Logf("container output:\n%s%s", out, errOut)
			for _, want := range []string{
				"uid=1000(user) gid=1000(user)",
				"CapBnd:\t00000000a80425fb", // Docker's 14
				"Seccomp:\t2",
				"NoNewPrivs:\t0",
				"spectest\nH=spectest HOME=/home/user X=1\n/tmp\n",
				"/sbin/docker-init -- sh -c",
				"tmpfs /tmp tmpfs rw,nosuid,nodev,noexec",
				"shm /dev/shm tmpfs rw,nosuid,nodev,noexec",
				"sysfs /sys sysfs ro,",
				"\n1\n",
				"ro-root",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("container output lacks %q", want)
				}
			}
		})
	}
}

// TestSpecPrivilegedRuns runs a --privileged spec with runc: every
// capability, no filter, writable /sys and the host's devices.
func TestSpecPrivilegedRuns(t *testing.T) {
	testutil.RequiresRoot(t)
	bin := testutil.RequiresBinary(t, "runc", "runc")
	bundle := testutil.NewBundle(t)
	rt := testutil.NewRuntime(t, bin)
	id := rt.NewID("priv")
	t.Cleanup(func() { removeTestCgroup(t, id) })
	in := SpecInput{
		ID: id,
		Config: Config{
			Hostname: "priv", Env: []string{"PATH=/bin"},
			Cmd: []string{"sh", "-c", `grep -E '^(CapBnd|Seccomp):' /proc/self/status; grep -E ' /sys ' /proc/self/mounts; test -c /dev/null && echo has-null`},
		},
		HostConfig:  HostConfig{NetworkMode: "none", Privileged: true},
		Rootfs:      bundle.Rootfs,
		CgroupsPath: "/" + id,
	}
	s, err := BuildSpec(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	s.Process.Terminal = false
	bundle.Spec = s
	bundle.Save(t)
	rt.Run(id, bundle.Dir).OK(t)
	out, errOut := rt.Output(id)
	t.Logf("container output:\n%s%s", out, errOut)
	for _, want := range []string{"Seccomp:\t0", "sysfs /sys sysfs rw,", "has-null"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output lacks %q", want)
		}
	}
	if strings.Contains(out, "CapBnd:\t00000000a80425fb") {
		t.Error("privileged container has Docker's default bounding set")
	}
}

// removeTestCgroup removes what is left of a test container's cgroup (a
// runtime removes its own; this covers a failed run).
func removeTestCgroup(t *testing.T, name string) {
	for _, dir := range testutil.FindCgroups(name) {
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove cgroup %s: %v", dir, err)
		}
	}
}

func FuzzSpecCPUList(f *testing.F) {
	for _, s := range []string{"0", "0-3,5", "1-0", "0,,1", "+1", "8191", "0-99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ranges, err := parseCPUList(s)
		if err != nil {
			return
		}
		for _, r := range ranges {
			if r[0] < 0 || r[1] < r[0] || r[1] >= maxCPU {
				t.Fatalf("%q: accepted range %v", s, r)
			}
		}
	})
}

func FuzzSpecTmpfsOptions(f *testing.F) {
	for _, s := range []string{"", "size=64m,exec", "mode=1777,uid=1000", "ro,rw,noexec,exec", "size=50%", "bogus", "size=", "mode=8", "mpol=\x00", "mpol=interleave:0-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, opts string) {
		m, err := tmpfsMount("/t", opts, "--tmpfs")
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("%q: %v", opts, err)
			}
			return
		}
		if _, err := oci.ParseMountOptions(m.Options); err != nil {
			t.Fatalf("%q gave options the runtime refuses: %v", opts, err)
		}
		for _, o := range m.Options {
			if strings.ContainsAny(o, ",\x00") {
				t.Fatalf("%q: option %q", opts, o)
			}
		}
	})
}

func FuzzSpecSecurityOpt(f *testing.F) {
	for _, s := range []string{"no-new-privileges", "no-new-privileges:true", "seccomp=unconfined", "seccomp:/x.json", "apparmor=x", "="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, opt string) {
		so, err := parseSecurityOpts([]string{opt})
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), fmt.Sprintf("%q", opt)) {
				t.Fatalf("%q: error does not name it: %v", opt, err)
			}
			return
		}
		if so.seccomp == "custom" && so.seccompFile == "" {
			t.Fatalf("%q: custom seccomp without a file", opt)
		}
	})
}
