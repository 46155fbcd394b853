package secmon

import (
	"errors"
	"fmt"
	"slices"

	celast "cel.dev/cel-go/common/ast"

	"github.com/berth-project/berth/internal/secmon/landlock"
)

// Exec and open-for-write deny rules are carried out by Landlock, which
// berth-runtime applies to the container's processes before they exec
// (internal/runtime/landlock_linux.go). Landlock denies paths, so only
// conditions that reduce, once the container's fields are fixed, to a
// static set of paths can be denied this way; the others are refused at
// load.

// landlockShapes says which conditions can be denied, for refusals.
const landlockShapes = `on this host exec and open deny are carried out by Landlock, which denies static paths: ` +
	`exec.path == "P", exec.path in ["P", ...], exec.path.startsWith("P"), and for open the same on file.path, ANDed with file.write; ` +
	`joined by ||, and by && with conditions that read only container fields`

// pathSet is a reduced condition: a constant, or a set of paths (any:
// every path) that the write flag restricts to opens for writing.
type pathSet struct {
	konst *bool
	any   bool
	write bool
	paths []landlock.Path
}

func constSet(b bool) pathSet { return pathSet{konst: &b} }

// landlockPaths reduces rule i's condition for a container; nil when the
// condition is false for it.
func (rs *RuleSet) landlockPaths(i int, vars map[string]any) ([]landlock.Path, error) {
	r := rs.Rules[i]
	lc := &landlockCompiler{kc: &kernelCompiler{rs: rs, ast: rs.asts[i], vars: vars}, event: r.Event, rule: r.Name}
	ps, err := lc.reduce(rs.asts[i].NativeRep().Expr())
	if err != nil {
		return nil, err
	}
	switch {
	case ps.konst != nil && !*ps.konst:
		return nil, nil
	case ps.konst != nil || ps.any:
		return nil, fmt.Errorf("the condition would deny every %s, not a set of paths", r.Event)
	case r.Event == EventOpen && !ps.write:
		return nil, errors.New("an open deny must be for writes: AND the paths with file.write")
	}
	return ps.paths, nil
}

type landlockCompiler struct {
	kc    *kernelCompiler
	event string
	rule  string
}

func (lc *landlockCompiler) pathField() string {
	if lc.event == EventOpen {
		return "file.path"
	}
	return "exec.path"
}

func (lc *landlockCompiler) reduce(e celast.Expr) (pathSet, error) {
	kc := lc.kc
	if eventRef(e) == "" {
		v, err := kc.rs.value(e, kc.ast, kc.vars)
		if err != nil {
			return pathSet{}, err
		}
		b, ok := v.(bool)
		if !ok {
			return pathSet{}, fmt.Errorf("%s is not a bool", kc.unparse(e))
		}
		return constSet(b), nil
	}
	if lc.event == EventOpen && field(e) == "file.write" {
		return pathSet{any: true, write: true}, nil
	}
	if e.Kind() == celast.CallKind {
		c := e.AsCall()
		args := c.Args()
		switch fn := c.FunctionName(); fn {
		case "_&&_", "_||_":
			a, err := lc.reduce(args[0])
			if err != nil {
				return pathSet{}, err
			}
			b, err := lc.reduce(args[1])
			if err != nil {
				return pathSet{}, err
			}
			if fn == "_&&_" {
				return and(a, b, kc.unparse(e))
			}
			return or(a, b), nil
		case "_==_":
			l, r := args[0], args[1]
			if field(l) != lc.pathField() {
				l, r = r, l
			}
			if field(l) == lc.pathField() && eventRef(r) == "" {
				return lc.literals(r, false, e)
			}
		case "@in":
			if field(args[0]) == lc.pathField() && eventRef(args[1]) == "" {
				return lc.literals(args[1], false, e)
			}
		case "startsWith":
			if c.IsMemberFunction() && field(c.Target()) == lc.pathField() && len(args) == 1 && eventRef(args[0]) == "" {
				return lc.literals(args[0], true, e)
			}
		}
	}
	return pathSet{}, fmt.Errorf("%s cannot be denied: %s", kc.unparse(e), landlockShapes)
}

// literals evaluates a string or list of strings into paths.
func (lc *landlockCompiler) literals(e celast.Expr, prefix bool, whole celast.Expr) (pathSet, error) {
	v, err := lc.kc.rs.value(e, lc.kc.ast, lc.kc.vars)
	if err != nil {
		return pathSet{}, err
	}
	var strs []string
	switch x := v.(type) {
	case string:
		strs = []string{x}
	case []any:
		for _, it := range x {
			s, ok := it.(string)
			if !ok {
				return pathSet{}, fmt.Errorf("%s: the list holds a non-string", lc.kc.unparse(whole))
			}
			strs = append(strs, s)
		}
	default:
		lv, ok := toList(v)
		if !ok {
			return pathSet{}, fmt.Errorf("%s: not a string or a list of strings", lc.kc.unparse(whole))
		}
		return lc.literalsOf(lv, prefix, whole)
	}
	return lc.literalsOf(anyList(strs), prefix, whole)
}

func anyList(s []string) []any {
	out := make([]any, len(s))
	for i := range s {
		out[i] = s[i]
	}
	return out
}

func (lc *landlockCompiler) literalsOf(items []any, prefix bool, whole celast.Expr) (pathSet, error) {
	ps := pathSet{}
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return pathSet{}, fmt.Errorf("%s: not a string", lc.kc.unparse(whole))
		}
		p := landlock.Path{Path: s, Prefix: prefix, Rule: lc.rule}
		if err := (&landlock.Plan{Exec: []landlock.Path{p}}).Validate(); err != nil {
			return pathSet{}, fmt.Errorf("%s: %v", lc.kc.unparse(whole), err)
		}
		ps.paths = append(ps.paths, p)
	}
	if len(ps.paths) == 0 {
		return constSet(false), nil
	}
	return ps, nil
}

func and(a, b pathSet, what string) (pathSet, error) {
	for _, x := range [][2]pathSet{{a, b}, {b, a}} {
		p, q := x[0], x[1]
		if p.konst != nil {
			if !*p.konst {
				return constSet(false), nil
			}
			return q, nil
		}
		if p.any {
			q.write = q.write || p.write
			return q, nil
		}
	}
	return pathSet{}, fmt.Errorf("%s: both sides name paths (an intersection of paths cannot be denied): %s", what, landlockShapes)
}

func or(a, b pathSet) pathSet {
	for _, x := range [][2]pathSet{{a, b}, {b, a}} {
		p, q := x[0], x[1]
		if p.konst != nil {
			if *p.konst {
				return p
			}
			return q
		}
	}
	if a.any || b.any {
		// file.write || paths: every write, which the caller refuses.
		return pathSet{any: true, write: a.write && b.write}
	}
	return pathSet{paths: slices.Concat(a.paths, b.paths), write: a.write && b.write}
}
