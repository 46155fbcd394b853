package cgroups

import (
	"regexp"
	"testing"
)

// oldNoController is the regexp missingController replaces; the fuzz test
// holds the two to the same answers.
var oldNoController = regexp.MustCompile(`cannot set (\S+) limit: container could not join or create cgroup`)

func FuzzMissingController(f *testing.F) {
	const tail = " limit: container could not join or create cgroup"
	for _, s := range []string{
		"", "cannot set hugetlb" + tail, "x: cannot set net_cls" + tail + ": more",
		"cannot set  limit" + tail, "cannot set a b" + tail, "cannot set cannot set rdma" + tail,
		"cannot set a\tb" + tail, "cannot set é" + tail, "cannot set x limit: other",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, ok := missingController(s)
		m := oldNoController.FindStringSubmatch(s)
		if ok != (m != nil) || (ok && name != m[1]) {
			t.Fatalf("missingController(%q) = %q, %v; the regexp says %q", s, name, ok, m)
		}
	})
}
