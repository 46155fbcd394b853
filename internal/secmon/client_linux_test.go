package secmon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestAddSeccompDenies(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{Seccomp: &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "ptrace", "write"}, Action: specs.ActAllow},
			{Names: []string{"ptrace"}, Action: specs.ActAllow},
		},
	}}}
	if err := addSeccompDenies(s, []SeccompDeny{{Rule: "r", Syscalls: SyscallsOf(EventPtrace)}}); err != nil {
		t.Fatal(err)
	}
	sc := s.Linux.Seccomp.Syscalls
	if len(sc) != 2 || !slices.Equal(sc[0].Names, []string{"read", "write"}) {
		t.Fatalf("allow rules: %+v", sc)
	}
	last := sc[len(sc)-1]
	if last.Action != specs.ActErrno || *last.ErrnoRet != 1 || !slices.Contains(last.Names, "ptrace") {
		t.Errorf("deny rule %+v", last)
	}
	// Without a filter (--privileged): one that allows all but those.
	s = &specs.Spec{}
	if err := addSeccompDenies(s, []SeccompDeny{{Rule: "r", Syscalls: []string{"mount"}}}); err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp.DefaultAction != specs.ActAllow || len(s.Linux.Seccomp.Syscalls) != 1 {
		t.Errorf("new filter %+v", s.Linux.Seccomp)
	}
}

// Seccomp-only rules: the filter denies, and the agent is registered all
// the same, to write the deny alerts from the refusals it is told of.
func TestPrepareSeccompRules(t *testing.T) {
	rs, err := ParseRules([]byte("rules:\n- name: p\n  event: ptrace\n  condition: 'true'\n  action: deny\n"), "r")
	if err != nil {
		t.Fatal(err)
	}
	s := &specs.Spec{}
	reg := filepath.Join(t.TempDir(), "secmon.json")
	if err := Prepare(Options{AgentBin: "/berth/bin/berth-secmon"}, rs, Registration{Container: Container{ID: "x"}}, reg, s); err != nil {
		t.Fatal(err)
	}
	if s.Linux == nil || s.Linux.Seccomp == nil || !slices.ContainsFunc(s.Linux.Seccomp.Syscalls, func(sc specs.LinuxSyscall) bool {
		return slices.Contains(sc.Names, "ptrace") && sc.Action == specs.ActErrno
	}) {
		t.Errorf("no ptrace deny in the filter: %+v", s.Linux)
	}
	if s.Hooks == nil || len(s.Hooks.CreateRuntime) != 1 {
		t.Errorf("hooks %+v, want the agent's createRuntime hook", s.Hooks)
	}
	if _, err := os.Stat(reg); err != nil {
		t.Errorf("registration: %v", err)
	}
	p, _ := rs.Plan(Container{ID: "x"})
	if !slices.Contains(p.SysDeny, "ptrace") {
		t.Errorf("plan reports refusals of %v, want ptrace among them", p.SysDeny)
	}
}

func TestCgroupOfRootRefused(t *testing.T) {
	// pid 1 of this machine sits in the v2 root on this hybrid host,
	// or in init.scope on a systemd one; only the root is refused.
	b, _ := os.ReadFile("/proc/1/cgroup")
	if !strings.Contains(string(b), "0::/\n") {
		t.Skip("pid 1 is not in the v2 root here")
	}
	_, _, err := CgroupOf(1)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("got %v", err)
	}
}

func TestContainerRules(t *testing.T) {
	root := t.TempDir()
	if rs, err := ContainerRules(root, nil, nil); rs != nil || err != nil {
		t.Fatalf("no rules: %v %v", rs, err)
	}
	os.WriteFile(GlobalRulesPath(root), []byte("rules:\n- name: g\n  event: exec\n  condition: exec.drift\n  action: kill\n"), 0o600)
	opt := filepath.Join(root, "c.yaml")
	os.WriteFile(opt, []byte("rules:\n- name: c\n  event: connect\n  condition: connect.port == 25\n  action: deny\n"), 0o600)
	rs, err := ContainerRules(root, []string{"no-new-privileges", "monitor=" + opt},
		map[string]string{AnnotationRules: "rules:\n- name: a\n  event: exec\n  condition: 'true'\n  action: alert\n"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rs.Rules {
		names = append(names, r.Source+":"+r.Name)
	}
	if !slices.Equal(names, []string{GlobalRulesPath(root) + ":g", opt + ":c", AnnotationRules + ":a"}) {
		t.Errorf("rules %v", names)
	}
	_, err = ContainerRules(root, []string{"monitor=/nonexistent.yaml"}, nil)
	if err == nil || !strings.Contains(err.Error(), "monitor=/nonexistent.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestReadAlerts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "alerts.jsonl")
	var got []string
	collect := func(l []byte) error { got = append(got, string(l)); return nil }
	if err := ReadAlerts(context.Background(), p, false, collect); err != nil || len(got) != 0 {
		t.Fatalf("missing log: %v %v", got, err)
	}
	long := strings.Repeat("x", 100<<10)
	os.WriteFile(p, []byte("{\"a\":1}\n"+long+"\n{\"b\":2}\npartial"), 0o600)
	if err := ReadAlerts(context.Background(), p, false, collect); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != `{"a":1}` || got[1] != long || got[2] != `{"b":2}` {
		t.Errorf("lines: %d %.20q", len(got), got)
	}
}

// Without no-new-privileges the runtime switches to the container's user
// under the filter: a deny of that switch is refused with what to do.
func TestSeccompDenyOfInitCalls(t *testing.T) {
	p := planOf(t, noRootRule)
	root := func(nnp bool) *specs.Spec {
		return &specs.Spec{Process: &specs.Process{NoNewPrivileges: nnp}}
	}
	err := addSeccompDenies(root(false), p.Seccomp)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), `"no-setuid-root" denies setresuid(0, 0, 0)`) || !strings.Contains(err.Error(), "no-new-privileges") {
		t.Errorf("root without no-new-privileges: %v", err)
	}
	if err := addSeccompDenies(root(true), p.Seccomp); err != nil {
		t.Errorf("root with no-new-privileges: %v", err)
	}
	user := &specs.Spec{Process: &specs.Process{User: specs.User{UID: 1000, GID: 1000}}}
	if err := addSeccompDenies(user, p.Seccomp); err != nil {
		t.Errorf("user 1000: %v", err)
	}
	// capset is in the setuid kind: denying it stops every start.
	all := planOf(t, "rules:\n- name: all\n  event: setuid\n  condition: 'true'\n  action: deny\n")
	if err := addSeccompDenies(&specs.Spec{Process: &specs.Process{User: specs.User{UID: 1000}}}, all.Seccomp); err == nil || !strings.Contains(err.Error(), "denies setresgid(0, 0, 0)") {
		t.Errorf("the whole kind: %v", err)
	}
}
