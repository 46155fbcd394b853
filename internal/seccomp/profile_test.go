package seccomp

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rulesFor returns the rules of p that name syscall.
func rulesFor(p *specs.LinuxSeccomp, syscall string) []specs.LinuxSyscall {
	var out []specs.LinuxSyscall
	for _, sc := range p.Syscalls {
		if slices.Contains(sc.Names, syscall) {
			out = append(out, sc)
		}
	}
	return out
}

var cloneNamespaceFlags = specs.LinuxSeccompArg{Index: 0, Value: 2114060288, Op: specs.OpMaskedEqual}

func TestDefaultProfileForDockerCaps(t *testing.T) {
	p := resolveProfile(DockerDefaultCaps(), "amd64", kernelVersion{6, 1})
	if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != 1 {
		t.Errorf("default = %s %v, want SCMP_ACT_ERRNO 1", p.DefaultAction, p.DefaultErrnoRet)
	}
	if want := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}; !reflect.DeepEqual(p.Architectures, want) {
		t.Errorf("architectures = %v, want %v", p.Architectures, want)
	}
	for _, denied := range []string{"mount", "unshare", "keyctl", "setns", "reboot", "init_module", "bpf"} {
		if r := rulesFor(p, denied); len(r) != 0 {
			t.Errorf("%s has rules %+v, want none (denied by default)", denied, r)
		}
	}
	for _, allowed := range []string{"read", "execve", "chroot", "arch_prctl", "ptrace", "modify_ldt"} {
		if r := rulesFor(p, allowed); len(r) != 1 || r[0].Action != specs.ActAllow || len(r[0].Args) != 0 {
			t.Errorf("%s rules = %+v, want one unconditional allow", allowed, r)
		}
	}
	clone := rulesFor(p, "clone")
	if len(clone) != 1 || !reflect.DeepEqual(clone[0].Args, []specs.LinuxSeccompArg{cloneNamespaceFlags}) {
		t.Errorf("clone rules = %+v, want only the namespace-flags filter", clone)
	}
	clone3 := rulesFor(p, "clone3")
	if len(clone3) != 1 || clone3[0].Action != specs.ActErrno || clone3[0].ErrnoRet == nil || *clone3[0].ErrnoRet != 38 {
		t.Errorf("clone3 rules = %+v, want ERRNO ENOSYS", clone3)
	}
	if len(rulesFor(p, "personality")) != 5 || len(rulesFor(p, "s390_runtime_instr")) != 0 {
		t.Errorf("per-argument personality rules or s390 rules wrong")
	}
}

func TestDefaultProfileForSysAdmin(t *testing.T) {
	// The spec form and the bare name are both accepted.
	for _, admin := range []string{"CAP_SYS_ADMIN", "sys_admin"} {
		p := resolveProfile(append(DockerDefaultCaps(), admin), "arm64", kernelVersion{6, 1})
		if want := []specs.Arch{specs.ArchAARCH64, specs.ArchARM}; !reflect.DeepEqual(p.Architectures, want) {
			t.Errorf("architectures = %v, want %v", p.Architectures, want)
		}
		for _, name := range []string{"mount", "unshare", "setns", "clone", "clone3"} {
			if r := rulesFor(p, name); len(r) != 1 || r[0].Action != specs.ActAllow || len(r[0].Args) != 0 {
				t.Errorf("%s with %s: rules %+v, want one unconditional allow", name, admin, r)
			}
		}
		if len(rulesFor(p, "arch_prctl")) != 0 {
			t.Error("arch_prctl allowed on arm64")
		}
	}
}

func TestDefaultProfileForS390xAndOldKernel(t *testing.T) {
	p := resolveProfile(nil, "s390x", kernelVersion{4, 7})
	clone := rulesFor(p, "clone")
	if len(clone) != 1 || clone[0].Args[0].Index != 1 {
		t.Errorf("s390x clone rules = %+v, want the flags filter on argument 1", clone)
	}
	if len(rulesFor(p, "ptrace")) != 0 {
		t.Error("ptrace allowed on a kernel older than 4.8")
	}
	if len(rulesFor(p, "chroot")) != 0 {
		t.Error("chroot allowed without CAP_SYS_CHROOT")
	}
}

func TestDefaultProfileForReturnsACopy(t *testing.T) {
	p := DefaultProfile()
	p.Syscalls[0].Names[0] = "berth-modified"
	p.Syscalls[2].Args[0].Value = 99
	if q := DefaultProfile(); q.Syscalls[0].Names[0] == "berth-modified" || q.Syscalls[2].Args[0].Value == 99 {
		t.Fatal("DefaultProfile shares memory between calls")
	}
}

// TestDefaultRulesMatchMobyJSON catches a default_rules.go that was not
// regenerated after moby-default.json changed.
func TestDefaultRulesMatchMobyJSON(t *testing.T) {
	raw, err := os.ReadFile("moby-default.json")
	if err != nil {
		t.Fatal(err)
	}
	var moby struct {
		Syscalls []struct {
			Names  []string                 `json:"names"`
			Action specs.LinuxSeccompAction `json:"action"`
			Args   []specs.LinuxSeccompArg  `json:"args"`
		} `json:"syscalls"`
	}
	if err := json.Unmarshal(raw, &moby); err != nil {
		t.Fatal(err)
	}
	if len(moby.Syscalls) != len(profileRules) {
		t.Fatalf("moby-default.json has %d rules, default_rules.go %d: run go generate", len(moby.Syscalls), len(profileRules))
	}
	for i, m := range moby.Syscalls {
		r := profileRules[i]
		if !slices.Equal(m.Names, r.names) || m.Action != r.action || len(m.Args) != len(r.args) {
			t.Errorf("rule %d differs from moby-default.json: run go generate", i)
		}
	}
}

func BenchmarkDefaultProfile(b *testing.B) {
	for b.Loop() {
		DefaultProfile()
	}
}
