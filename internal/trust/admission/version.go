package admission

import (
	"fmt"
	"strings"
)

// Versions in SBOMs come from every ecosystem (semver, openssl's 1.1.1n,
// Debian epochs, Alpine revisions), so the comparison is semver's made
// lenient rather than a strict semver parser that would refuse half of them:
//
//   - an optional epoch "N:" compares first (Debian, RPM);
//   - an optional leading "v" is ignored, and so is "+build" metadata;
//   - the core is any number of dot-separated parts, missing parts count as 0
//     (3.0 == 3.0.0); each part is a number, optionally followed by letters
//     that compare after it (1.1.1 < 1.1.1a < 1.1.1n < 1.1.2);
//   - anything after the first "-" is a pre-release compared as semver §11
//     does, and a pre-release sorts before its release (1.0.0-rc.1 < 1.0.0).
//     This makes distribution revisions such as 3.0.7-r0 sort before 3.0.7:
//     a range that ends at "<3.0.7" then still includes them, which errs on
//     the side of refusing.
//
// A version that does not fit (empty, or a core part without a leading
// digit) is an error, which fails the rule closed.
type version struct {
	epoch string // digits, without leading zeros
	core  []corePart
	pre   []string
}

type corePart struct {
	num    string // digits, without leading zeros
	suffix string
}

func parseVersion(s string) (version, error) {
	var v version
	orig := s
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, ':'); i >= 0 {
		if !allDigits(s[:i]) {
			return v, fmt.Errorf("version %q: epoch %q is not a number", orig, s[:i])
		}
		v.epoch = trimZeros(s[:i])
		s = s[i+1:]
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		pre := s[i+1:]
		s = s[:i]
		if pre == "" {
			return v, fmt.Errorf("version %q: empty pre-release after '-'", orig)
		}
		v.pre = strings.Split(pre, ".")
	}
	if s == "" {
		return v, fmt.Errorf("version %q: no version number", orig)
	}
	for part := range strings.SplitSeq(s, ".") {
		n := 0
		for n < len(part) && part[n] >= '0' && part[n] <= '9' {
			n++
		}
		if n == 0 {
			return v, fmt.Errorf("version %q: part %q does not start with a digit", orig, part)
		}
		v.core = append(v.core, corePart{num: trimZeros(part[:n]), suffix: part[n:]})
	}
	return v, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func trimZeros(s string) string {
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "0"
	}
	return s
}

// compareNumbers compares digit strings without leading zeros of any length,
// so a hostile version cannot overflow an int.
func compareNumbers(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func compareVersion(a, b version) int {
	ea, eb := a.epoch, b.epoch
	if ea == "" {
		ea = "0"
	}
	if eb == "" {
		eb = "0"
	}
	if c := compareNumbers(ea, eb); c != 0 {
		return c
	}
	for i := 0; i < max(len(a.core), len(b.core)); i++ {
		pa, pb := corePart{num: "0"}, corePart{num: "0"}
		if i < len(a.core) {
			pa = a.core[i]
		}
		if i < len(b.core) {
			pb = b.core[i]
		}
		if c := compareNumbers(pa.num, pb.num); c != 0 {
			return c
		}
		if c := strings.Compare(pa.suffix, pb.suffix); c != 0 {
			return c
		}
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < min(len(a.pre), len(b.pre)); i++ {
		if c := comparePreIdent(a.pre[i], b.pre[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(a.pre) < len(b.pre):
		return -1
	case len(a.pre) > len(b.pre):
		return 1
	}
	return 0
}

// comparePreIdent follows semver §11.4: numeric identifiers compare
// numerically and sort before alphanumeric ones, which compare in ASCII order.
func comparePreIdent(a, b string) int {
	na, nb := allDigits(a), allDigits(b)
	switch {
	case na && nb:
		return compareNumbers(trimZeros(a), trimZeros(b))
	case na:
		return -1
	case nb:
		return 1
	}
	return strings.Compare(a, b)
}

// compareVersions is the CEL function compareVersions(a, b): -1, 0 or 1.
func compareVersions(a, b string) (int, error) {
	va, err := parseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := parseVersion(b)
	if err != nil {
		return 0, err
	}
	return compareVersion(va, vb), nil
}

// A version range is alternatives separated by "||", each a list of
// comparisons that must all hold, separated by spaces or commas:
//
//	>=3.0.0 <3.0.7
//	>=1.0.0, <1.2.0 || =2.0.0
//	1.1.1n            (no operator: equal)
//
// Operators: = == != < <= > >=; an operator may stand apart from its version
// (">= 3.0.0").
type versionRange [][]comparison

type comparison struct {
	op string
	v  version
}

const maxRangeLength = 1024

func parseRange(s string) (versionRange, error) {
	if len(s) > maxRangeLength {
		return nil, fmt.Errorf("version range longer than %d bytes", maxRangeLength)
	}
	var r versionRange
	for alt := range strings.SplitSeq(s, "||") {
		fields := strings.FieldsFunc(alt, func(c rune) bool { return c == ' ' || c == ',' || c == '\t' })
		if len(fields) == 0 {
			return nil, fmt.Errorf("version range %q: empty alternative", s)
		}
		var all []comparison
		for i := 0; i < len(fields); i++ {
			tok := fields[i]
			op := leadingOperator(tok)
			rest := tok[len(op):]
			if rest == "" && op != "" {
				if i+1 >= len(fields) {
					return nil, fmt.Errorf("version range %q: operator %q without a version", s, op)
				}
				i++
				rest = fields[i]
				if leadingOperator(rest) != "" {
					return nil, fmt.Errorf("version range %q: two operators in a row before %q", s, rest)
				}
			}
			switch op {
			case "", "==":
				op = "="
			}
			v, err := parseVersion(rest)
			if err != nil {
				return nil, fmt.Errorf("version range %q: %w", s, err)
			}
			all = append(all, comparison{op: op, v: v})
		}
		r = append(r, all)
	}
	return r, nil
}

func leadingOperator(tok string) string {
	for _, op := range []string{">=", "<=", "==", "!=", ">", "<", "="} {
		if strings.HasPrefix(tok, op) {
			return op
		}
	}
	return ""
}

func (r versionRange) contains(v version) bool {
	for _, all := range r {
		ok := true
		for _, c := range all {
			if !c.holds(v) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (c comparison) holds(v version) bool {
	cmp := compareVersion(v, c.v)
	switch c.op {
	case "=":
		return cmp == 0
	case "!=":
		return cmp != 0
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	}
	return false
}

// versionInRange is the CEL function versionInRange(version, range).
func versionInRange(v, r string) (bool, error) {
	pv, err := parseVersion(v)
	if err != nil {
		return false, err
	}
	pr, err := parseRange(r)
	if err != nil {
		return false, err
	}
	return pr.contains(pv), nil
}
