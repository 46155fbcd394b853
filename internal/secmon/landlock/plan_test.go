package landlock

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"exec":[{"path":"/bin/sh"}],"write":[{"path":"/etc/","prefix":true}]}`, ""},
		{`{"exec":[{"path":"/usr/bin/py","prefix":true}]}`, ""},
		{`{"exec":[{"path":"bin/sh"}]}`, "not absolute"},
		{`{"exec":[{"path":"/etc/"}]}`, "not clean"},
		{`{"exec":[{"path":"/a/../b"}]}`, "not clean"},
		{`{"exec":[{"path":"/"}]}`, "whole container"},
		{`{"write":[{"path":"/","prefix":true}]}`, "whole container"},
		{`{"exec":[{"path":""}]}`, "empty path"},
		{`{"exec":[{"path":"/a\u0000b"}]}`, "NUL"},
		{`{"exec":[],"deny":[]}`, "unknown field"},
		{`{} {}`, "text after"},
		{`[`, "unexpected EOF"},
	} {
		_, err := Parse(c.in)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: got %v, want %q", c.in, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`{"exec":[{"path":"/bin/sh","rule":"r"}],"write":[{"path":"/etc/","prefix":true}]}`)
	f.Add(`{"exec":[{"path":"/a/./b"}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		for _, x := range append(p.Exec, p.Write...) {
			if !strings.HasPrefix(x.Path, "/") || x.Path == "/" || strings.Contains(x.Path, "/../") || strings.ContainsRune(x.Path, 0) {
				t.Fatalf("accepted %q", x.Path)
			}
		}
		if _, err := p.Encode(); err != nil {
			t.Fatalf("a parsed plan does not encode: %v", err)
		}
	})
}
