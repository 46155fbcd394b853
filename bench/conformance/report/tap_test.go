package main

import (
	"strings"
	"testing"
)

// As util.RuntimeInsideValidate writes it: runtimetest's output in a block
// before the point it belongs to.
const insideValidate = `TAP version 13
  ---
  {
    "stderr": "",
    "stdout": "TAP version 13\nok 1 - has expected hostname\nnot ok 2 - shared root propagation exposes \"/target123456789/x\"\n1..2\n"
  }
  ...
not ok 1 - check root propagation: shared
  ---
  {
    "stderr": "",
    "stdout": "TAP version 13\nok 1 - has expected hostname\n1..1\n"
  }
  ...
ok 2 - check root propagation: slave
ok 3 - kill a stopped container
  ---
  {
    "error": "exit status 1",
    "stderr": "container not running\n"
  }
  ...
# expect: c 10:229 rwm, actual: a 0:0 rwm
ok 4 # SKIP linux.sysctl not set
not ok 5 # TODO not there yet
1..5
TAP version 13
1..0
`

func TestParseTAP(t *testing.T) {
	tap := ParseTAP(insideValidate)
	if got := tap.Counts(); got != (Counts{Pass: 2, Fail: 1, Skip: 1, Todo: 1}) {
		t.Errorf("counts %+v", got)
	}
	if tap.Plan != 5 {
		t.Errorf("plan %d, want 5 (5 + 0 of the second stream)", tap.Plan)
	}
	if len(tap.Orphans) != 0 {
		t.Errorf("orphans %v", tap.Orphans)
	}
	shared, slave, kill := tap.Points[0], tap.Points[1], tap.Points[2]
	if shared.Inner == nil || shared.Inner.Counts().Fail != 1 || !strings.Contains(shared.Inner.Points[1].Desc, "shared root") {
		t.Errorf("shared: the block before it was not taken as its runtimetest output: %+v", shared.Inner)
	}
	if slave.Inner == nil || slave.Inner.Counts().Pass != 1 {
		t.Errorf("slave: inner %+v", slave.Inner)
	}
	if kill.Diag["error"] != "exit status 1" {
		t.Errorf("kill: the block after it was not its diagnostic: %q", kill.YAML)
	}
	if len(kill.Notes) != 1 || kill.Notes[0] != "expect: c 10:229 rwm, actual: a 0:0 rwm" {
		t.Errorf("kill: notes %q", kill.Notes)
	}
	if innerFails(tap) != 1 {
		t.Errorf("innerFails %d", innerFails(tap))
	}
	n := NewNormalizer("berth-runtime", "runc")
	if k := shared.Inner.Points[1].Key(n); k != `check root propagation: shared :: shared root propagation exposes "/target<n>/x"` {
		t.Errorf("key %q", k)
	}
}

// hooks, poststart and the like have no test points: a failure is a block
// with "error" on its own.
func TestParseTAPOrphan(t *testing.T) {
	tap := ParseTAP("TAP version 13\n  ---\n  {\n    \"error\": \"Hooks MUST be called in the listed order\"\n  }\n  ...\n1..0\n")
	if len(tap.Points) != 0 || tap.Plan != 0 {
		t.Fatalf("points %d plan %d", len(tap.Points), tap.Plan)
	}
	if o := tap.ErrorOrphans(); len(o) != 1 || !strings.HasPrefix(o[0].Error(), "Hooks MUST") {
		t.Errorf("orphans %+v", o)
	}
}

func TestRunStatus(t *testing.T) {
	for _, c := range []struct {
		tap  string
		rc   int
		want string
	}{
		{"TAP version 13\nok 1 - a\n1..1\n", 0, "ok"},
		{"", 1, "ERROR(rc=1)"},
		{"", 0, "ok(no TAP)"},
		{"TAP version 13\nok 1 - a\n1..2\n", 0, "PLAN(1/2)"},
		{"TAP version 13\nok 1 - a\n", 124, "TIMEOUT"},
		{"TAP version 13\nok 1 - a\n1..1\n", 1, "rc=1"},
	} {
		r := &Run{TAP: ParseTAP(c.tap), RC: c.rc}
		if got := r.Status(); got != c.want {
			t.Errorf("%q rc %d: status %s, want %s", c.tap, c.rc, got, c.want)
		}
	}
}
