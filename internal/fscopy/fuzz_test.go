package fscopy

import (
	"path"
	"strings"
	"testing"
)

// FuzzDecide checks that whatever paths the user gives, a copy lands in
// a clean absolute directory under a single-component name.
func FuzzDecide(f *testing.F) {
	for _, s := range [][2]string{{"/app/.", "/out/"}, {"a", "/"}, {"/", "x/."}, {"../../etc", "../.."}, {"x/", "y"}} {
		f.Add(s[0], s[1], uint8(0))
	}
	f.Fuzz(func(t *testing.T, src, dst string, flags uint8) {
		sp, err := parseCopyPath(src)
		if err != nil {
			return
		}
		dp, err := parseCopyPath(dst)
		if err != nil {
			return
		}
		for _, c := range []copyPath{sp, dp} {
			if !path.IsAbs(c.clean) || path.Clean(c.clean) != c.clean {
				t.Fatalf("parse %q: %q not clean and absolute", src, c.clean)
			}
			if c.contents && !c.sep {
				t.Fatalf("contents without sep: %+v", c)
			}
		}
		tg, err := decide(sp, flags&1 != 0, dp, flags&2 != 0, flags&4 != 0)
		if err != nil {
			return
		}
		if !path.IsAbs(tg.dir) || path.Clean(tg.dir) != tg.dir {
			t.Fatalf("dir %q", tg.dir)
		}
		if tg.contents != (tg.name == "") {
			t.Fatalf("target %+v: name and contents disagree", tg)
		}
		if tg.name != "" && (strings.Contains(tg.name, "/") || tg.name == ".." || tg.name == ".") {
			t.Fatalf("name %q", tg.name)
		}
	})
}

// FuzzCleanEntry checks that an accepted tar entry name stays below the
// directory it is extracted into.
func FuzzCleanEntry(f *testing.F) {
	for _, s := range []string{"a/b", "./", "../x", "/etc/passwd", "a/../../b", "a//b/./c", ".."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		c, err := cleanEntry(name)
		if err != nil {
			return
		}
		j := path.Join("/base", c)
		if j != "/base" && !strings.HasPrefix(j, "/base/") {
			t.Fatalf("%q cleaned to %q escapes: %q", name, c, j)
		}
	})
}
