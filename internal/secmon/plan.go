package secmon

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/parser"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/secmon/kern"
	"github.com/berth-project/berth/internal/secmon/landlock"
)

// Atom is one kernel check (kern.Atom* kinds).
type Atom struct {
	Kind   uint32
	Len    uint32
	Lo, Hi uint32
	Data   []byte
}

// KernelRule is a rule the kernel decides: the rule's condition as a
// truth table over its atoms (bit i of the index is atom i).
type KernelRule struct {
	ID     uint32 // index of the rule in the RuleSet
	Action uint32 // kern.ActDeny, kern.ActKill or kern.ActAlert (report only)
	Atoms  []Atom
	Table  [(1 << kern.MaxAtoms) / 64]uint64
}

// KernelPolicy is what the kernel holds for one event kind of one
// container.
type KernelPolicy struct {
	// Report sends every event of the kind to the agent, for its alert
	// rules; without it only the events a kernel rule matched go.
	Report bool
	Rules  []KernelRule
}

// Empty says whether the kind needs nothing in the kernel.
func (p KernelPolicy) Empty() bool { return !p.Report && len(p.Rules) == 0 }

// SeccompDeny is a rule carried out by the container's seccomp filter:
// the calls it denies, and for those whose denial depends on their
// arguments, when.
type SeccompDeny struct {
	Rule     string
	Syscalls []string
	// When holds, for a call of Syscalls denied on some arguments only,
	// the argument comparisons of its seccomp rules: the call is denied
	// when all the comparisons of one list hold (each list compares each
	// argument at most once). A call of Syscalls without an entry is
	// denied whatever its arguments.
	When map[string][][]specs.LinuxSeccompArg `json:"when,omitempty"`
}

// Plan is a container's rules compiled for the kernel, with the
// container's fields fixed.
type Plan struct {
	Exec    KernelPolicy
	Connect KernelPolicy
	// Syscalls are the system calls reported to the agent for its
	// alert rules (the open family for open rules).
	Syscalls []string
	// SysDeny are the system calls of the seccomp deny rules: their
	// refusals are reported to the agent (at sys_exit: seccomp skips
	// sys_enter), which writes the deny alerts.
	SysDeny []string
	Seccomp []SeccompDeny
	// Accept reports the container's inbound TCP connections to the
	// agent, for its accept alert rules.
	Accept bool
	// AcceptDeny are the accept deny rules, checked on inbound TCP SYNs
	// by the ingress program on the container's cgroup.
	AcceptDeny KernelPolicy
	// Exit are the exit alert rules as kernel rules over the status
	// (exit.code, exit.signal), so that only the exits they match go up
	// to the agent; Report where one cannot be checked in the kernel.
	Exit KernelPolicy
	// Open are the open deny rules as kernel rules over the path, for
	// the BPF LSM file_open program (kernels with BPF LSM; elsewhere
	// Landlock carries them out).
	Open KernelPolicy
	// Landlock is what berth-runtime denies (exec and open-for-write
	// deny rules) where the kernel has no BPF LSM, carried in the
	// landlock.Annotation annotation.
	Landlock landlock.Plan
}

// NeedsLSM says whether the BPF LSM programs carry out some of the
// plan's rules (exec or open deny rules on a kernel with BPF LSM).
func (p *Plan) NeedsLSM() bool {
	return !p.Open.Empty() || slices.ContainsFunc(p.Exec.Rules, func(r KernelRule) bool { return r.Action == kern.ActDeny })
}

// Empty says whether the plan needs the agent at all.
func (p *Plan) Empty() bool {
	return p.Exec.Empty() && p.Connect.Empty() && len(p.Syscalls) == 0 && !p.Accept && p.AcceptDeny.Empty() && p.Exit.Empty() && p.Open.Empty() &&
		len(p.SysDeny) == 0
}

// NeedsLandlock says whether the container's runtime must apply a
// Landlock plan (berth-runtime does; runc and crun do not).
func (p *Plan) NeedsLandlock() bool { return !p.Landlock.Empty() }

// openFamily are the calls an open rule watches; execFamily those an
// exec deny rule's alert comes from (Landlock stops the exec before the
// sched_process_exec tracepoint).
var (
	openFamily = []string{"open", "openat", "openat2", "creat"}
	execFamily = []string{"execve", "execveat"}
)

// addSyscalls adds the named calls this architecture knows to the report.
func (p *Plan) addSyscalls(names []string) {
	for _, n := range names {
		if _, ok := sysNumbers[n]; ok && !slices.Contains(p.Syscalls, n) {
			p.Syscalls = append(p.Syscalls, n)
		}
	}
}

// Plan compiles the rules for one container.
func (rs *RuleSet) Plan(c Container) (*Plan, error) {
	p := &Plan{}
	alertRules := map[*KernelPolicy][]KernelRule{}
	vars := map[string]any{"container": c.vars()}
	h := rs.host
	for i, r := range rs.Rules {
		where := fmt.Sprintf("%s: rule %q (line %d)", r.Source, r.Name, r.Line)
		// Exec and open denies: the BPF LSM programs where the kernel
		// runs them (below, as kernel rules), else Landlock.
		if r.Action == ActionDeny && (r.Event == EventExec || r.Event == EventOpen) && h.lsm() != "" {
			paths, err := rs.landlockPaths(i, vars)
			if err != nil {
				return nil, fmt.Errorf("%s: %v: %w", where, err, errdefs.ErrNotImplemented)
			}
			if len(paths) == 0 {
				continue // false for this container
			}
			if r.Event == EventExec {
				p.Landlock.Exec = append(p.Landlock.Exec, paths...)
				p.addSyscalls(execFamily)
			} else {
				p.Landlock.Write = append(p.Landlock.Write, paths...)
				p.addSyscalls(openFamily)
			}
			continue
		}
		if r.Event == EventAccept && r.Action == ActionAlert {
			// The handshake's end (inet_sock_set_state) reports; the
			// deny rules are kernel rules on the SYN, below (mechanisms
			// refuses kill).
			p.Accept = true
			continue
		}
		if r.Action == ActionAlert && (isSyscallEvent(r.Event) || r.Event == EventOpen) {
			names := SyscallsOf(r.Event)
			if r.Event == EventOpen {
				names = openFamily
			}
			p.addSyscalls(names)
			continue
		}
		if isSyscallEvent(r.Event) {
			d, err := rs.seccompDeny(i, vars)
			if err != nil {
				return nil, fmt.Errorf("%s: %v: %w", where, err, errdefs.ErrNotImplemented)
			}
			if d != nil {
				p.Seccomp = append(p.Seccomp, *d)
				for _, n := range d.Syscalls {
					if _, ok := sysNumbers[n]; ok && !slices.Contains(p.SysDeny, n) {
						p.SysDeny = append(p.SysDeny, n)
					}
				}
			}
			continue
		}
		var pol *KernelPolicy
		switch r.Event {
		case EventExec:
			pol = &p.Exec
		case EventOpen:
			pol = &p.Open // deny only (alerts are above, kill refused)
		case EventConnect:
			pol = &p.Connect
		case EventAccept:
			pol = &p.AcceptDeny
		case EventExit:
			pol = &p.Exit // alert only (mechanisms refuses the rest)
		default:
			continue
		}
		if r.Action == ActionAlert {
			// An alert condition the kernel can check is a kernel
			// rule too, so that only the events it matches go up to
			// the agent (which writes the alert from its CEL); any
			// other makes the kernel send every event of the kind.
			kr, _, err := rs.kernelRule(i, vars)
			switch {
			case err != nil:
				pol.Report = true
			case kr != nil:
				kr.Action = kern.ActAlert
				alertRules[pol] = append(alertRules[pol], *kr)
			}
			continue
		}
		kr, always, err := rs.kernelRule(i, vars)
		if err != nil {
			return nil, fmt.Errorf("%s: condition cannot be checked in the kernel: %v: %w", where, err, errdefs.ErrNotImplemented)
		}
		if kr == nil && !always {
			continue // false for this container
		}
		if len(pol.Rules) == kern.MaxRules {
			return nil, fmt.Errorf("%s: more than %d deny/kill rules on %s for one container: %w", where, kern.MaxRules, r.Event, errdefs.ErrNotImplemented)
		}
		pol.Rules = append(pol.Rules, *kr)
	}
	// Alert rules after every deny and kill rule: the kernel acts on the
	// first rule that matches. Too many for the kernel's table, or a
	// kind whose every event goes up anyway: the agent checks them all.
	for _, pol := range []*KernelPolicy{&p.Exec, &p.Connect, &p.Exit} {
		if rules := alertRules[pol]; len(rules) > 0 && !pol.Report {
			if len(pol.Rules)+len(rules) > kern.MaxRules {
				pol.Report = true
			} else {
				pol.Rules = append(pol.Rules, rules...)
			}
		}
	}
	return p, nil
}

// writeBit stands for file.write in a formula: not a kernel atom (the
// kernel sees only opens for writing), so past the atoms' bits.
const writeBit = 31

// formula is a condition over atoms.
type formula interface{ eval(bits uint32) bool }

type (
	fAnd   struct{ a, b formula }
	fOr    struct{ a, b formula }
	fNot   struct{ a formula }
	fAtom  int
	fConst bool
)

func (f fAnd) eval(b uint32) bool  { return f.a.eval(b) && f.b.eval(b) }
func (f fOr) eval(b uint32) bool   { return f.a.eval(b) || f.b.eval(b) }
func (f fNot) eval(b uint32) bool  { return !f.a.eval(b) }
func (f fAtom) eval(b uint32) bool { return b&(1<<uint(f)) != 0 }
func (f fConst) eval(uint32) bool  { return bool(f) }
func fOrAll(fs []formula) formula {
	var out formula = fConst(false)
	for _, f := range fs {
		out = fOr{out, f}
	}
	return out
}

// kernelCompiler turns one condition into atoms and a formula.
type kernelCompiler struct {
	rs    *RuleSet
	ast   *cel.Ast
	vars  map[string]any
	atoms []Atom
	keys  []string
}

func (rs *RuleSet) kernelRule(i int, vars map[string]any) (*KernelRule, bool, error) {
	kc := &kernelCompiler{rs: rs, ast: rs.asts[i], vars: vars}
	f, err := kc.compile(rs.asts[i].NativeRep().Expr())
	if err != nil {
		return nil, false, err
	}
	kr := &KernelRule{ID: uint32(i), Atoms: kc.atoms}
	switch rs.Rules[i].Action {
	case ActionDeny:
		kr.Action = kern.ActDeny
	case ActionKill:
		kr.Action = kern.ActKill
	}
	var write uint32
	if rs.Rules[i].Event == EventOpen {
		// The kernel judges opens for writing only: a condition must
		// not hold for another open, or the rule would be narrowed
		// without a word.
		for bits := uint32(0); bits < 1<<len(kc.atoms); bits++ {
			if f.eval(bits) {
				return nil, false, errors.New("an open rule the kernel checks must be for writes: AND the paths with file.write")
			}
		}
		write = 1 << writeBit
	}
	any := false
	for bits := uint32(0); bits < 1<<len(kc.atoms); bits++ {
		if f.eval(bits | write) {
			kr.Table[bits/64] |= 1 << (bits % 64)
			any = true
		}
	}
	if !any {
		return nil, false, nil
	}
	return kr, true, nil
}

func (kc *kernelCompiler) unparse(e celast.Expr) string {
	s, err := parser.Unparse(e, kc.ast.NativeRep().SourceInfo())
	if err != nil {
		return "the expression"
	}
	return s
}

// eventRef names the event or process variable e refers to, if any.
func eventRef(e celast.Expr) string {
	return firstIdent(e, func(n string) bool { return n != "container" })
}

// firstIdent walks a CEL expression and returns the first identifier for
// which want holds ("" if none).
func firstIdent(e celast.Expr, want func(name string) bool) string {
	var found string
	var walk func(e celast.Expr)
	walk = func(e celast.Expr) {
		if found != "" || e == nil {
			return
		}
		switch e.Kind() {
		case celast.IdentKind:
			if n := e.AsIdent(); want(n) {
				found = n
			}
		case celast.SelectKind:
			walk(e.AsSelect().Operand())
		case celast.CallKind:
			c := e.AsCall()
			if c.IsMemberFunction() {
				walk(c.Target())
			}
			for _, a := range c.Args() {
				walk(a)
			}
		case celast.ListKind:
			for _, x := range e.AsList().Elements() {
				walk(x)
			}
		case celast.MapKind:
			for _, en := range e.AsMap().Entries() {
				walk(en.AsMapEntry().Key())
				walk(en.AsMapEntry().Value())
			}
		case celast.ComprehensionKind:
			c := e.AsComprehension()
			walk(c.IterRange())
			walk(c.AccuInit())
			walk(c.LoopCondition())
			walk(c.LoopStep())
			walk(c.Result())
		}
	}
	walk(e)
	return found
}

// value evaluates an expression that refers to no event variable.
func (rs *RuleSet) value(e celast.Expr, a *cel.Ast, vars map[string]any) (any, error) {
	src, err := parser.Unparse(e, a.NativeRep().SourceInfo())
	if err != nil {
		return nil, err
	}
	sub, iss := rs.env.Compile(src)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	prg, err := rs.env.Program(sub, cel.CostLimit(100000))
	if err != nil {
		return nil, err
	}
	out, _, err := prg.Eval(vars)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if l, ok := out.(traits.Lister); ok {
		var items []any
		for it := l.Iterator(); it.HasNext() == types.True; {
			items = append(items, it.Next().Value())
		}
		return items, nil
	}
	return out.Value(), nil
}

// portRange makes the port atom of `field op n` over the field's values
// 0..top.
func (kc *kernelCompiler) portRange(op string, n, top int64, neg func(formula) formula) formula {
	lo, hi := int64(0), top
	switch op {
	case "_==_", "_!=_":
		lo, hi = n, n
	case "_<_":
		hi = n - 1
	case "_<=_":
		hi = n
	case "_>_":
		lo = n + 1
	case "_>=_":
		lo = n
	}
	lo, hi = max(lo, 0), min(hi, top)
	if lo > hi {
		return fConst(op == "_!=_")
	}
	return neg(kc.atom(Atom{Kind: kern.AtomPort, Lo: uint32(lo), Hi: uint32(hi)}))
}

func (kc *kernelCompiler) atom(a Atom) formula {
	key := fmt.Sprintf("%d/%d/%d/%d/%x", a.Kind, a.Len, a.Lo, a.Hi, a.Data)
	if i := slices.Index(kc.keys, key); i >= 0 {
		return fAtom(i)
	}
	kc.keys = append(kc.keys, key)
	kc.atoms = append(kc.atoms, a)
	return fAtom(len(kc.atoms) - 1)
}

func (kc *kernelCompiler) compile(e celast.Expr) (formula, error) {
	if eventRef(e) == "" {
		v, err := kc.rs.value(e, kc.ast, kc.vars)
		if err != nil {
			return nil, err
		}
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("%s is not a bool", kc.unparse(e))
		}
		return fConst(b), nil
	}
	if len(kc.atoms) > kern.MaxAtoms {
		return nil, fmt.Errorf("more than %d distinct checks", kern.MaxAtoms)
	}
	switch e.Kind() {
	case celast.SelectKind:
		switch field(e) {
		case "exec.drift":
			return kc.atom(Atom{Kind: kern.AtomDrift}), nil
		case "file.write":
			return fAtom(writeBit), nil
		}
	case celast.CallKind:
		c := e.AsCall()
		args := c.Args()
		switch fn := c.FunctionName(); fn {
		case "_&&_", "_||_":
			a, err := kc.compile(args[0])
			if err != nil {
				return nil, err
			}
			b, err := kc.compile(args[1])
			if err != nil {
				return nil, err
			}
			if fn == "_&&_" {
				return fAnd{a, b}, nil
			}
			return fOr{a, b}, nil
		case "!_":
			a, err := kc.compile(args[0])
			if err != nil {
				return nil, err
			}
			return fNot{a}, nil
		case "_?_:_":
			cnd, err := kc.compile(args[0])
			if err != nil {
				return nil, err
			}
			a, err := kc.compile(args[1])
			if err != nil {
				return nil, err
			}
			b, err := kc.compile(args[2])
			if err != nil {
				return nil, err
			}
			return fOr{fAnd{cnd, a}, fAnd{fNot{cnd}, b}}, nil
		case "_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_":
			l, r := args[0], args[1]
			op := fn
			if eventRef(l) == "" {
				l, r = r, l
				op = mirror(op)
			}
			if eventRef(r) != "" {
				return nil, fmt.Errorf("%s compares two event values", kc.unparse(e))
			}
			v, err := kc.rs.value(r, kc.ast, kc.vars)
			if err != nil {
				return nil, err
			}
			f, err := kc.compare(field(l), op, v)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", kc.unparse(e), err)
			}
			return f, nil
		case "@in":
			if eventRef(args[1]) != "" {
				return nil, fmt.Errorf("%s: the list must not depend on the event", kc.unparse(e))
			}
			v, err := kc.rs.value(args[1], kc.ast, kc.vars)
			if err != nil {
				return nil, err
			}
			var items []any
			switch l := v.(type) {
			case []any:
				items = l
			default:
				lv, ok := toList(v)
				if !ok {
					return nil, fmt.Errorf("%s: the right side is not a list", kc.unparse(e))
				}
				items = lv
			}
			var fs []formula
			for _, it := range items {
				f, err := kc.compare(field(args[0]), "_==_", it)
				if err != nil {
					return nil, fmt.Errorf("%s: %v", kc.unparse(e), err)
				}
				fs = append(fs, f)
			}
			return fOrAll(fs), nil
		case "startsWith":
			if c.IsMemberFunction() && (field(c.Target()) == "exec.path" || field(c.Target()) == "file.path") && len(args) == 1 && eventRef(args[0]) == "" {
				v, err := kc.rs.value(args[0], kc.ast, kc.vars)
				if err != nil {
					return nil, err
				}
				s, _ := v.(string)
				if err := kernelPath(s); err != nil {
					return nil, err
				}
				return kc.atom(Atom{Kind: kern.AtomPathPrefix, Len: uint32(len(s)), Data: []byte(s)}), nil
			}
		case "inCIDR":
			if len(args) == 2 && field(args[0]) == "connect.address" && eventRef(args[1]) == "" {
				v, err := kc.rs.value(args[1], kc.ast, kc.vars)
				if err != nil {
					return nil, err
				}
				s, _ := v.(string)
				pf, err := netip.ParsePrefix(s)
				if err != nil {
					return nil, fmt.Errorf("inCIDR: %v", err)
				}
				return kc.atom(cidrAtom(pf)), nil
			}
		}
	}
	return nil, fmt.Errorf("%s: the kernel checks only exec.path (==, in, startsWith), exec.drift, exec.parent.name (==, in), file.path (==, in, startsWith), file.write, connect.address (==, in, inCIDR), connect.port (==, <, <=, >, >=, in) and connect.protocol (==), joined by &&, || and !", kc.unparse(e))
}

func toList(v any) ([]any, bool) {
	switch l := v.(type) {
	case []string:
		out := make([]any, len(l))
		for i := range l {
			out[i] = l[i]
		}
		return out, true
	case []int64:
		out := make([]any, len(l))
		for i := range l {
			out[i] = l[i]
		}
		return out, true
	}
	if rv, ok := v.(interface{ Value() any }); ok {
		return toList(rv.Value())
	}
	return nil, false
}

func mirror(op string) string {
	switch op {
	case "_<_":
		return "_>_"
	case "_<=_":
		return "_>=_"
	case "_>_":
		return "_<_"
	case "_>=_":
		return "_<=_"
	}
	return op
}

// field is "var.field" (or "var.field.sub") for a select on a
// variable, else "".
func field(e celast.Expr) string {
	if e.Kind() != celast.SelectKind {
		return ""
	}
	s := e.AsSelect()
	if s.IsTestOnly() {
		return ""
	}
	switch op := s.Operand(); op.Kind() {
	case celast.IdentKind:
		return op.AsIdent() + "." + s.FieldName()
	case celast.SelectKind:
		if f := field(op); f != "" {
			return f + "." + s.FieldName()
		}
	}
	return ""
}

func kernelPath(s string) error {
	switch {
	case s == "":
		return errors.New("an empty path")
	case len(s) >= kern.AtomData:
		return fmt.Errorf("path %q is longer than %d bytes", s, kern.AtomData-1)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("path %q has a NUL byte", s)
	}
	return nil
}

func cidrAtom(p netip.Prefix) Atom {
	p = p.Masked()
	a := p.Addr()
	bits := p.Bits()
	if a.Is4() {
		bits += 96
	}
	b := a.As16() // IPv4 as ::ffff:a.b.c.d, as the kernel side stores it
	return Atom{Kind: kern.AtomCIDR, Len: uint32(bits), Data: b[:]}
}

// compare makes the atom formula of `fld op v`.
func (kc *kernelCompiler) compare(fld, op string, v any) (formula, error) {
	neg := func(f formula) formula {
		if op == "_!=_" {
			return fNot{f}
		}
		return f
	}
	switch fld {
	case "exec.path", "file.path":
		s, ok := v.(string)
		if !ok || (op != "_==_" && op != "_!=_") {
			return nil, fmt.Errorf("%s takes == or != a string", fld)
		}
		if err := kernelPath(s); err != nil {
			return nil, err
		}
		return neg(kc.atom(Atom{Kind: kern.AtomPathEq, Len: uint32(len(s)), Data: []byte(s)})), nil
	case "exec.parent.name":
		s, ok := v.(string)
		if !ok || (op != "_==_" && op != "_!=_") {
			return nil, errors.New("exec.parent.name takes == or != a string")
		}
		if s == "" || len(s) >= kern.CommLen || strings.ContainsRune(s, 0) {
			// The kernel's comm is 1 to 15 bytes: no parent has
			// this name.
			return fConst(op == "_!=_"), nil
		}
		return neg(kc.atom(Atom{Kind: kern.AtomPcommEq, Len: uint32(len(s)), Data: []byte(s)})), nil
	case "exec.drift", "file.write":
		b, ok := v.(bool)
		if !ok || (op != "_==_" && op != "_!=_") {
			return nil, fmt.Errorf("%s takes == or != a bool", fld)
		}
		var f formula = fAtom(writeBit)
		if fld == "exec.drift" {
			f = kc.atom(Atom{Kind: kern.AtomDrift})
		}
		if !b {
			f = fNot{f}
		}
		return neg(f), nil
	case "connect.address":
		s, ok := v.(string)
		if !ok || (op != "_==_" && op != "_!=_") {
			return nil, errors.New("connect.address takes == or != an address (inCIDR for networks)")
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("connect.address: %v", err)
		}
		a = a.Unmap()
		return neg(kc.atom(cidrAtom(netip.PrefixFrom(a, a.BitLen())))), nil
	case "connect.protocol":
		s, ok := v.(string)
		if !ok || (op != "_==_" && op != "_!=_") {
			return nil, errors.New("connect.protocol takes == or != \"tcp\" or \"udp\"")
		}
		var proto uint32
		switch s {
		case "tcp":
			proto = 6
		case "udp":
			proto = 17
		default:
			return nil, fmt.Errorf("connect.protocol %q: not tcp or udp", s)
		}
		return neg(kc.atom(Atom{Kind: kern.AtomProto, Lo: proto})), nil
	case "connect.port", "exit.code":
		// The kernel's exit program puts the exit code where the port
		// atom reads (and the signal where the protocol atom does).
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("%s takes an integer", fld)
		}
		top := int64(65535)
		if fld == "exit.code" {
			top = 255
		}
		return kc.portRange(op, n, top, neg), nil
	case "exit.signal":
		n, ok := v.(int64)
		if !ok || (op != "_==_" && op != "_!=_") {
			return nil, errors.New("exit.signal takes == or != an integer (in the kernel)")
		}
		if n < 0 || n > 127 {
			return fConst(op == "_!=_"), nil
		}
		return neg(kc.atom(Atom{Kind: kern.AtomProto, Lo: uint32(n)})), nil
	case "":
		return nil, errors.New("the left side is not a field of the event")
	}
	return nil, fmt.Errorf("%s cannot be checked in the kernel", fld)
}
