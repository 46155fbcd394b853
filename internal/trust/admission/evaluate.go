package admission

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Result is the decision over all rules: Allowed only if every rule allowed.
type Result struct {
	Allowed bool
	Rules   []RuleResult
}

// RuleResult is one rule's part of a decision. Matched is false when the
// rule's matchConditions did not all hold (the rule then allows). A rule
// that could not be evaluated has Err set and does not allow: rules fail
// closed.
type RuleResult struct {
	Name    string
	Matched bool
	Allowed bool
	Message string // why the rule refused, without its name; empty when it allowed
	Err     error
}

// String is the result as one line: "rule NAME: MESSAGE" for a refusal.
func (rr RuleResult) String() string {
	switch {
	case rr.Allowed && !rr.Matched:
		return fmt.Sprintf("rule %s: not applicable", rr.Name)
	case rr.Allowed:
		return fmt.Sprintf("rule %s: admitted", rr.Name)
	}
	return fmt.Sprintf("rule %s: %s", rr.Name, rr.Message)
}

// Denied returns the rules that refused, in file order.
func (r Result) Denied() []RuleResult {
	var out []RuleResult
	for _, rr := range r.Rules {
		if !rr.Allowed {
			out = append(out, rr)
		}
	}
	return out
}

// ErrCostBudget is the error of a rule left unevaluated because the rules
// before it spent the evaluation's cost budget.
var ErrCostBudget = errors.New("admission: evaluation cost budget exhausted")

// Evaluate runs every rule against the facts, in file order, and returns
// each rule's outcome. It evaluates all rules even after one refuses, so a
// caller can explain the whole decision. An error is returned only when ctx
// ends; the Result then refuses. A nil *Rules has no rules and allows.
func (r *Rules) Evaluate(ctx context.Context, f Facts) (Result, error) {
	res := Result{Allowed: true}
	if r == nil {
		return res, nil
	}
	vars := activation(f)
	budget := uint64(EvaluationCostBudget)
	for _, rl := range r.rules {
		if err := ctx.Err(); err != nil {
			return Result{Allowed: false, Rules: res.Rules}, fmt.Errorf("admission: evaluate rule %q: %w", rl.name, err)
		}
		rr := rl.evaluate(ctx, vars, &budget)
		if !rr.Allowed {
			res.Allowed = false
		}
		res.Rules = append(res.Rules, rr)
	}
	if err := ctx.Err(); err != nil {
		return Result{Allowed: false, Rules: res.Rules}, fmt.Errorf("admission: evaluate rules: %w", err)
	}
	return res, nil
}

func activation(f Facts) map[string]any {
	var sbom any = types.NullValue
	if f.SBOM != nil {
		sbom = f.SBOM
	}
	img := f.Image
	return map[string]any{
		"image":               &img,
		"signatures":          f.Signatures,
		"sbom":                sbom,
		"vulnerabilities":     f.Vulnerabilities,
		"vulnerabilityReport": f.VulnerabilityReport,
	}
}

func (rl *rule) evaluate(ctx context.Context, vars map[string]any, budget *uint64) RuleResult {
	rr := RuleResult{Name: rl.name}
	// Message says what failed without the rule's name, which the caller
	// puts beside it ("refused by rule NAME: MESSAGE"); Err names the rule
	// for whoever logs it alone.
	fail := func(what string, err error) RuleResult {
		rr.Allowed = false
		rr.Message = cleanMessage(fmt.Sprintf("%s could not be evaluated: %v", what, err))
		rr.Err = fmt.Errorf("rule %q: %s: %w", rl.name, what, err)
		return rr
	}
	for i, c := range rl.conditions {
		what := "matchConditions"
		if c.name != "" {
			what = fmt.Sprintf("matchConditions %q", c.name)
		} else if len(rl.conditions) > 1 {
			what = fmt.Sprintf("matchConditions[%d]", i)
		}
		ok, err := evalBool(ctx, c.prog, vars, budget)
		if err != nil {
			return fail(what, err)
		}
		if !ok {
			rr.Allowed = true
			return rr
		}
	}
	rr.Matched = true
	ok, err := evalBool(ctx, rl.expr, vars, budget)
	if err != nil {
		return fail("expression", err)
	}
	if ok {
		rr.Allowed = true
		return rr
	}
	rr.Message = rl.denyMessage(ctx, vars, budget)
	return rr
}

// denyMessage prefers messageExpression, then message, then the expression
// itself, as Kubernetes does; a messageExpression that fails does not change
// the decision, only the wording.
func (rl *rule) denyMessage(ctx context.Context, vars map[string]any, budget *uint64) string {
	if rl.messageExpr != nil {
		v, err := eval(ctx, rl.messageExpr, vars, budget)
		if err == nil {
			if s, ok := v.(types.String); ok && strings.TrimSpace(string(s)) != "" {
				return cleanMessage(string(s))
			}
		}
	}
	if rl.message != "" {
		return cleanMessage(rl.message)
	}
	return cleanMessage("failed expression: " + strings.TrimSpace(rl.exprText))
}

func evalBool(ctx context.Context, prog cel.Program, vars map[string]any, budget *uint64) (bool, error) {
	v, err := eval(ctx, prog, vars, budget)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		// The type checker makes this unreachable; it stays a refusal.
		return false, fmt.Errorf("result is %s, not bool", v.Type())
	}
	return bool(b), nil
}

func eval(ctx context.Context, prog cel.Program, vars map[string]any, budget *uint64) (ref.Val, error) {
	if *budget == 0 {
		return nil, ErrCostBudget
	}
	v, det, err := prog.ContextEval(ctx, vars)
	if det != nil {
		if c := det.ActualCost(); c != nil {
			*budget -= min(*c, *budget)
		}
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}
