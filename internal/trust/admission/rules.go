package admission

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"go.yaml.in/yaml/v3"
)

// Rules is a compiled rules file. It is immutable and safe for concurrent
// use by any number of Evaluate calls.
type Rules struct {
	source string
	hash   string
	rules  []*rule
}

type rule struct {
	name        string
	conditions  []condition
	expr        cel.Program
	exprText    string
	message     string
	messageExpr cel.Program // nil when the rule has none
}

type condition struct {
	name string // empty for the single-string form
	prog cel.Program
}

// CompileError is an error in a rules file, located in the file and, for
// an expression that does not compile, inside the expression too.
type CompileError struct {
	Source       string // file name, or the source given to Parse
	Line, Column int    // 1-based position in the file; 0 when unknown
	Rule         string // the rule's name, empty when not inside a named rule
	Field        string // expression, matchConditions[0].expression, ... ; empty when not about a field
	ExprLine     int    // 1-based line inside the expression; 0 when not a CEL error
	ExprColumn   int    // 1-based column (code points) inside the expression
	Msg          string
}

func (e *CompileError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		if e.ExprLine > 0 {
			fmt.Fprintf(&b, " (line %d, column %d of the expression)", e.ExprLine, e.ExprColumn)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and compiles a rules file. A missing file is an error that
// wraps fs.ErrNotExist, so a caller can treat "no rules" as "nothing to
// check" without a separate stat.
func Load(path string) (*Rules, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admission rules: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxRulesFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("admission rules: read %s: %w", path, err)
	}
	if len(data) > MaxRulesFileSize {
		return nil, fmt.Errorf("admission rules %s: larger than %d bytes", path, MaxRulesFileSize)
	}
	return Parse(data, path)
}

// hashDomain is mixed into Hash so that a Berth whose rule semantics change
// (new variables, other limits) does not reuse decisions cached by an older one.
const hashDomain = "berth admission rules v1\x00"

// Parse compiles a rules file held in memory; source names it in errors.
func Parse(data []byte, source string) (*Rules, error) {
	if len(data) > MaxRulesFileSize {
		return nil, &CompileError{Source: source, Msg: fmt.Sprintf("larger than %d bytes", MaxRulesFileSize)}
	}
	if !utf8.Valid(data) {
		return nil, &CompileError{Source: source, Msg: "not valid UTF-8"}
	}
	p := &parser{source: source, lines: bytes.Split(data, []byte("\n"))}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &CompileError{Source: source, Msg: "empty file: want a mapping with a rules list"}
		}
		return nil, &CompileError{Source: source, Msg: "YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &CompileError{Source: source, Line: extra.Line, Column: extra.Column, Msg: "more than one YAML document"}
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("admission: build CEL environment: %w", err)
	}
	p.env = env
	rules, err := p.file(&doc)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte(hashDomain), data...))
	return &Rules{source: source, hash: "sha256:" + hex.EncodeToString(sum[:]), rules: rules}, nil
}

// Hash is the rules file's content hash, "sha256:<hex>": equal for equal
// files, so a caller can key cached decisions by it.
func (r *Rules) Hash() string {
	if r == nil {
		return ""
	}
	return r.hash
}

// Len is the number of rules.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.rules)
}

// Names lists the rules' names in file order.
func (r *Rules) Names() []string {
	if r == nil {
		return nil
	}
	names := make([]string, len(r.rules))
	for i, rl := range r.rules {
		names[i] = rl.name
	}
	return names
}

// Source is the file name (or Parse's source) the rules came from.
func (r *Rules) Source() string {
	if r == nil {
		return ""
	}
	return r.source
}

type parser struct {
	source string
	lines  [][]byte
	env    *cel.Env
}

func (p *parser) errAt(n *yaml.Node, ruleName, format string, args ...any) error {
	e := &CompileError{Source: p.source, Rule: ruleName, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

func (p *parser) file(doc *yaml.Node) ([]*rule, error) {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, p.errAt(root, "", "the file must be a mapping with a rules list, not %s", kindName(root))
	}
	var rulesNode *yaml.Node
	if err := p.fields(root, "", func(key string, k, v *yaml.Node) error {
		switch key {
		case "rules":
			rulesNode = v
			return nil
		}
		return p.errAt(k, "", "unknown field %q (the file has only rules)", key)
	}); err != nil {
		return nil, err
	}
	if rulesNode == nil {
		return nil, p.errAt(root, "", "no rules list")
	}
	if rulesNode.Kind == yaml.ScalarNode && rulesNode.Tag == "!!null" {
		return nil, nil // "rules:" with nothing: no rules
	}
	if rulesNode.Kind != yaml.SequenceNode {
		return nil, p.errAt(rulesNode, "", "rules must be a list, not %s", kindName(rulesNode))
	}
	if len(rulesNode.Content) > MaxRules {
		return nil, p.errAt(rulesNode, "", "%d rules, more than the %d allowed", len(rulesNode.Content), MaxRules)
	}
	seen := map[string]*yaml.Node{}
	var out []*rule
	for i, rn := range rulesNode.Content {
		rl, nameNode, err := p.rule(i, rn)
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[rl.name]; ok {
			return nil, p.errAt(nameNode, rl.name, "duplicate rule name (first at line %d)", prev.Line)
		}
		seen[rl.name] = nameNode
		out = append(out, rl)
	}
	return out, nil
}

// fields walks a mapping's keys in order, refusing duplicate keys (a second
// "expression:" must not silently replace the first) and aliases.
func (p *parser) fields(m *yaml.Node, ruleName string, fn func(key string, k, v *yaml.Node) error) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return p.errAt(k, ruleName, "a key must be a plain string, not %s", kindName(k))
		}
		if v.Kind == yaml.AliasNode || v.Anchor != "" {
			return p.errAt(v, ruleName, "YAML anchors and aliases are not allowed")
		}
		if seen[k.Value] {
			return p.errAt(k, ruleName, "field %q given twice", k.Value)
		}
		seen[k.Value] = true
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) rule(index int, n *yaml.Node) (*rule, *yaml.Node, error) {
	label := fmt.Sprintf("rules[%d]", index)
	if n.Kind != yaml.MappingNode {
		return nil, nil, p.errAt(n, "", "%s must be a mapping with name and expression, not %s", label, kindName(n))
	}
	var name, expr, message, messageExpr, conds *yaml.Node
	// The name is looked up first so that every later error names the rule.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			name = n.Content[i+1]
		}
	}
	if name == nil {
		return nil, nil, p.errAt(n, "", "%s has no name", label)
	}
	ruleName, err := p.scalar(name, "", "name")
	if err != nil {
		return nil, nil, err
	}
	if ruleName == "" {
		return nil, nil, p.errAt(name, "", "%s has an empty name", label)
	}
	if err := checkName(ruleName); err != nil {
		return nil, nil, p.errAt(name, "", "%s: %v", label, err)
	}
	if err := p.fields(n, ruleName, func(key string, k, v *yaml.Node) error {
		switch key {
		case "name":
		case "expression":
			expr = v
		case "message":
			message = v
		case "messageExpression":
			messageExpr = v
		case "matchConditions":
			conds = v
		default:
			return p.errAt(k, ruleName, "unknown field %q (want name, matchConditions, expression, message, messageExpression)", key)
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	rl := &rule{name: ruleName}
	if expr == nil {
		return nil, nil, p.errAt(n, ruleName, "no expression")
	}
	if rl.exprText, err = p.scalar(expr, ruleName, "expression"); err != nil {
		return nil, nil, err
	}
	if rl.expr, err = p.compile(expr, rl.exprText, ruleName, "expression", cel.BoolType); err != nil {
		return nil, nil, err
	}
	if message != nil {
		if rl.message, err = p.scalar(message, ruleName, "message"); err != nil {
			return nil, nil, err
		}
	}
	if messageExpr != nil {
		text, err := p.scalar(messageExpr, ruleName, "messageExpression")
		if err != nil {
			return nil, nil, err
		}
		if rl.messageExpr, err = p.compile(messageExpr, text, ruleName, "messageExpression", cel.StringType); err != nil {
			return nil, nil, err
		}
	}
	if conds != nil {
		if rl.conditions, err = p.conditions(conds, ruleName); err != nil {
			return nil, nil, err
		}
	}
	return rl, name, nil
}

// conditions accepts both a single CEL string and Kubernetes' list of
// {name, expression}; all must hold for the rule to apply.
func (p *parser) conditions(n *yaml.Node, ruleName string) ([]condition, error) {
	if n.Kind == yaml.ScalarNode {
		text, err := p.scalar(n, ruleName, "matchConditions")
		if err != nil {
			return nil, err
		}
		prog, err := p.compile(n, text, ruleName, "matchConditions", cel.BoolType)
		if err != nil {
			return nil, err
		}
		return []condition{{prog: prog}}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errAt(n, ruleName, "matchConditions must be a CEL string or a list of {name, expression}, not %s", kindName(n))
	}
	var out []condition
	names := map[string]bool{}
	for i, c := range n.Content {
		field := fmt.Sprintf("matchConditions[%d]", i)
		if c.Kind != yaml.MappingNode {
			return nil, p.errAt(c, ruleName, "%s must be a mapping with name and expression, not %s", field, kindName(c))
		}
		var nameNode, exprNode *yaml.Node
		if err := p.fields(c, ruleName, func(key string, k, v *yaml.Node) error {
			switch key {
			case "name":
				nameNode = v
			case "expression":
				exprNode = v
			default:
				return p.errAt(k, ruleName, "%s: unknown field %q (want name, expression)", field, key)
			}
			return nil
		}); err != nil {
			return nil, err
		}
		var cond condition
		if nameNode != nil {
			name, err := p.scalar(nameNode, ruleName, field+".name")
			if err != nil {
				return nil, err
			}
			if names[name] {
				return nil, p.errAt(nameNode, ruleName, "%s: duplicate name %q", field, name)
			}
			names[name] = true
			cond.name = name
		}
		if exprNode == nil {
			return nil, p.errAt(c, ruleName, "%s has no expression", field)
		}
		text, err := p.scalar(exprNode, ruleName, field+".expression")
		if err != nil {
			return nil, err
		}
		if cond.prog, err = p.compile(exprNode, text, ruleName, field+".expression", cel.BoolType); err != nil {
			return nil, err
		}
		out = append(out, cond)
	}
	return out, nil
}

// scalar returns a scalar's text. Unquoted true, 1 and the like are taken as
// text (expression: true is a valid rule); null and collections are errors.
func (p *parser) scalar(n *yaml.Node, ruleName, field string) (string, error) {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return "", p.errAt(n, ruleName, "%s: YAML anchors and aliases are not allowed", field)
	}
	if n.Kind != yaml.ScalarNode {
		return "", p.errAt(n, ruleName, "%s must be a string, not %s", field, kindName(n))
	}
	if n.Tag == "!!null" {
		return "", p.errAt(n, ruleName, "%s is empty", field)
	}
	if n.Tag == "!!binary" || (n.Tag != "" && !strings.HasPrefix(n.Tag, "!!")) {
		return "", p.errAt(n, ruleName, "%s must be a string, not tagged %s", field, n.Tag)
	}
	return n.Value, nil
}

func (p *parser) compile(n *yaml.Node, text, ruleName, field string, want *cel.Type) (cel.Program, error) {
	if strings.TrimSpace(text) == "" {
		return nil, p.errAt(n, ruleName, "%s is empty", field)
	}
	ast, iss := p.env.Compile(text)
	if iss != nil && iss.Err() != nil {
		errs := iss.Errors()
		first := errs[0]
		e := &CompileError{Source: p.source, Rule: ruleName, Field: field, Msg: first.Message}
		e.ExprLine, e.ExprColumn = first.Location.Line(), first.Location.Column()+1
		e.Line, e.Column = p.filePosition(n, e.ExprLine, e.ExprColumn)
		if len(errs) > 1 {
			e.Msg += fmt.Sprintf(" (and %d more errors)", len(errs)-1)
		}
		return nil, e
	}
	if !ast.OutputType().IsExactType(want) {
		return nil, &CompileError{Source: p.source, Line: n.Line, Column: n.Column, Rule: ruleName, Field: field,
			Msg: fmt.Sprintf("must produce a %s, not %s", want, ast.OutputType())}
	}
	// A rule that exceeds the cost limit for every image, whatever its
	// facts (nested lists.range, say), is refused now rather than refusing
	// every start. Unknown sizes count as empty, so this is a lower bound.
	if est, err := p.env.EstimateCost(ast, noSizes{}); err == nil && est.Min > ExpressionCostLimit {
		return nil, &CompileError{Source: p.source, Line: n.Line, Column: n.Column, Rule: ruleName, Field: field,
			Msg: fmt.Sprintf("costs at least %d whatever the image, more than the limit of %d", est.Min, ExpressionCostLimit)}
	}
	prog, err := p.env.Program(ast,
		cel.CostLimit(ExpressionCostLimit),
		cel.InterruptCheckFrequency(interruptEvery),
	)
	if err != nil {
		return nil, &CompileError{Source: p.source, Line: n.Line, Column: n.Column, Rule: ruleName, Field: field, Msg: err.Error()}
	}
	return prog, nil
}

// filePosition maps a position inside an expression to the file, exactly
// for the scalar styles where that is plain arithmetic (unquoted and quoted
// on one line, literal blocks); otherwise it gives the scalar's start.
func (p *parser) filePosition(n *yaml.Node, line, col int) (int, int) {
	switch {
	case n.Style == yaml.LiteralStyle:
		// The block's first line follows the "|" indicator line, and the
		// block's indentation is that of its first non-empty line.
		fileLine := n.Line + line
		indent := -1
		for i := n.Line; i < len(p.lines) && i < fileLine; i++ {
			if text := bytes.TrimRight(p.lines[i], " \r"); len(text) > 0 {
				indent = len(text) - len(bytes.TrimLeft(text, " "))
				break
			}
		}
		if indent >= 0 && fileLine-1 < len(p.lines) {
			return fileLine, indent + col
		}
	case line == 1 && (n.Style == 0 || n.Style == yaml.FlowStyle):
		if p.sameOnLine(n, 0, n.Value) {
			return n.Line, n.Column + col - 1
		}
	case line == 1 && (n.Style == yaml.DoubleQuotedStyle || n.Style == yaml.SingleQuotedStyle):
		if p.sameOnLine(n, 1, n.Value) {
			return n.Line, n.Column + col
		}
	}
	return n.Line, n.Column
}

// sameOnLine reports whether the value appears verbatim at the node's
// position (offset for a quote), i.e. no escapes or folding moved it.
func (p *parser) sameOnLine(n *yaml.Node, offset int, value string) bool {
	if n.Line-1 >= len(p.lines) || n.Line < 1 {
		return false
	}
	runes := []rune(string(p.lines[n.Line-1]))
	start := n.Column - 1 + offset
	if start < 0 || start > len(runes) {
		return false
	}
	return strings.HasPrefix(string(runes[start:]), strings.SplitN(value, "\n", 2)[0]) && !strings.Contains(value, "\n")
}

// noSizes leaves every size and call cost to cel-go's defaults.
type noSizes struct{}

func (noSizes) EstimateSize(cost.AstNode) *cost.SizeEstimate { return nil }
func (noSizes) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	}
	return "a document"
}
