package admission

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, src string) *Rules {
	t.Helper()
	r, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

func evaluate(t *testing.T, r *Rules, f Facts) Result {
	t.Helper()
	res, err := r.Evaluate(context.Background(), f)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return res
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // substrings of the error
		pos  [2]int   // file line and column, 0 to skip
		expr [2]int   // expression line and column, 0 to skip
	}{
		{
			name: "undeclared field, plain scalar",
			src:  "rules:\n  - name: r1\n    expression: image.usr == \"1000\"\n",
			want: []string{`test.yaml:3:22: rule "r1": expression (line 1, column 6 of the expression): undefined field 'usr'`},
			pos:  [2]int{3, 22}, expr: [2]int{1, 6},
		},
		{
			name: "syntax error in a literal block",
			src:  "rules:\n  - name: r2\n    expression: |\n      image.user != \"\" &&\n        image.usr == \"x\"\n",
			want: []string{`test.yaml:5:14: rule "r2": expression (line 2, column 8 of the expression): undefined field 'usr'`},
			pos:  [2]int{5, 14}, expr: [2]int{2, 8},
		},
		{
			name: "double-quoted",
			src:  "rules:\n  - name: r3\n    expression: \"nosuch.thing\"\n",
			want: []string{`test.yaml:3:18: rule "r3"`, "undeclared reference to 'nosuch'"},
		},
		{
			name: "not bool",
			src:  "rules:\n  - name: r4\n    expression: image.user\n",
			want: []string{`test.yaml:3:17: rule "r4": expression: must produce a bool, not string`},
		},
		{
			name: "messageExpression not string",
			src:  "rules:\n  - name: r5\n    expression: 'true'\n    messageExpression: 1 + 1\n",
			want: []string{`rule "r5": messageExpression: must produce a string, not int`},
		},
		{
			name: "matchConditions list entry",
			src:  "rules:\n  - name: r6\n    matchConditions:\n      - name: c\n        expression: image.tag.size()\n    expression: 'true'\n",
			want: []string{`test.yaml:5:21: rule "r6": matchConditions[0].expression: must produce a bool`},
		},
		{
			name: "wrong argument types to a helper",
			src:  "rules:\n  - name: r7\n    expression: versionInRange(1, \"<2\")\n",
			want: []string{`rule "r7"`, "no matching overload for 'versionInRange'"},
		},
		{"missing name", "rules:\n  - expression: 'true'\n", []string{"test.yaml:2:5: rules[0] has no name"}, [2]int{}, [2]int{}},
		{"missing expression", "rules:\n  - name: r\n", []string{`test.yaml:2:5: rule "r": no expression`}, [2]int{}, [2]int{}},
		{"empty expression", "rules:\n  - name: r\n    expression: ''\n", []string{`rule "r": expression is empty`}, [2]int{}, [2]int{}},
		{"null expression", "rules:\n  - name: r\n    expression:\n", []string{`rule "r": expression is empty`}, [2]int{}, [2]int{}},
		{"duplicate name", "rules:\n  - name: r\n    expression: 'true'\n  - name: r\n    expression: 'true'\n",
			[]string{`test.yaml:4:11: rule "r": duplicate rule name (first at line 2)`}, [2]int{}, [2]int{}},
		{"typo in a field", "rules:\n  - name: r\n    expresion: 'false'\n    expression: 'true'\n",
			[]string{`test.yaml:3:5: rule "r": unknown field "expresion"`}, [2]int{}, [2]int{}},
		{"field twice", "rules:\n  - name: r\n    expression: 'false'\n    expression: 'true'\n",
			[]string{`rule "r": field "expression" given twice`}, [2]int{}, [2]int{}},
		{"unknown top-level field", "rule:\n  - name: r\n", []string{`test.yaml:1:1: unknown field "rule"`}, [2]int{}, [2]int{}},
		{"no rules", "{}\n", []string{"no rules list"}, [2]int{}, [2]int{}},
		{"rules not a list", "rules: yes\n", []string{"rules must be a list"}, [2]int{}, [2]int{}},
		{"rule not a mapping", "rules:\n  - true\n", []string{"rules[0] must be a mapping"}, [2]int{}, [2]int{}},
		{"empty file", "", []string{"empty file"}, [2]int{}, [2]int{}},
		{"bad YAML", "rules: [\n", []string{"test.yaml: YAML:"}, [2]int{}, [2]int{}},
		{"two documents", "rules: []\n---\nrules: []\n", []string{"more than one YAML document"}, [2]int{}, [2]int{}},
		{"alias", "x: &a 'true'\nrules:\n  - name: r\n    expression: *a\n", []string{"test.yaml:1:4: YAML anchors and aliases are not allowed"}, [2]int{}, [2]int{}},
		{"alias in rule", "rules:\n  - name: r\n    expression: &a 'true'\n    message: *a\n", []string{"anchors and aliases are not allowed"}, [2]int{}, [2]int{}},
		{"tagged", "rules:\n  - name: r\n    expression: !!binary dHJ1ZQ==\n", []string{"must be a string, not tagged !!binary"}, [2]int{}, [2]int{}},
		{"matchConditions mapping", "rules:\n  - name: r\n    matchConditions: {a: b}\n    expression: 'true'\n",
			[]string{"matchConditions must be a CEL string or a list"}, [2]int{}, [2]int{}},
		{"not UTF-8", "rules:\n  - name: \xff\n", []string{"not valid UTF-8"}, [2]int{}, [2]int{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "test.yaml")
			if err == nil {
				t.Fatal("compiled, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *CompileError", err)
			}
			if tc.pos[0] != 0 && (ce.Line != tc.pos[0] || ce.Column != tc.pos[1]) {
				t.Errorf("file position %d:%d, want %d:%d", ce.Line, ce.Column, tc.pos[0], tc.pos[1])
			}
			if tc.expr[0] != 0 && (ce.ExprLine != tc.expr[0] || ce.ExprColumn != tc.expr[1]) {
				t.Errorf("expression position %d:%d, want %d:%d", ce.ExprLine, ce.ExprColumn, tc.expr[0], tc.expr[1])
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "admission.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("rules: []\n"+strings.Repeat("#", MaxRulesFileSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized file: %v", err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, []byte("rules:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Load(empty)
	if err != nil || r.Len() != 0 || r.Source() != empty {
		t.Fatalf("rules: with nothing: %v, %v", r, err)
	}
	if res := evaluate(t, r, Facts{}); !res.Allowed || len(res.Rules) != 0 {
		t.Fatalf("no rules: %+v", res)
	}
}

func TestTooManyRules(t *testing.T) {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := 0; i <= MaxRules; i++ {
		b.WriteString("  - {name: r" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + ", expression: 'true'}\n")
	}
	if _, err := Parse([]byte(b.String()), "many.yaml"); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("too many rules: %v", err)
	}
}

func TestHash(t *testing.T) {
	a := mustParse(t, "rules:\n  - {name: a, expression: 'true'}\n")
	b := mustParse(t, "rules:\n  - {name: a, expression: 'true'}\n")
	c := mustParse(t, "rules:\n  - {name: a, expression: 'false'}\n")
	if a.Hash() != b.Hash() || a.Hash() == c.Hash() || !strings.HasPrefix(a.Hash(), "sha256:") {
		t.Fatalf("hashes %s %s %s", a.Hash(), b.Hash(), c.Hash())
	}
	var nilRules *Rules
	if nilRules.Hash() != "" || nilRules.Len() != 0 {
		t.Fatal("nil rules")
	}
	res, err := nilRules.Evaluate(context.Background(), Facts{})
	if err != nil || !res.Allowed {
		t.Fatalf("nil rules: %+v %v", res, err)
	}
}

func TestMatchConditionForms(t *testing.T) {
	r := mustParse(t, `
rules:
  - name: single-string
    matchConditions: image.tag == "latest"
    expression: "false"
    message: no latest
  - name: list
    matchConditions:
      - name: has-label
        expression: '"team" in image.labels'
      - name: team-a
        expression: image.labels["team"] == "a"
    expression: image.user != ""
`)
	res := evaluate(t, r, Facts{Image: ImageFacts{Tag: "1"}})
	if !res.Allowed || res.Rules[0].Matched || res.Rules[1].Matched {
		t.Fatalf("nothing should match: %+v", res)
	}
	res = evaluate(t, r, Facts{Image: ImageFacts{Tag: "latest", Labels: map[string]string{"team": "a"}}})
	if res.Allowed || res.Rules[0].Message != "no latest" || res.Rules[1].Allowed || !res.Rules[1].Matched {
		t.Fatalf("both should refuse: %+v", res)
	}
	if res.Rules[1].Message != `failed expression: image.user != ""` {
		t.Fatalf("default message %q", res.Rules[1].Message)
	}
}

func TestEvaluationErrorsFailClosed(t *testing.T) {
	r := mustParse(t, `
rules:
  - name: missing-label
    expression: image.labels["owner"] == "me"
  - name: bad-version
    expression: '!sbom.components.exists(c, versionInRange(c.version, "<2.0"))'
  - name: bad-range
    expression: versionInRange("1.0", ">=")
  - name: null-sbom
    expression: size(sbom.components) > 0
  - name: erroring-condition
    matchConditions:
      - name: index
        expression: image.cmd[3] == "x"
    expression: "true"
  - name: fine
    expression: "true"
`)
	res := evaluate(t, r, Facts{SBOM: &SBOM{Components: []Component{{Name: "x", Version: "latest"}}}})
	if res.Allowed {
		t.Fatal("allowed despite erroring rules")
	}
	for _, rr := range res.Rules {
		if rr.Name == "fine" || rr.Name == "null-sbom" {
			if !rr.Allowed || rr.Err != nil {
				t.Errorf("fine: %+v", rr)
			}
			continue
		}
		if rr.Allowed || rr.Err == nil || !strings.Contains(rr.Err.Error(), `rule "`+rr.Name+`"`) {
			t.Errorf("%s: %+v, want refused with an error naming the rule", rr.Name, rr)
		}
		if !strings.HasPrefix(rr.String(), "rule "+rr.Name+": ") || !strings.Contains(rr.Message, "could not be evaluated: ") {
			t.Errorf("%s: String %q, Message %q", rr.Name, rr.String(), rr.Message)
		}
		t.Logf("%v", rr)
	}
	// With no SBOM, sbom.components errors rather than passing.
	res = evaluate(t, r, Facts{})
	for _, rr := range res.Rules {
		if rr.Name == "null-sbom" && (rr.Allowed || rr.Err == nil) {
			t.Errorf("null-sbom with no SBOM: %+v", rr)
		}
	}
}

func TestMessageExpressionErrorKeepsDecision(t *testing.T) {
	r := mustParse(t, `
rules:
  - name: r
    expression: "false"
    message: plain
    messageExpression: image.labels["nope"]
`)
	res := evaluate(t, r, Facts{})
	if res.Allowed || res.Rules[0].Message != "plain" || res.Rules[0].Err != nil {
		t.Fatalf("%+v", res)
	}
}

// A hostile rules file: comprehensions whose cost explodes are stopped by
// the per-expression cost limit, and a file of many such rules by the
// evaluation budget, all failing closed, in bounded time.
func TestCostLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := 0; i < 12; i++ {
		b.WriteString("  - name: nested" + string(rune('a'+i%26)) + strings.Repeat("z", i/26) + "\n")
		b.WriteString("    expression: lists.range(10000).all(i, lists.range(10000).all(j, i + j >= 0))\n")
	}
	b.WriteString("  - name: join\n    expression: lists.range(10000).map(i, string(i)).join(\",\").size() < 0\n")
	r := mustParse(t, b.String())
	start := time.Now()
	res := evaluate(t, r, Facts{})
	t.Logf("%d hostile rules evaluated in %v", r.Len(), time.Since(start))
	if res.Allowed {
		t.Fatal("allowed")
	}
	sawLimit, sawBudget := false, false
	for _, rr := range res.Rules {
		if rr.Allowed || rr.Err == nil {
			t.Fatalf("%s: %+v, want refused with an error", rr.Name, rr)
		}
		sawLimit = sawLimit || strings.Contains(rr.Err.Error(), "cost limit exceeded")
		sawBudget = sawBudget || errors.Is(rr.Err, ErrCostBudget)
	}
	if !sawLimit || !sawBudget {
		t.Fatalf("want both the per-expression limit and the budget to stop rules: %+v", res.Rules[len(res.Rules)-1])
	}
	// A rule that costs too much whatever the image is refused at load.
	_, err := Parse([]byte("rules:\n  - name: huge-range\n    expression: lists.range(100000000).size() > 0\n"), "x.yaml")
	if err == nil || !strings.Contains(err.Error(), `x.yaml:3:17: rule "huge-range": expression: costs at least`) {
		t.Fatalf("huge range: %v", err)
	}
	// lists.range is capped besides: past the cap it fails closed.
	r = mustParse(t, "rules:\n  - name: big-range\n    expression: lists.range(20000 + image.tag.size()).size() > 0\n")
	if res := evaluate(t, r, Facts{}); res.Allowed || res.Rules[0].Err == nil || !strings.Contains(res.Rules[0].Message, "exceeds maximum") {
		t.Fatalf("big range: %+v", res)
	}
}

func TestContextCancelled(t *testing.T) {
	r := mustParse(t, "rules:\n  - name: slow\n    expression: lists.range(10000).all(i, lists.range(100).all(j, i + j >= 0))\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := r.Evaluate(ctx, Facts{})
	if !errors.Is(err, context.Canceled) || res.Allowed {
		t.Fatalf("cancelled: %+v, %v", res, err)
	}
}

func TestVariables(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := mustParse(t, `
rules:
  - name: all-fields
    expression: >-
      image.reference == "r@sha256:x" && image.repository == "r" && image.tag == "" &&
      image.digest == "sha256:x" && image.created == timestamp("2026-01-02T03:04:05Z") &&
      image.created < timestamp("2027-01-01T00:00:00Z") &&
      image.labels["a"] == "b" && image.user == "u" && image.entrypoint == ["/e"] &&
      image.cmd == ["c", "d"] && "80/tcp" in image.exposedPorts && image.envNames.exists(e, e == "PATH") &&
      signatures.exists(s, s.signer == "k" && s.identity == "i" && s.issuer == "o") &&
      sbom.format == "cyclonedx" && sbom.components[0].purl == "pkg:x" && sbom.components[0].type == "library" &&
      "MIT" in sbom.components[0].licenses &&
      vulnerabilities[0].score > 9.0 && vulnerabilities[0].id == "CVE-1" &&
      compareVersions("1.10.0", "1.9.0") == 1 && sets.intersects(sbom.components[0].licenses, ["MIT", "BSD"]) &&
      "a,b".split(",").size() == 2 && [3, 1, 2].sort()[0] == 1 &&
      image.labels[?"team"].orValue("none") == "none" && image.labels[?"a"].hasValue() &&
      vulnerabilityReport
`)
	f := Facts{
		Image: ImageFacts{Reference: "r@sha256:x", Repository: "r", Digest: "sha256:x", Created: created,
			Labels: map[string]string{"a": "b"}, User: "u", Entrypoint: []string{"/e"}, Cmd: []string{"c", "d"},
			ExposedPorts: []string{"80/tcp"}, EnvNames: []string{"PATH"}},
		Signatures:          []Signature{{Signer: "k", Identity: "i", Issuer: "o"}},
		SBOM:                &SBOM{Format: "cyclonedx", Components: []Component{{Name: "n", PURL: "pkg:x", Type: "library", Licenses: []string{"MIT"}}}},
		Vulnerabilities:     []Vulnerability{{ID: "CVE-1", Score: 9.8}},
		VulnerabilityReport: true,
	}
	if res := evaluate(t, r, f); !res.Allowed {
		t.Fatalf("%+v", res.Rules)
	}
	// Empty facts: nil maps and lists are empty, not errors.
	r = mustParse(t, "rules:\n  - name: empty\n    expression: size(image.labels) == 0 && size(signatures) == 0 && size(vulnerabilities) == 0 && sbom == null && image.cmd == [] && !vulnerabilityReport\n")
	if res := evaluate(t, r, Facts{}); !res.Allowed {
		t.Fatalf("%+v", res.Rules)
	}
}

// An image's labels reach deny messages through messageExpression; control
// characters in them must not reach the terminal or forge log lines.
func TestMessagesCleaned(t *testing.T) {
	r := mustParse(t, `
rules:
  - name: label
    expression: "false"
    messageExpression: '"bad owner " + image.labels["owner"]'
`)
	f := Facts{Image: ImageFacts{Labels: map[string]string{"owner": "x\x1b]0;pwned\x07\nallowed: true \u202e" + strings.Repeat("y", 2000)}}}
	res := evaluate(t, r, f)
	msg := res.Rules[0].Message
	if strings.ContainsAny(msg, "\x1b\x07\n\u202e") || len(msg) > maxMessageLength+len("…") {
		t.Fatalf("message not cleaned: %q", msg)
	}
	if !strings.HasPrefix(msg, `bad owner x\x1b]0;pwned\x07\x0aallowed: true \u202e`) {
		t.Fatalf("message %q", msg)
	}
	for _, name := range []string{"a\nb", " padded", strings.Repeat("n", 254)} {
		if _, err := Parse([]byte("rules:\n  - name: "+strconvQuote(name)+"\n    expression: 'true'\n"), "n.yaml"); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	long := "rules:\n  - name: long\n    expression: '" + strings.Repeat("1 + ", MaxExpressionLength/4+1) + "1 > 0'\n"
	if _, err := Parse([]byte(long), "long.yaml"); err == nil || !strings.Contains(err.Error(), `rule "long"`) {
		t.Errorf("over-long expression: %v", err)
	}
}

func strconvQuote(s string) string { return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"` }
