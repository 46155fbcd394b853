package secmon

import (
	"reflect"
	"slices"
	"testing"

	"github.com/berth-project/berth/internal/secmon/landlock"
)

func TestLandlockPlan(t *testing.T) {
	if landlockMissing() != "" {
		t.Skipf("exec/open deny needs Landlock ABI 3: %s", landlockMissing())
	}
	// A kernel without BPF LSM: the denies go to Landlock.
	rs, err := parseRules([]byte(`rules:
- name: no-shell
  event: exec
  condition: (exec.path in ["/bin/sh", "/bin/bash"] || exec.path.startsWith("/usr/bin/py")) && !("allow-shell" in container.labels)
  action: deny
- name: no-etc
  event: open
  condition: file.write && (file.path.startsWith("/etc/") || "/usr/lib/x" == file.path)
  action: deny
- name: off
  event: exec
  condition: container.name == "other" && exec.path == "/bin/ls"
  action: deny
`), "r.yaml", noLSM)
	if err != nil {
		t.Fatal(err)
	}
	p, err := rs.Plan(Container{ID: "c1", Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	want := landlock.Plan{
		Exec:  []landlock.Path{{Path: "/bin/sh", Rule: "no-shell"}, {Path: "/bin/bash", Rule: "no-shell"}, {Path: "/usr/bin/py", Prefix: true, Rule: "no-shell"}},
		Write: []landlock.Path{{Path: "/etc/", Prefix: true, Rule: "no-etc"}, {Path: "/usr/lib/x", Rule: "no-etc"}},
	}
	if !reflect.DeepEqual(p.Landlock, want) {
		t.Fatalf("plan\n%+v\nwant\n%+v", p.Landlock, want)
	}
	for _, n := range []string{"execve", "openat"} {
		if _, known := sysNumbers[n]; known && !slices.Contains(p.Syscalls, n) {
			t.Errorf("%s not reported for the deny alerts: %v", n, p.Syscalls)
		}
	}
	// The label lifts the shell rule for one container.
	p, err = rs.Plan(Container{ID: "c2", Labels: map[string]string{"allow-shell": ""}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Landlock.Exec) != 0 || len(p.Landlock.Write) != 2 {
		t.Fatalf("labelled plan %+v", p.Landlock)
	}
	v, err := p.Landlock.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := landlock.Parse(v)
	if err != nil || !reflect.DeepEqual(*back, p.Landlock) {
		t.Fatalf("round trip %v: %+v", err, back)
	}
}
