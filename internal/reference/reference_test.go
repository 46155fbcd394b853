package reference

import (
	"strings"
	"testing"
)

func TestParseNormalises(t *testing.T) {
	const d = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	cases := []struct{ in, want, familiar string }{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"},
		{"user/app", "docker.io/user/app:latest", "user/app:latest"},
		{"index.docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20", "alpine:3.20"},
		{"docker.io/alpine", "docker.io/library/alpine:latest", "alpine:latest"},
		{"localhost/app", "localhost/app:latest", "localhost/app:latest"},
		{"localhost:5000/a/b/c:v1", "localhost:5000/a/b/c:v1", "localhost:5000/a/b/c:v1"},
		{"127.0.0.1:5000/app@" + d, "127.0.0.1:5000/app@" + d, "127.0.0.1:5000/app@" + d},
		{"registry.example:5000/app:1.2@" + d, "registry.example:5000/app:1.2@" + d, "registry.example:5000/app:1.2@" + d},
		{"busybox@" + d, "docker.io/library/busybox@" + d, "busybox@" + d},
		{"[::1]:5000/app:x", "[::1]:5000/app:x", "[::1]:5000/app:x"},
		{"my_app-1.x__y", "docker.io/library/my_app-1.x__y:latest", "my_app-1.x__y:latest"},
	}
	for _, c := range cases {
		r, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := r.String(); got != c.want {
			t.Errorf("Parse(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := r.Familiar(); got != c.familiar {
			t.Errorf("Parse(%q).Familiar() = %q, want %q", c.in, got, c.familiar)
		}
		again, err := Parse(r.String())
		if err != nil || again != r {
			t.Errorf("Parse(%q) does not round-trip: %+v, %v", r.String(), again, err)
		}
	}
}

func TestParseRejectsNamingThePart(t *testing.T) {
	cases := []struct{ in, names string }{
		{"", "empty"},
		{"Busybox", `"Busybox"`},
		{"busybox:", `tag ""`},
		{"busybox:-x", `tag "-x"`},
		{"busybox@sha256:abc", `digest "sha256:abc"`},
		{"busybox@md5:0123", `digest "md5:0123"`},
		{"localhost:5000/", "empty repository name"},
		{"a//b", `component ""`},
		{"reg..example/app", `registry "reg..example"`},
		{"docker.io/Foo/bar", `"Foo"`},
		{strings.Repeat("a", 300), "longer than"},
	}
	for _, c := range cases {
		_, err := Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", c.in)
			continue
		}
		if !strings.Contains(err.Error(), c.names) {
			t.Errorf("Parse(%q) error %q does not name %s", c.in, err, c.names)
		}
	}
}

func TestWithTag(t *testing.T) {
	r, _ := Parse("localhost:5000/app@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae")
	tagged, err := r.WithTag("v2")
	if err != nil || tagged.String() != "localhost:5000/app:v2" {
		t.Fatalf("WithTag: %v %v", tagged, err)
	}
	if _, err := r.WithTag("bad tag"); err == nil {
		t.Fatal("WithTag accepted a space")
	}
}

// FuzzParse checks that whatever Parse accepts is normalised, prints back to
// something Parse accepts unchanged, and never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"busybox", "localhost:5000/a/b:c", "docker.io/x@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "[::1]:1/a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.Domain == "" || r.Path == "" || (r.Tag == "" && r.Digest == "") {
			t.Fatalf("Parse(%q) = %+v: incomplete", s, r)
		}
		again, err := Parse(r.String())
		if err != nil || again != r {
			t.Fatalf("Parse(%q) = %q does not round-trip: %+v, %v", s, r.String(), again, err)
		}
	})
}
