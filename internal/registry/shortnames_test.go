package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/reference"
)

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRegistriesConfD: drop-ins of the system directory, then of the one
// beside the file in use, in lexical order; later keys replace earlier,
// [[registry]] tables of the same prefix are replaced, others added.
func TestRegistriesConfD(t *testing.T) {
	root, system := t.TempDir(), t.TempDir()
	main := filepath.Join(root, "registries.conf")
	writeFile(t, main, `
unqualified-search-registries = ["a.example"]
short-name-mode = "enforcing"
[[registry]]
prefix = "x.example/team"
location = "old.example/team"
[[registry]]
location = "kept.example"
blocked = true
[aliases]
"app" = "a.example/app"
"gone" = "a.example/gone"
`)
	writeFile(t, filepath.Join(system, "00-system.conf"), `
[aliases]
"sys" = "sys.example/sys"
"app" = "sys.example/app"
`)
	d := filepath.Join(root, "registries.conf.d")
	writeFile(t, filepath.Join(d, "20-later.conf"), `
unqualified-search-registries = ["c.example", "d.example"]
[aliases]
"app" = "c.example/app"
`)
	writeFile(t, filepath.Join(d, "10-first.conf"), `
unqualified-search-registries = ["b.example"]
short-name-mode = "permissive"
[[registry]]
prefix = "x.example/team"
location = "new.example/team"
insecure = true
[[registry]]
location = "added.example"
[aliases]
"gone" = ""
`)
	writeFile(t, filepath.Join(d, "notes.txt"), "not toml [")
	if err := os.Mkdir(filepath.Join(d, "sub.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := c.LoadRegistriesConfDirs([]string{main, "/nonexistent/registries.conf"}, []string{system}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.UnqualifiedSearch, ","); got != "c.example,d.example" || c.UnqualifiedSearchSource != filepath.Join(d, "20-later.conf") {
		t.Errorf("search %s from %s", got, c.UnqualifiedSearchSource)
	}
	if c.ShortNameMode != ShortNamePermissive {
		t.Errorf("short-name-mode %q", c.ShortNameMode)
	}
	if a := c.Aliases["app"]; a.Target != "c.example/app" {
		t.Errorf("alias app: %+v", a)
	}
	if a := c.Aliases["sys"]; a.Target != "sys.example/sys" {
		t.Errorf("alias sys: %+v", a)
	}
	if _, ok := c.Aliases["gone"]; ok {
		t.Error("an empty alias did not erase it")
	}
	byPrefix := map[string]Prefix{}
	for _, p := range c.Prefixes {
		if _, dup := byPrefix[p.Prefix]; dup {
			t.Errorf("prefix %s twice", p.Prefix)
		}
		byPrefix[p.Prefix] = p
	}
	if p := byPrefix["x.example/team"]; p.Location != "new.example/team" || p.Source != filepath.Join(d, "10-first.conf") {
		t.Errorf("replaced table: %+v", p)
	}
	if !byPrefix["kept.example"].Blocked || byPrefix["added.example"].Prefix == "" || len(byPrefix) != 3 {
		t.Errorf("tables: %+v", c.Prefixes)
	}
	if !c.plainHTTP("new.example") || c.plainHTTP("old.example") {
		t.Error("insecure follows the table in force")
	}

	// A bad drop-in is an error naming it, and changes nothing.
	writeFile(t, filepath.Join(d, "30-bad.conf"), "short-name-mode = \"sometimes\"\n")
	var bad Config
	err := bad.LoadRegistriesConfDirs([]string{main}, nil)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(d, "30-bad.conf")+`: short-name-mode "sometimes"`) {
		t.Errorf("bad drop-in: %v", err)
	}
	os.Remove(filepath.Join(d, "30-bad.conf"))

	// Without a main file, the drop-ins beside where it would be still count.
	var noMain Config
	if err := noMain.LoadRegistriesConfDirs([]string{filepath.Join(root, "missing", "..", "registries.conf.missing")}, nil); err != nil {
		t.Fatal(err)
	}
	var onlyD Config
	os.Rename(main, main+".off")
	if err := onlyD.LoadRegistriesConf(main); err != nil || len(onlyD.UnqualifiedSearch) != 2 {
		t.Errorf("drop-ins without the main file: %+v %v", onlyD.UnqualifiedSearch, err)
	}
}

func TestShortNames(t *testing.T) {
	r1, r2 := serve(t, nil), serve(t, nil)
	push := New(Options{})
	bb1 := pushManifest(t, push, r1+"/busybox:1", "", nil)
	pushManifest(t, push, r2+"/busybox:1", "application/vnd.berth.other", nil)
	x2 := pushManifest(t, push, r2+"/app/x:1", "", nil)
	conf := func(extra string) Config {
		t.Helper()
		var c Config
		if err := c.ParseRegistriesConf([]byte(`unqualified-search-registries = ["`+r1+`", "`+r2+`"]`+"\n"+extra), "test.conf"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	pullWith := func(c Config, name string) (reference.Reference, string, error) {
		t.Helper()
		res, err := c.ResolveName(name)
		if err != nil {
			return reference.Reference{}, "", err
		}
		cl := New(Options{Config: c})
		var got string
		ref, err := res.PullFirst(ctx, cl, func(ctx context.Context, r reference.Reference) error {
			_, desc, err := cl.Resolve(ctx, r)
			got = desc.Digest.String()
			return err
		})
		return ref, got, err
	}

	c := conf("")
	// The first registry that has it wins.
	ref, got, err := pullWith(c, "busybox:1")
	if err != nil || ref.String() != r1+"/busybox:1" || got != bb1.Digest.String() {
		t.Errorf("busybox: %s %s %v", ref, got, err)
	}
	ref, got, err = pullWith(c, "app/x:1")
	if err != nil || ref.String() != r2+"/app/x:1" || got != x2.Digest.String() {
		t.Errorf("app/x: %s %s %v", ref, got, err)
	}
	// Missing everywhere: the error names every registry tried.
	_, _, err = pullWith(c, "nothere:1")
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "tried "+r1+", "+r2) || !strings.Contains(err.Error(), "unqualified-search-registries of test.conf") {
		t.Errorf("missing: %v", err)
	}
	// A fully qualified name is not searched.
	if res, err := c.ResolveName(r2 + "/busybox:1"); err != nil || len(res.Candidates) != 1 || res.Candidates[0].Domain != r2 {
		t.Errorf("qualified: %+v %v", res, err)
	}
	// Enforcing with two registries and no alias: refused, naming both.
	enf := conf(`short-name-mode = "enforcing"`)
	if _, err := enf.ResolveName("busybox"); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "ambiguous") || !strings.Contains(err.Error(), r1+", "+r2) {
		t.Errorf("enforcing: %v", err)
	}
	// An alias settles it, in every mode; the tag is carried over.
	ali := conf(`short-name-mode = "enforcing"` + "\n[aliases]\n\"busybox\" = \"" + r2 + "/busybox\"\n")
	ref, _, err = pullWith(ali, "busybox:1")
	if err != nil || ref.String() != r2+"/busybox:1" {
		t.Errorf("alias: %s %v", ref, err)
	}
	// One search registry is never ambiguous.
	var one Config
	if err := one.ParseRegistriesConf([]byte(`short-name-mode = "enforcing"`+"\n"+`unqualified-search-registries = ["`+r2+`"]`), "one.conf"); err != nil {
		t.Fatal(err)
	}
	if ref, _, err = pullWith(one, "app/x:1"); err != nil || ref.Domain != r2 {
		t.Errorf("one registry: %s %v", ref, err)
	}
	// disabled tries them all as permissive does.
	if res, err := conf(`short-name-mode = "disabled"`).ResolveName("busybox@sha256:" + strings.Repeat("a", 64)); err != nil || len(res.Candidates) != 2 || res.Candidates[1].Digest == "" {
		t.Errorf("disabled: %+v %v", res, err)
	}
	// Without the key, short names stay Docker Hub's, aliases or not.
	var hub Config
	if err := hub.ParseRegistriesConf([]byte("[aliases]\n\"busybox\" = \""+r2+"/busybox\"\n"), "hub.conf"); err != nil {
		t.Fatal(err)
	}
	if res, err := hub.ResolveName("busybox"); err != nil || len(res.Candidates) != 1 || res.Candidates[0].String() != "docker.io/library/busybox:latest" {
		t.Errorf("no search key: %+v %v", res, err)
	}
	// The key set to [] with no alias: nowhere to look.
	var empty Config
	if err := empty.ParseRegistriesConf([]byte("unqualified-search-registries = []\n"), "empty.conf"); err != nil {
		t.Fatal(err)
	}
	if _, err := empty.ResolveName("busybox"); err == nil || !strings.Contains(err.Error(), "empty.conf sets no unqualified-search-registries") {
		t.Errorf("empty search: %v", err)
	}
	// A registry that has the name but fails the pull (a missing blob, a
	// trust refusal) stops the search, even with a "not found".
	res, _ := c.ResolveName("busybox:1")
	_, err = res.PullFirst(ctx, New(Options{Config: c}), func(ctx context.Context, r reference.Reference) error {
		if r.Domain == r1 {
			return fmt.Errorf("blob: %w", errdefs.ErrNotFound)
		}
		t.Errorf("%s pulled after %s failed", r, r1)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "tried "+r1+")") {
		t.Errorf("failed pull: %v", err)
	}
	// A registry that fails otherwise than "not found" stops the search.
	down := conf("")
	down.UnqualifiedSearch = []string{"127.0.0.1:1", r2}
	if _, _, err := pullWith(down, "app/x:1"); err == nil || errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "tried 127.0.0.1:1)") {
		t.Errorf("unreachable first registry: %v", err)
	}

	for doc, want := range map[string]string{
		`unqualified-search-registries = ["a.io/ns"]`:   "without a path",
		`unqualified-search-registries = ["https://a"]`: "no scheme",
		"[aliases]\n\"a.io/x\" = \"b.io/x\"":            "a short name",
		"[aliases]\n\"x:1\" = \"b.io/x\"":               "no tag or digest",
		"[aliases]\n\"x\" = \"y\"":                      "not fully qualified",
		"[aliases]\n\"x\" = \"b.io/x:1\"":               "has a tag or digest",
		`short-name-mode = "strict"`:                    "enforcing, permissive or disabled",
	} {
		var c Config
		if err := c.ParseRegistriesConf([]byte(doc), "t.conf"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
}

// TestHostRegistriesConf: the distribution's own files (if this host has
// them) load without error.
func TestHostRegistriesConf(t *testing.T) {
	var c Config
	if err := c.LoadRegistriesConfDirs([]string{"/etc/containers/registries.conf"}, nil); err != nil {
		t.Fatal(err)
	}
}
