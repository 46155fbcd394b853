package main

import (
	"bufio"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
)

// Result of one TAP test point.
type Result int

const (
	Pass Result = iota
	Fail
	Skip
	Todo // "not ok ... # TODO": an expected failure, not counted as one
)

func (r Result) String() string {
	return [...]string{"ok", "not ok", "skip", "todo"}[r]
}

// Point is one TAP test point, with the YAML diagnostic block after it.
type Point struct {
	Num    int
	Result Result
	Desc   string
	YAML   string         // the block's text, unindented
	Diag   map[string]any // the block parsed as JSON (tap-go writes JSON), or nil
	Inner  *TAP           // runtimetest's own TAP, when the diagnostic carries it in "stdout"
	Parent string         // description of the outer point, for inner points
	Notes  []string       // "# ..." diagnostic lines after the point
}

// TAP is one parsed TAP stream.
type TAP struct {
	Points  []*Point
	Plan    int // -1 when there is no plan line
	Orphans []Orphan
}

// Orphan is a YAML block not attached to a test point. Several validation
// programs (hooks, poststart, prestart, ...) have no test points at all and
// report a failure only this way.
type Orphan struct {
	YAML string
	Diag map[string]any
}

// Error is the orphan's "error" field, or "" when it has none.
func (o Orphan) Error() string {
	if s, ok := o.Diag["error"].(string); ok {
		return s
	}
	return ""
}

var pointRE = regexp.MustCompile(`^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*)$`)

// ParseTAP parses a TAP stream as tap-go writes it, as the validation
// programs use it. A YAML block normally follows its test point, but
// util.RuntimeInsideValidate writes its block (runtimetest's output, with
// "stdout" and "stderr") before the point, and some programs write a
// diagnostic before the t.Fail it explains. So a block belongs to the point
// before it unless it carries "stdout" or that point already has a block;
// then it waits for the next point. Blocks no point takes are orphans.
// Several streams in one output (a program that calls tap.New twice) add up
// their plans.
func ParseTAP(text string) *TAP {
	t := &TAP{Plan: -1}
	var last *Point
	attached := false // last already has its block
	var pending []Orphan
	var block []string
	inBlock := false
	attach := func(p *Point, raw string, diag map[string]any) {
		p.YAML, p.Diag = raw, diag
		if out, ok := diag["stdout"].(string); ok && strings.Contains(out, "TAP version") {
			p.Inner = ParseTAP(out)
			for _, ip := range p.Inner.All() {
				if ip.Parent == "" {
					ip.Parent = p.Desc
				}
			}
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		if inBlock {
			if strings.TrimSpace(line) == "..." {
				inBlock = false
				raw := strings.Join(block, "\n")
				var diag map[string]any
				if json.Unmarshal([]byte(raw), &diag) != nil {
					diag = nil
				}
				_, carriesOutput := diag["stdout"]
				if last != nil && !attached && !carriesOutput {
					attach(last, raw, diag)
					attached = true
				} else {
					pending = append(pending, Orphan{YAML: raw, Diag: diag})
				}
				continue
			}
			block = append(block, strings.TrimPrefix(line, "  "))
			continue
		}
		if strings.TrimSpace(line) == "---" && strings.HasPrefix(line, " ") {
			inBlock, block = true, nil
			continue
		}
		if strings.HasPrefix(line, "1..") {
			if n, err := strconv.Atoi(strings.Fields(line[3:] + " ")[0]); err == nil {
				if t.Plan < 0 {
					t.Plan = 0
				}
				t.Plan += n
			}
			continue
		}
		if note, ok := strings.CutPrefix(line, "# "); ok {
			if last != nil {
				last.Notes = append(last.Notes, note)
			}
			continue
		}
		m := pointRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		p := &Point{Result: Pass, Desc: m[3]}
		p.Num, _ = strconv.Atoi(m[2])
		if m[1] == "not ok" {
			p.Result = Fail
		}
		if d, ok := strings.CutPrefix(p.Desc, "# "); ok {
			// "ok 3 # SKIP reason" / "not ok 3 # TODO reason"
			switch {
			case strings.HasPrefix(strings.ToUpper(d), "SKIP"):
				p.Result, p.Desc = Skip, strings.TrimSpace(d[4:])
			case strings.HasPrefix(strings.ToUpper(d), "TODO"):
				p.Result, p.Desc = Todo, strings.TrimSpace(d[4:])
			}
		} else if i := strings.Index(strings.ToUpper(p.Desc), " # TODO"); i >= 0 && p.Result == Fail {
			p.Result, p.Desc = Todo, strings.TrimSpace(p.Desc[:i])
		} else if i := strings.Index(strings.ToUpper(p.Desc), " # SKIP"); i >= 0 {
			p.Result, p.Desc = Skip, strings.TrimSpace(p.Desc[:i])
		}
		attached = false
		if len(pending) > 0 {
			// The last block waiting is this point's; any before it
			// are orphans.
			o := pending[len(pending)-1]
			t.Orphans = append(t.Orphans, pending[:len(pending)-1]...)
			pending = nil
			attach(p, o.YAML, o.Diag)
			attached = true
		}
		t.Points = append(t.Points, p)
		last = p
	}
	t.Orphans = append(t.Orphans, pending...)
	return t
}

// Counts of a TAP stream's own points (not the inner ones).
type Counts struct{ Pass, Fail, Skip, Todo int }

func (t *TAP) Counts() Counts {
	var c Counts
	for _, p := range t.Points {
		switch p.Result {
		case Pass:
			c.Pass++
		case Fail:
			c.Fail++
		case Skip:
			c.Skip++
		case Todo:
			c.Todo++
		}
	}
	return c
}

// ErrorOrphans are the orphan blocks that carry an error.
func (t *TAP) ErrorOrphans() []Orphan {
	var out []Orphan
	for _, o := range t.Orphans {
		if o.Error() != "" {
			out = append(out, o)
		}
	}
	return out
}

// All returns the points with the inner ones after their outer point.
func (t *TAP) All() []*Point {
	var out []*Point
	for _, p := range t.Points {
		out = append(out, p)
		if p.Inner != nil {
			out = append(out, p.Inner.All()...)
		}
	}
	return out
}

// Key identifies a point across runtimes: its description (inner points
// prefixed with the outer one's), with run-specific parts normalized.
func (p *Point) Key(n *Normalizer) string {
	if p.Parent != "" {
		return n.Norm(p.Parent) + " :: " + n.Norm(p.Desc)
	}
	return n.Norm(p.Desc)
}

// Normalizer replaces what differs between runs and runtimes (container
// ids, temporary bundle paths, runtime names) so results can be compared.
type Normalizer struct{ repl *strings.Replacer }

var (
	uuidRE   = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	randomRE = regexp.MustCompile(`([a-z])[0-9]{6,}`) // os.MkdirTemp names: ocitest123456789, target123456789

)

func NewNormalizer(labels ...string) *Normalizer {
	var pairs []string
	for _, l := range labels {
		pairs = append(pairs, "tmp-"+l, "tmp-RUNTIME", "runtime-"+l, "runtime-RUNTIME")
	}
	return &Normalizer{repl: strings.NewReplacer(pairs...)}
}

func (n *Normalizer) Norm(s string) string {
	s = uuidRE.ReplaceAllString(s, "<id>")
	s = randomRE.ReplaceAllString(s, "$1<n>")
	return n.repl.Replace(s)
}
