package initproc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/secmon/landlock"
)

// TestResolveDenied: what a denied path stands for, and the names
// Landlock cannot deny alone (symbolic links, hard-linked files).
func TestResolveDenied(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	for _, f := range []string{"sh", "busybox", "python3", "python3.11", "perl"} {
		if err := os.WriteFile(filepath.Join(bin, f), []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("busybox", filepath.Join(bin, "ls"))
	os.Link(filepath.Join(bin, "perl"), filepath.Join(bin, "perl5"))
	os.Symlink("bin", filepath.Join(dir, "sbin")) // an ancestor that is a link

	for _, c := range []struct {
		p      landlock.Path
		want   []string
		errHas string
	}{
		{landlock.Path{Path: bin + "/sh"}, []string{bin + "/sh"}, ""},
		{landlock.Path{Path: dir + "/sbin/sh"}, []string{bin + "/sh"}, ""},
		{landlock.Path{Path: bin + "/py", Prefix: true}, []string{bin + "/python3", bin + "/python3.11"}, ""},
		{landlock.Path{Path: bin + "/", Prefix: true}, []string{bin}, ""},
		{landlock.Path{Path: bin + "/nothere"}, []string{bin + "/nothere"}, ""},
		{landlock.Path{Path: dir + "/nodir/x"}, []string{dir + "/nodir/x"}, ""},
		{landlock.Path{Path: bin + "/ls", Rule: "r"}, nil, `rule "r" denies ` + bin + "/ls, a symbolic link to " + bin + "/busybox"},
		{landlock.Path{Path: bin + "/perl", Rule: "r"}, nil, "a file with 2 hard links"},
		{landlock.Path{Path: bin + "/sh/", Prefix: true, Rule: "r"}, nil, "is not a directory"},
	} {
		got, err := resolveDenied(c.p)
		if c.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("%+v: got %v, %v; want an error with %q", c.p, got, err, c.errHas)
			}
			continue
		}
		slices.Sort(got)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%+v: got %v, %v; want %v", c.p, got, err, c.want)
		}
	}
}

// TestBuildLandlockRefusesBadPlans: a malformed annotation fails the
// init with the annotation named; none is nothing to do.
func TestBuildLandlockRefusesBadPlans(t *testing.T) {
	rs, err := buildLandlock(map[string]string{})
	if rs != nil || err != nil {
		t.Fatalf("no annotation: %v, %v", rs, err)
	}
	_, err = buildLandlock(map[string]string{landlock.Annotation: `{"exec":[{"path":"bin/sh"}]}`})
	if err == nil || !strings.Contains(err.Error(), landlock.Annotation) || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("relative path: %v", err)
	}
}
