package secmon

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/errdefs"
)

const noRootRule = `rules:
- name: no-setuid-root
  event: setuid
  condition: syscall.name in ["setuid", "setreuid", "setresuid"] && (syscall.args[0] == 0 || syscall.args[1] == 0 || syscall.args[2] == 0)
  action: deny
`

func planOf(t *testing.T, rules string) *Plan {
	t.Helper()
	rs, err := ParseRules([]byte(rules), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := rs.Plan(Container{ID: "c", Labels: map[string]string{"tier": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func lowEq(i uint, v uint64) specs.LinuxSeccompArg {
	return specs.LinuxSeccompArg{Index: i, Op: specs.OpMaskedEqual, Value: math.MaxUint32, ValueTwo: v}
}

// "No setuid to root": each call gets one rule per argument it has (a
// comparison on an argument the call lacks is false); the uid is compared
// on its low 32 bits, all the kernel reads of it.
func TestSeccompDenyNoRoot(t *testing.T) {
	p := planOf(t, noRootRule)
	if len(p.Seccomp) != 1 {
		t.Fatalf("seccomp %+v", p.Seccomp)
	}
	d := p.Seccomp[0]
	if d.Rule != "no-setuid-root" || !slices.Equal(d.Syscalls, []string{"setuid", "setreuid", "setresuid"}) {
		t.Fatalf("deny %+v", d)
	}
	want := map[string][][]specs.LinuxSeccompArg{
		"setuid":    {{lowEq(0, 0)}},
		"setreuid":  {{lowEq(0, 0)}, {lowEq(1, 0)}},
		"setresuid": {{lowEq(0, 0)}, {lowEq(1, 0)}, {lowEq(2, 0)}},
	}
	for call, rules := range want {
		if fmt.Sprint(d.When[call]) != fmt.Sprint(rules) {
			t.Errorf("%s: %+v, want %+v", call, d.When[call], rules)
		}
	}
}

func TestSeccompDenyForms(t *testing.T) {
	for _, c := range []struct {
		cond  string
		calls string // the calls denied, with their rules
	}{
		// Container fields fold to constants.
		{`"tier" in container.labels`, "setns unshare"},
		{`"db" in container.labels && syscall.args[0] == 1`, ""},
		{`syscall.name == "unshare" && syscall.args[0] == 268435456`, "unshare[[{0 18446744073709551615 268435456 SCMP_CMP_MASKED_EQ}]]"},
		{`syscall.name != "unshare"`, "setns"},
		// A 32-bit argument: its low half in aligned blocks.
		{`syscall.name == "setns" && syscall.args[1] != 5`, "setns[[{1 4294967292 0 SCMP_CMP_MASKED_EQ}] [{1 4294967295 4 SCMP_CMP_MASKED_EQ}] [{1 4294967294 6 SCMP_CMP_MASKED_EQ}] [{1 4294967288 8 SCMP_CMP_MASKED_EQ}] [{1 4294967280 16 SCMP_CMP_MASKED_EQ}] [{1 4294967264 32 SCMP_CMP_MASKED_EQ}] [{1 4294967232 64 SCMP_CMP_MASKED_EQ}] [{1 4294967168 128 SCMP_CMP_MASKED_EQ}] [{1 4294967040 256 SCMP_CMP_MASKED_EQ}] [{1 4294966784 512 SCMP_CMP_MASKED_EQ}] [{1 4294966272 1024 SCMP_CMP_MASKED_EQ}] [{1 4294965248 2048 SCMP_CMP_MASKED_EQ}] [{1 4294963200 4096 SCMP_CMP_MASKED_EQ}] [{1 4294959104 8192 SCMP_CMP_MASKED_EQ}] [{1 4294950912 16384 SCMP_CMP_MASKED_EQ}] [{1 4294934528 32768 SCMP_CMP_MASKED_EQ}] [{1 4294901760 65536 SCMP_CMP_MASKED_EQ}] [{1 4294836224 131072 SCMP_CMP_MASKED_EQ}] [{1 4294705152 262144 SCMP_CMP_MASKED_EQ}] [{1 4294443008 524288 SCMP_CMP_MASKED_EQ}] [{1 4293918720 1048576 SCMP_CMP_MASKED_EQ}] [{1 4292870144 2097152 SCMP_CMP_MASKED_EQ}] [{1 4290772992 4194304 SCMP_CMP_MASKED_EQ}] [{1 4286578688 8388608 SCMP_CMP_MASKED_EQ}] [{1 4278190080 16777216 SCMP_CMP_MASKED_EQ}] [{1 4261412864 33554432 SCMP_CMP_MASKED_EQ}] [{1 4227858432 67108864 SCMP_CMP_MASKED_EQ}] [{1 4160749568 134217728 SCMP_CMP_MASKED_EQ}] [{1 4026531840 268435456 SCMP_CMP_MASKED_EQ}] [{1 3758096384 536870912 SCMP_CMP_MASKED_EQ}] [{1 3221225472 1073741824 SCMP_CMP_MASKED_EQ}] [{1 2147483648 2147483648 SCMP_CMP_MASKED_EQ}]]"},
		{`syscall.name == "setns" && syscall.args[1] >= 4 && syscall.args[1] < 8`, "setns[[{1 4294967292 4 SCMP_CMP_MASKED_EQ}]]"},
		{`syscall.name == "setns" && !(syscall.args[0] > 1)`, "setns[[{0 4294967294 0 SCMP_CMP_MASKED_EQ}]]"},
		// -1 on a 32-bit argument is its all-ones.
		{`syscall.name == "setns" && syscall.args[1] == -1`, "setns[[{1 4294967295 4294967295 SCMP_CMP_MASKED_EQ}]]"},
		// A missing argument: the comparison is false, its negation true.
		{`syscall.name == "unshare" && syscall.args[1] == 0`, ""},
		{`syscall.name == "unshare" && !(syscall.args[1] == 0)`, "unshare"},
		{`syscall.args[0] in [1, 2]`, "setns[[{0 4294967295 1 SCMP_CMP_MASKED_EQ}] [{0 4294967295 2 SCMP_CMP_MASKED_EQ}]] unshare[[{0 18446744073709551615 1 SCMP_CMP_MASKED_EQ}] [{0 18446744073709551615 2 SCMP_CMP_MASKED_EQ}]]"},
		{`syscall.name == "unshare" ? syscall.args[0] == 1 : false`, "unshare[[{0 18446744073709551615 1 SCMP_CMP_MASKED_EQ}]]"},
		{`syscall.name == "setns" && (syscall.args[0] == 3 || syscall.args[1] >= 0)`, "setns"},
		// A side the filter cannot check, beside a false one.
		{`syscall.name == "setns" && syscall.args[0] < 3`, "setns[[{0 4294967294 0 SCMP_CMP_MASKED_EQ}] [{0 4294967295 2 SCMP_CMP_MASKED_EQ}]]"},
	} {
		p := planOf(t, "rules:\n- name: r\n  event: namespace\n  condition: '"+c.cond+"'\n  action: deny\n")
		var got []string
		for _, d := range p.Seccomp {
			for _, n := range d.Syscalls {
				if w, ok := d.When[n]; ok {
					got = append(got, fmt.Sprintf("%s%v", n, w))
				} else {
					got = append(got, n)
				}
			}
		}
		if s := strings.Join(got, " "); s != c.calls {
			t.Errorf("%s:\n got %s\nwant %s", c.cond, s, c.calls)
		}
	}
}

func TestSeccompDenyRefusals(t *testing.T) {
	for _, c := range []struct{ cond, want string }{
		{`process.uid == 0`, "only container fields"},
		{`syscall.args[4] == 0`, "syscall.args[3] can be checked, not index 4"},
		{`syscall.args[0] == syscall.args[1]`, "compares two values of the call"},
		{`syscall.args.size() > 1`, "checks only container fields, syscall.name"},
		{`syscall.name.startsWith("set")`, "checks only"},
		{`syscall.args[0] < -1`, "negative constant"},
		{`syscall.args[0] == 4294967296`, "above 32 bits"},
		{`syscall.name > "a"`, "syscall.name takes == or !="},
		// capset's arguments are 64 bits: == only.
		{`syscall.args[0] < 5`, "for capset: syscall.args[0] < 5: capset's argument 0 is 64 bits wide"},
		{`syscall.name == "capset" && syscall.args[0] != 5`, "not negated"},
		{`syscall.name == "capset" && !(syscall.args[0] < 0)`, "with == (or in) only"},
		// A 32-bit != takes 32 masked comparisons, three of them 32^3.
		{`syscall.name == "setresuid" && syscall.args[0] != 0 && syscall.args[1] != 0 && syscall.args[2] != 0`, "setresuid would need more than 64 seccomp rules"},
	} {
		rules := "rules:\n- name: r\n  event: setuid\n  condition: '" + c.cond + "'\n  action: deny\n"
		_, err := ParseRules([]byte(rules), "r.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `rule "r"`) || !errors.Is(err, errdefs.ErrNotImplemented) {
			t.Errorf("%s: got %v, want %q", c.cond, err, c.want)
		}
	}
}

// prefixBlocks covers exactly [lo, hi] with aligned blocks.
func TestPrefixBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(lo, hi uint64) {
		blocks := prefixBlocks(lo, hi)
		next := lo
		for i, b := range blocks {
			if b.base != next || b.size == 0 || b.base&(b.size-1) != 0 {
				t.Fatalf("[%#x, %#x]: block %d %+v", lo, hi, i, b)
			}
			next = b.base + b.size
		}
		if last := blocks[len(blocks)-1]; last.base+(last.size-1) != hi {
			t.Fatalf("[%#x, %#x]: ends at %#x", lo, hi, last.base+last.size-1)
		}
		if len(blocks) > 2*64 {
			t.Fatalf("[%#x, %#x]: %d blocks", lo, hi, len(blocks))
		}
	}
	check(0, math.MaxUint32)
	check(1, math.MaxUint32)
	check(0, math.MaxUint64-1)
	check(1, math.MaxUint64)
	for range 2000 {
		a, b := r.Uint64()>>r.IntN(64), r.Uint64()>>r.IntN(64)
		check(min(a, b), max(a, b))
	}
}

func TestMergeSeccompDenies(t *testing.T) {
	eperm, enosys := uint(1), uint(38)
	cond := [][]specs.LinuxSeccompArg{{lowEq(0, 0)}}
	denies := []SeccompDeny{
		{Rule: "root", Syscalls: []string{"setuid", "ptrace"}, When: map[string][][]specs.LinuxSeccompArg{"setuid": cond}},
	}
	// Docker's shape: default EPERM, the call allowed.
	sc := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &eperm, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"read", "setuid", "ptrace", "setuid32"}, Action: specs.ActAllow},
	}}
	if err := mergeSeccompDenies(sc, denies); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(describe(sc.Syscalls))
	want := "[read:SCMP_ACT_ALLOW setuid:SCMP_ACT_ERRNO(13)[{0 4294967295 0 SCMP_CMP_MASKED_EQ}] setuid:SCMP_ACT_ALLOW[{0 18446744073709551615 0 SCMP_CMP_LE}] setuid32:SCMP_ACT_ERRNO(13)[{0 4294967295 0 SCMP_CMP_MASKED_EQ}] setuid32:SCMP_ACT_ALLOW[{0 18446744073709551615 0 SCMP_CMP_LE}] ptrace:SCMP_ACT_ERRNO(1)]"
	if got != want {
		t.Errorf("docker-like:\n got %s\nwant %s", got, want)
	}
	// No profile: allow by default, the deny alone.
	sc = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	mergeSeccompDenies(sc, denies)
	if got, want := fmt.Sprint(describe(sc.Syscalls)), "[setuid:SCMP_ACT_ERRNO(1)[{0 4294967295 0 SCMP_CMP_MASKED_EQ}] setuid32:SCMP_ACT_ERRNO(1)[{0 4294967295 0 SCMP_CMP_MASKED_EQ}] ptrace:SCMP_ACT_ERRNO(1)]"; got != want {
		t.Errorf("no profile:\n got %s\nwant %s", got, want)
	}
	// Default ENOSYS, the call logged: EPERM, and logged otherwise.
	sc = &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &enosys, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"setuid"}, Action: specs.ActLog},
		{Names: []string{"setuid"}, Action: specs.ActErrno, ErrnoRet: &enosys, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: 1}}},
	}}
	mergeSeccompDenies(sc, denies)
	if got, want := fmt.Sprint(describe(sc.Syscalls)), "[setuid:SCMP_ACT_ERRNO(1)[{0 4294967295 0 SCMP_CMP_MASKED_EQ}] setuid:SCMP_ACT_LOG[{0 18446744073709551615 0 SCMP_CMP_LE}] ptrace:SCMP_ACT_ERRNO(1)]"; got != want {
		t.Errorf("log:\n got %s\nwant %s", got, want)
	}
	// Already refused whatever its arguments: left as it was.
	sc = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"setuid"}, Action: specs.ActKillProcess}}}
	mergeSeccompDenies(sc, denies)
	if got, want := fmt.Sprint(describe(sc.Syscalls)), "[setuid:SCMP_ACT_KILL_PROCESS setuid32:SCMP_ACT_ERRNO(1)[{0 4294967295 0 SCMP_CMP_MASKED_EQ}] ptrace:SCMP_ACT_ERRNO(1)]"; got != want {
		t.Errorf("killed:\n got %s\nwant %s", got, want)
	}
	// Conditional rules of the profile's own: refused, not guessed.
	sc = &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"setuid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpLessThan, Value: 5000}}},
	}}
	if err := mergeSeccompDenies(sc, denies); err == nil || !strings.Contains(err.Error(), `monitor rule "root" denies setuid on its arguments`) {
		t.Errorf("conditional profile rules: %v", err)
	}
	// An unconditional deny of the same call wins over a conditional one.
	sc = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	mergeSeccompDenies(sc, append(denies, SeccompDeny{Rule: "all", Syscalls: []string{"setuid"}}))
	if got, want := fmt.Sprint(describe(sc.Syscalls)), "[setuid,setuid32,ptrace:SCMP_ACT_ERRNO(1)]"; got != want {
		t.Errorf("unconditional:\n got %s\nwant %s", got, want)
	}
}

func describe(rules []specs.LinuxSyscall) []string {
	var out []string
	for _, r := range rules {
		s := strings.Join(r.Names, ",") + ":" + string(r.Action)
		if r.ErrnoRet != nil {
			s += fmt.Sprintf("(%d)", *r.ErrnoRet)
		}
		if len(r.Args) > 0 {
			s += fmt.Sprint(r.Args)
		}
		out = append(out, s)
	}
	return out
}

// FuzzSeccompDeny compiles arbitrary deny conditions: what compiles has
// the shape seccomp takes (at most maxSeccompRules rules a call, each
// argument compared once, only arguments the call has, masked equalities),
// and for the ptrace kind (every call with four arguments) denies exactly
// the calls the rule's CEL matches, on what the kernel reads.
func FuzzSeccompDeny(f *testing.F) {
	f.Add(uint8(0), `syscall.name in ["setuid", "setreuid", "setresuid"] && (syscall.args[0] == 0 || syscall.args[1] == 0 || syscall.args[2] == 0)`)
	f.Add(uint8(1), `syscall.name == "ptrace" && syscall.args[0] in [16, 0x4206]`)
	f.Add(uint8(1), `syscall.name != "ptrace" && !(syscall.args[0] >= 100 && syscall.args[0] < 200)`)
	f.Add(uint8(2), `syscall.name == "setns" ? syscall.args[1] == 0x40000000 : syscall.args[0] == 0x10000000`)
	f.Add(uint8(2), `"tier" in container.labels || syscall.args[1] != -1`)
	kinds := []string{EventSetuid, EventPtrace, EventNamespace, EventMount}
	samples := []uint64{0, 1, 16, 99, 100, 150, 200, 0x4206, 0xffffffff, 1 << 32, 1<<32 | 16, 0xffffffff_ffffffff}
	f.Fuzz(func(t *testing.T, kind uint8, cond string) {
		ev := kinds[int(kind)%len(kinds)]
		q, _ := json.Marshal(cond)
		rs, err := ParseRules([]byte("rules:\n- name: r\n  event: "+ev+"\n  condition: "+string(q)+"\n  action: deny\n"), "fuzz")
		if err != nil {
			return
		}
		p, err := rs.Plan(Container{ID: "x", Labels: map[string]string{"tier": "web"}})
		if err != nil {
			return
		}
		for _, d := range p.Seccomp {
			for call, lists := range d.When {
				widths := argWidths[call]
				if len(lists) == 0 || len(lists) > maxSeccompRules {
					t.Fatalf("%s: %d rules", call, len(lists))
				}
				for _, l := range lists {
					var seen [4]bool
					for _, a := range l {
						if a.Index >= uint(len(widths)) || seen[a.Index] || a.Op != specs.OpMaskedEqual || a.ValueTwo&^a.Value != 0 ||
							(widths[a.Index] == 'w' && a.Value > math.MaxUint32) {
							t.Fatalf("%s: comparison %+v in %+v", call, a, l)
						}
						seen[a.Index] = true
					}
				}
			}
			if ev != EventPtrace {
				continue
			}
			for _, call := range SyscallsOf(ev) {
				for k := range 8 {
					var vals [6]uint64
					view := make([]int64, 4)
					for i, w := range argWidths[call] {
						vals[i] = samples[(k*7+i*5+len(cond))%len(samples)]
						if w == 'w' {
							view[i] = int64(uint32(vals[i]))
						} else {
							vals[i] &= math.MaxInt64
							view[i] = int64(vals[i])
						}
					}
					want, err := rs.Eval(0, Input{Syscall: &SyscallVars{Name: call, Args: view}, Container: Container{ID: "x", Labels: map[string]string{"tier": "web"}}})
					if err != nil {
						continue
					}
					got := false
					if slices.Contains(d.Syscalls, call) {
						lists, conditional := d.When[call]
						got = !conditional
						for _, l := range lists {
							got = got || argsMatch(l, vals)
						}
					}
					if got != want {
						t.Fatalf("%s(%#x): denied %v, CEL says %v", call, vals[:4], got, want)
					}
				}
			}
		}
	})
}
