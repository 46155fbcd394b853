package secmon

// Deny rules on the system call kinds are carried out by the container's
// seccomp filter. A condition may test syscall.name, the first four
// arguments against constants and the container's fields; for each call
// of the kind it is put in disjunctive normal form over intervals of the
// arguments, and each term becomes OCI seccomp rules (one comparison per
// argument, ANDed, as runc and Berth's runtime read them). Anything else
// is refused when the rules load: a deny is never silently widened or
// narrowed.

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"

	celast "cel.dev/cel-go/common/ast"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
)

// argWidths is, for each call of the system call kinds, the width of its
// first four arguments as the kernel reads them (its SYSCALL_DEFINE
// types): 'w' is 32 bits (int, unsigned int, uid_t, gid_t, pid_t), 'l' 64
// (long, unsigned long, size_t, pointers). Its length is the call's arity,
// up to four: a comparison on an argument the call does not have is false.
var argWidths = map[string]string{
	"ptrace":            "lwll", // long request, long pid (read as a pid_t), addr, data
	"process_vm_readv":  "wlll", // pid_t pid, iovec *, unsigned long, iovec *
	"process_vm_writev": "wlll",
	"mount":             "llll", // dev, dir, type, unsigned long flags
	"umount2":           "lw",   // name, int flags
	"fsmount":           "www",
	"move_mount":        "wlwl",
	"open_tree":         "wlw",
	"fsopen":            "lw",
	"fsconfig":          "wwll",
	"mount_setattr":     "wlwl",
	"init_module":       "lll",
	"finit_module":      "wlw",
	"delete_module":     "lw",
	"bpf":               "wlw", // int cmd, attr, unsigned int size
	"setns":             "ww",
	"unshare":           "l", // unsigned long flags
	"setuid":            "w",
	"setgid":            "w",
	"setfsuid":          "w",
	"setfsgid":          "w",
	"setreuid":          "ww",
	"setregid":          "ww",
	"setresuid":         "www",
	"setresgid":         "www",
	"capset":            "ll",
}

// Limits on what one deny rule may become.
const (
	// maxSeccompTerms bounds the terms of a condition's normal form while
	// it is built, against a condition that grows exponentially.
	maxSeccompTerms = 256
	// maxSeccompRules is the most seccomp rules one call may get from
	// one deny rule: the whole filter must stay under the kernel's 4096
	// BPF instructions.
	maxSeccompRules = 64
)

// interval is a range of an argument's values, both ends included.
type interval struct{ lo, hi uint64 }

// argTerm is a conjunction of one interval per argument; nil is any value.
type argTerm [4]*interval

// dnf is a disjunction of terms: empty is false, one empty term true.
type dnf []argTerm

func dnfConst(b bool) dnf {
	if b {
		return dnf{argTerm{}}
	}
	return nil
}

// isConst says whether f is the constant b.
func isConst(f dnf, b bool) bool {
	if !b {
		return len(f) == 0
	}
	return slices.Contains(f, argTerm{})
}

// and is the normal form of a && b, its terms intersected pairwise.
func (a dnf) and(b dnf) (dnf, error) {
	var out dnf
	for _, x := range a {
	next:
		for _, y := range b {
			var t argTerm
			for i := range t {
				switch {
				case x[i] == nil:
					t[i] = y[i]
				case y[i] == nil:
					t[i] = x[i]
				default:
					lo, hi := max(x[i].lo, y[i].lo), min(x[i].hi, y[i].hi)
					if lo > hi {
						continue next
					}
					t[i] = &interval{lo: lo, hi: hi}
				}
			}
			if len(out) == maxSeccompTerms {
				return nil, fmt.Errorf("the condition has more than %d terms in disjunctive normal form", maxSeccompTerms)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

func (a dnf) or(b dnf) (dnf, error) {
	if len(a)+len(b) > maxSeccompTerms {
		return nil, fmt.Errorf("the condition has more than %d terms in disjunctive normal form", maxSeccompTerms)
	}
	return append(slices.Clip(a), b...), nil
}

// argTop is the largest value of an argument of the width: the kernel
// reads a 32-bit argument as the low half of the register, whatever the
// upper half holds.
func argTop(width byte) uint64 {
	if width == 'w' {
		return math.MaxUint32
	}
	return math.MaxUint64
}

// seccompCompiler compiles one deny condition for one system call.
type seccompCompiler struct {
	kc   *kernelCompiler // CEL helpers: value, unparse
	call string
	// values are the constant subexpressions evaluated so far, by
	// expression id: the condition is compiled once for each call of
	// the kind, and evaluating one takes a CEL compile.
	values map[int64]any
}

// value evaluates a subexpression that does not depend on the call.
func (sc *seccompCompiler) value(e celast.Expr) (any, error) {
	if v, ok := sc.values[e.ID()]; ok {
		return v, nil
	}
	v, err := sc.kc.rs.value(e, sc.kc.ast, sc.kc.vars)
	if err != nil {
		return nil, err
	}
	sc.values[e.ID()] = v
	return v, nil
}

// seccompDeny compiles rule i, a deny rule of a system call kind: nil when
// its condition is false for every call of the kind in this container.
func (rs *RuleSet) seccompDeny(i int, vars map[string]any) (*SeccompDeny, error) {
	r := rs.Rules[i]
	kc := &kernelCompiler{rs: rs, ast: rs.asts[i], vars: vars}
	d := &SeccompDeny{Rule: r.Name}
	values := map[int64]any{}
	for _, call := range SyscallsOf(r.Event) {
		sc := &seccompCompiler{kc: kc, call: call, values: values}
		f, err := sc.compile(rs.asts[i].NativeRep().Expr(), false)
		if err != nil {
			return nil, fmt.Errorf("for %s: %w", call, err)
		}
		if len(f) == 0 {
			continue // never for this call
		}
		d.Syscalls = append(d.Syscalls, call)
		rules, err := seccompArgs(call, f)
		if err != nil {
			return nil, err
		}
		if rules != nil {
			if d.When == nil {
				d.When = map[string][][]specs.LinuxSeccompArg{}
			}
			d.When[call] = rules
		}
	}
	if len(d.Syscalls) == 0 {
		return nil, nil
	}
	return d, nil
}

// seccompArgs turns a call's normal form into the argument lists of its
// seccomp rules (any one list matching, all comparisons of a list
// holding); nil when a term is always true.
func seccompArgs(call string, f dnf) ([][]specs.LinuxSeccompArg, error) {
	widths := argWidths[call]
	var out [][]specs.LinuxSeccompArg
	for _, t := range f {
		rules := [][]specs.LinuxSeccompArg{nil}
		for i, iv := range t {
			if iv == nil {
				continue
			}
			alts := intervalArgs(uint(i), *iv, argTop(widths[i]))
			if alts == nil {
				continue // the whole range
			}
			var next [][]specs.LinuxSeccompArg
			for _, r := range rules {
				for _, a := range alts {
					next = append(next, append(slices.Clip(r), a))
				}
			}
			rules = next
			if len(out)+len(rules) > maxSeccompRules {
				return nil, fmt.Errorf("%s would need more than %d seccomp rules (each compares each argument once)", call, maxSeccompRules)
			}
		}
		for _, r := range rules {
			if len(r) == 0 {
				return nil, nil // always
			}
		}
		out = append(out, rules...)
	}
	return out, nil
}

// intervalArgs is the one-comparison alternatives whose union is exactly
// the interval (nil for the whole range). They are all masked equalities,
// which libseccomp 2.5 combines correctly across the rules of a call; its
// other comparisons it does not (see compare). For a 32-bit argument they
// compare the low half only, since the kernel ignores the upper half (a
// caller may fill it with anything); a 64-bit argument's interval is a
// single value, compared whole.
func intervalArgs(index uint, iv interval, top uint64) []specs.LinuxSeccompArg {
	if iv.lo == 0 && iv.hi == top {
		return nil
	}
	var out []specs.LinuxSeccompArg
	for _, b := range prefixBlocks(iv.lo, iv.hi) {
		// The block of 2^k values from base: the bits above k equal.
		out = append(out, specs.LinuxSeccompArg{Index: index, Op: specs.OpMaskedEqual, Value: top &^ (b.size - 1), ValueTwo: b.base})
	}
	return out
}

type block struct{ base, size uint64 }

// prefixBlocks splits [lo, hi] into aligned power-of-two blocks, as a
// range of addresses splits into CIDR prefixes (at most 2*64 of them).
func prefixBlocks(lo, hi uint64) []block {
	var out []block
	for {
		// The largest aligned block at lo that stays within hi.
		k := min(bits.TrailingZeros64(lo), 63)
		for k > 0 && hi-lo < (uint64(1)<<k)-1 {
			k--
		}
		size := uint64(1) << k
		out = append(out, block{lo, size})
		end := lo + (size - 1)
		if end >= hi {
			return out
		}
		lo = end + 1
	}
}

func (sc *seccompCompiler) unsupported(e celast.Expr) error {
	return fmt.Errorf("%s: the container's seccomp filter checks only container fields, syscall.name (==, !=, in) and syscall.args[0] to syscall.args[3] against integer constants (==, !=, <, <=, >, >=, in), joined by &&, || and !", sc.kc.unparse(e))
}

// compile is the normal form of e for the call, or of !e when neg.
func (sc *seccompCompiler) compile(e celast.Expr, neg bool) (dnf, error) {
	if eventRef(e) == "" {
		v, err := sc.value(e)
		if err != nil {
			return nil, err
		}
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("%s is not a bool", sc.kc.unparse(e))
		}
		return dnfConst(b != neg), nil
	}
	if e.Kind() != celast.CallKind {
		return nil, sc.unsupported(e)
	}
	c := e.AsCall()
	args := c.Args()
	switch fn := c.FunctionName(); fn {
	case "_&&_", "_||_":
		// De Morgan: a negated && is an ||.
		and := (fn == "_&&_") != neg
		a, errA := sc.compile(args[0], neg)
		b, errB := sc.compile(args[1], neg)
		// A side that cannot be checked does not matter beside a
		// false one of an && (a true one of an ||), as in CEL: so
		// `syscall.name == "setuid" && syscall.args[0] < 5` holds for
		// the setuid kind although capset's arguments are 64 bits.
		switch absorbing := dnfConst(!and); {
		case errA != nil && errB == nil && isConst(b, !and):
			return absorbing, nil
		case errB != nil && errA == nil && isConst(a, !and):
			return absorbing, nil
		case errA != nil:
			return nil, errA
		case errB != nil:
			return nil, errB
		case and:
			return a.and(b)
		}
		return a.or(b)
	case "!_":
		return sc.compile(args[0], !neg)
	case "_?_:_":
		// c ? a : b is (c && a) || (!c && b); its negation the same
		// with !a and !b.
		cy, err := sc.compile(args[0], false)
		if err != nil {
			return nil, err
		}
		cn, err := sc.compile(args[0], true)
		if err != nil {
			return nil, err
		}
		a, err := sc.compile(args[1], neg)
		if err != nil {
			return nil, err
		}
		b, err := sc.compile(args[2], neg)
		if err != nil {
			return nil, err
		}
		if a, err = cy.and(a); err != nil {
			return nil, err
		}
		if b, err = cn.and(b); err != nil {
			return nil, err
		}
		return a.or(b)
	case "_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_":
		l, r, op := args[0], args[1], fn
		if eventRef(l) == "" {
			l, r, op = r, l, mirror(op)
		}
		if eventRef(r) != "" {
			return nil, fmt.Errorf("%s compares two values of the call", sc.kc.unparse(e))
		}
		v, err := sc.value(r)
		if err != nil {
			return nil, err
		}
		f, err := sc.compare(l, op, v, neg)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", sc.kc.unparse(e), err)
		}
		return f, nil
	case "@in":
		if eventRef(args[1]) != "" {
			return nil, fmt.Errorf("%s: the list must not depend on the call", sc.kc.unparse(e))
		}
		v, err := sc.value(args[1])
		if err != nil {
			return nil, err
		}
		items, ok := v.([]any)
		if !ok {
			if items, ok = toList(v); !ok {
				return nil, fmt.Errorf("%s: the right side is not a list", sc.kc.unparse(e))
			}
		}
		// x in [a, b] is x == a || x == b; negated, x != a && x != b.
		out := dnfConst(neg)
		for _, it := range items {
			f, err := sc.compare(args[0], "_==_", it, neg)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", sc.kc.unparse(e), err)
			}
			if neg {
				out, err = out.and(f)
			} else {
				out, err = out.or(f)
			}
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, sc.unsupported(e)
}

// argIndex is i for syscall.args[i] with a constant i, else -1.
func (sc *seccompCompiler) argIndex(e celast.Expr) (int, error) {
	if e.Kind() != celast.CallKind || e.AsCall().FunctionName() != "_[_]" {
		return -1, nil
	}
	args := e.AsCall().Args()
	if field(args[0]) != "syscall.args" || eventRef(args[1]) != "" {
		return -1, nil
	}
	v, err := sc.value(args[1])
	if err != nil {
		return -1, err
	}
	n, ok := v.(int64)
	if !ok || n < 0 || n > 3 {
		return -1, fmt.Errorf("only syscall.args[0] to syscall.args[3] can be checked, not index %v", v)
	}
	return int(n), nil
}

// compare is the normal form of `l op v` (or its negation) for the call.
func (sc *seccompCompiler) compare(l celast.Expr, op string, v any, neg bool) (dnf, error) {
	if field(l) == "syscall.name" {
		s, ok := v.(string)
		if !ok || (op != "_==_" && op != "_!=_") {
			return nil, fmt.Errorf("syscall.name takes == or != a string")
		}
		return dnfConst((s == sc.call) == (op == "_==_") != neg), nil
	}
	i, err := sc.argIndex(l)
	if err != nil {
		return nil, err
	}
	if i < 0 {
		return nil, sc.unsupported(l)
	}
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("%d is out of range", x)
		}
		n = int64(x)
	default:
		return nil, fmt.Errorf("syscall.args[%d] is compared with an integer, not %T", i, v)
	}
	widths := argWidths[sc.call]
	if i >= len(widths) {
		// The call has no such argument: the comparison is false.
		return dnfConst(neg), nil
	}
	top := argTop(widths[i])
	var x uint64
	switch {
	case top == math.MaxUint32 && n < 0 && n >= math.MinInt32 && (op == "_==_" || op == "_!=_"):
		// -1 is the 32-bit all-ones: setresuid(-1, ...) leaves an id.
		x = uint64(uint32(int32(n)))
	case n < 0:
		return nil, fmt.Errorf("a negative constant; %s's argument %d is compared unsigned (== and != take -1 on 32-bit arguments)", sc.call, i)
	case n > math.MaxUint32:
		// The 32-bit ABIs in the filter see 32 bits of every argument.
		return nil, fmt.Errorf("%d is above 32 bits, which the filter cannot check the same way on every architecture", n)
	default:
		x = uint64(n)
	}
	if top == math.MaxUint64 {
		// libseccomp 2.5 mis-compiles the other comparisons of 64-bit
		// values beside other rules of the call: LE 0xfffffffe and GE
		// 1<<32 on one argument deny 0xffffffff; with NE 5 and EQ 1 on
		// one argument, 1 no longer matches. And the masked blocks of
		// a range or of all values but one are too many at 64 bits.
		if eq := (op == "_==_" && !neg) || (op == "_!=_" && neg); !eq {
			return nil, fmt.Errorf("%s's argument %d is 64 bits wide: the filter checks it with == (or in) only, not negated", sc.call, i)
		}
		var t argTerm
		t[i] = &interval{lo: x, hi: x}
		return dnf{t}, nil
	}
	var ivs []interval
	switch op {
	case "_==_":
		ivs = []interval{{lo: x, hi: x}}
	case "_!=_":
		ivs = complement([]interval{{lo: x, hi: x}}, top)
	case "_<_":
		if x > 0 {
			ivs = []interval{{lo: 0, hi: x - 1}}
		}
	case "_<=_":
		ivs = []interval{{lo: 0, hi: x}}
	case "_>_":
		if x < top {
			ivs = []interval{{lo: x + 1, hi: top}}
		}
	case "_>=_":
		ivs = []interval{{lo: x, hi: top}}
	}
	if neg {
		ivs = complement(ivs, top)
	}
	var out dnf
	for _, iv := range ivs {
		var t argTerm
		t[i] = &iv
		out = append(out, t)
	}
	return out, nil
}

// complement is [0, top] less the sorted, disjoint intervals.
func complement(ivs []interval, top uint64) []interval {
	var out []interval
	next := uint64(0)
	done := false
	for _, iv := range ivs {
		if iv.lo > next {
			out = append(out, interval{lo: next, hi: iv.lo - 1})
		}
		if iv.hi == top {
			done = true
			break
		}
		next = iv.hi + 1
	}
	if !done {
		out = append(out, interval{lo: next, hi: top})
	}
	return out
}

// ids32 are the calls that 32-bit ABIs (x86, arm) also have as NAME32,
// with 32-bit ids, beside a NAME that takes 16-bit ones: the profile's
// rules for NAME32 are the ones those ABIs' programs use.
var ids32 = map[string]bool{
	"setuid": true, "setgid": true, "setreuid": true, "setregid": true,
	"setresuid": true, "setresgid": true, "setfsuid": true, "setfsgid": true,
}

// withIDs32 is the calls with their NAME32 variants.
func withIDs32(calls []string) []string {
	var out []string
	for _, n := range calls {
		out = append(out, n)
		if ids32[n] {
			out = append(out, n+"32")
		}
	}
	return out
}

// seccompAction is an action as the filter's compiler tells actions
// apart: SCMP_ACT_ERRNO and SCMP_ACT_TRACE without errnoRet mean EPERM,
// SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD.
type seccompAction struct {
	act   specs.LinuxSeccompAction
	errno uint
}

func actionOf(a specs.LinuxSeccompAction, ret *uint) seccompAction {
	if a == specs.ActKill {
		a = specs.ActKillThread
	}
	var e uint
	if a == specs.ActErrno || a == specs.ActTrace {
		e = uint(unix.EPERM)
		if ret != nil {
			e = *ret
		}
	}
	return seccompAction{a, e}
}

// refuses says whether the action keeps the call from running.
func (a seccompAction) refuses() bool {
	switch a.act {
	case specs.ActErrno, specs.ActKillThread, specs.ActKillProcess, specs.ActTrap:
		return true
	}
	return false
}

// catchAll is a condition every call meets. It is a condition, not an
// unconditional rule: libseccomp drops a call's conditional rules when it
// has an unconditional one. libseccomp orders the comparisons of a call by
// argument (higher first), then operator (==, != and masked before < and
// <=, before > and >=), then value, and checks them in that order; it
// merges equal comparisons of different rules, which must not happen with
// a deny's. `args[0] <= 2^64-1` is checked after every deny comparison and
// compares the upper half with 0xffffffff, which no deny does (their
// values are below 2^32): the property test of seccompargs_linux_test.go
// checks it through libseccomp.
var catchAll = []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpLessEqual, Value: math.MaxUint64}}

// mergeSeccompDenies rewrites a seccomp profile so that the denied calls
// fail: a call denied whatever its arguments with EPERM, as before; a call
// denied on some arguments with EPERM when they match and the treatment
// the profile gave it otherwise.
//
// Berth's runtime and runc hand the profile to libseccomp, which does not
// take the first matching rule in the profile's order: an unconditional
// rule for a call replaces its conditional ones (so a conditional deny
// beside the profile's plain allow never fires), and a rule with the
// filter's default action is refused. So the call is taken out of the
// profile's rules and gets its deny rules plus, when the profile treated it
// otherwise than by the default action, that treatment again as a rule on
// the catch-all condition, which libseccomp checks after the deny rules.
// Under a profile whose default action is EPERM itself (Docker's), a
// conditional deny cannot be an EPERM rule and the complement of its
// condition, listed as allow rules, multiplies (a 32-bit != alone takes 32
// masked comparisons): those denies answer EACCES.
func mergeSeccompDenies(sc *specs.LinuxSeccomp, denies []SeccompDeny) error {
	def := actionOf(sc.DefaultAction, sc.DefaultErrnoRet)
	eperm := seccompAction{specs.ActErrno, uint(unix.EPERM)}
	var order []string
	uncond := map[string]bool{}
	when := map[string][][]specs.LinuxSeccompArg{}
	ruleOf := map[string]string{}
	for _, d := range denies {
		for _, n := range withIDs32(d.Syscalls) {
			if _, seen := ruleOf[n]; !seen {
				order = append(order, n)
				ruleOf[n] = d.Rule
			}
			base := n
			if b, ok := strings.CutSuffix(n, "32"); ok && ids32[b] {
				base = b // the same arguments
			}
			args, ok := d.When[base]
			switch {
			case uncond[n]:
			case !ok:
				uncond[n] = true
				delete(when, n)
			default:
				when[n] = append(when[n], args...)
			}
		}
	}
	// The profile's rules for each denied call, taken out.
	prev := map[string][]specs.LinuxSyscall{}
	var out []specs.LinuxSyscall
	for _, s := range sc.Syscalls {
		var left []string
		for _, n := range s.Names {
			if _, denied := ruleOf[n]; !denied {
				left = append(left, n)
				continue
			}
			one := s
			one.Names = []string{n}
			prev[n] = append(prev[n], one)
		}
		if len(left) > 0 {
			s.Names = left
			out = append(out, s)
		}
	}
	var plain []string
	for _, n := range order {
		if uncond[n] {
			plain = append(plain, n)
			continue
		}
		// The call's treatment in the profile: the default, or its
		// first unconditional rule (libseccomp keeps that one).
		var was *specs.LinuxSyscall
		conditional := false
		for i, r := range prev[n] {
			switch {
			case actionOf(r.Action, r.ErrnoRet) == def:
			case len(r.Args) > 0:
				conditional = true
			case was == nil:
				was = &prev[n][i]
			}
		}
		wasAct := def
		if was != nil {
			wasAct = actionOf(was.Action, was.ErrnoRet)
		} else if conditional {
			return fmt.Errorf("monitor rule %q denies %s on its arguments, and the container's seccomp profile has conditional rules for %s, which seccomp cannot combine with it: deny it whatever its arguments, or use a profile without them: %w",
				ruleOf[n], n, n, errdefs.ErrNotImplemented)
		}
		if wasAct.refuses() {
			out = append(out, prev[n]...) // refused whatever its arguments already
			continue
		}
		deny := eperm
		if def == eperm {
			deny.errno = uint(unix.EACCES)
		}
		for _, args := range when[n] {
			errno := deny.errno
			out = append(out, specs.LinuxSyscall{Names: []string{n}, Action: specs.ActErrno, ErrnoRet: &errno, Args: args})
		}
		if was != nil {
			r := *was
			r.Args = slices.Clone(catchAll)
			out = append(out, r)
		}
	}
	if len(plain) > 0 {
		errno := eperm.errno
		out = append(out, specs.LinuxSyscall{Names: plain, Action: specs.ActErrno, ErrnoRet: &errno})
	}
	sc.Syscalls = out
	return nil
}

// argsMatch says whether a call with these arguments meets all the
// comparisons (the masked equalities the compiler makes; any other
// comparison counts as met).
func argsMatch(args []specs.LinuxSeccompArg, vals [6]uint64) bool {
	for _, a := range args {
		if a.Op == specs.OpMaskedEqual && a.Index < 6 && vals[a.Index]&a.Value != a.ValueTwo {
			return false
		}
	}
	return true
}
