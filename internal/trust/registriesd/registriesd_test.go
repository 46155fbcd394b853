package registriesd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/reference"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRef(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLoadAndMatch(t *testing.T) {
	user, system := t.TempDir(), t.TempDir()
	write(t, user, "10-ghcr.yaml", `
docker:
  ghcr.io/team:
    use-sigstore-attachments: true
  ghcr.io/team/app:1:
    use-sigstore-attachments: false
  registry.example.com:
    sigstore: https://sigstore.example.com
`)
	write(t, user, "20-default.yaml", "default-docker:\n  lookaside: file:///var/lib/sigstore\n")
	write(t, user, "notes.txt", "not: [yaml")
	write(t, user, "empty.yaml", "")
	// containers-common's default.yaml: a null default-docker, all comments.
	write(t, user, "default.yaml", "# lookaside: for reading/writing simple signing signatures\ndocker:\n#default-docker:\n#  lookaside: https://example.com\n")
	write(t, user, "null.yaml", "~\n")
	write(t, system, "x.yaml", "docker:\n  ghcr.io: {use-sigstore-attachments: true}\n")

	c, err := Load(filepath.Join(user, "missing"), user, system)
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir != user {
		t.Errorf("Dir %q, want %q (the first that exists, and only it)", c.Dir, user)
	}
	for _, tc := range []struct {
		ref, scope string
		use, set   bool
		lookaside  string
	}{
		{"ghcr.io/team/app:2", "ghcr.io/team", true, true, ""},
		{"ghcr.io/team/sub/app:2", "ghcr.io/team", true, true, ""},
		{"ghcr.io/team/app:1", "ghcr.io/team/app:1", false, true, ""},
		// Only the most specific scope: the registry's lookaside is not merged in.
		{"registry.example.com/x/y:1", "registry.example.com", false, false, "https://sigstore.example.com"},
		{"ghcr.io/other/app:1", "default-docker", false, false, "file:///var/lib/sigstore"},
	} {
		m, ok := c.For(mustRef(t, tc.ref))
		if !ok {
			t.Errorf("%s: no match", tc.ref)
			continue
		}
		use, set := m.UseSigstoreAttachments()
		if m.Scope != tc.scope || use != tc.use || set != tc.set || m.Section.Lookaside != tc.lookaside {
			t.Errorf("%s: %+v (use %t set %t), want scope %s use %t set %t lookaside %q", tc.ref, m, use, set, tc.scope, tc.use, tc.set, tc.lookaside)
		}
		if !strings.Contains(m.Section.Source, user) {
			t.Errorf("%s: source %q", tc.ref, m.Section.Source)
		}
	}
	m, _ := c.For(mustRef(t, "ghcr.io/team/app:2"))
	if d := m.Describe(); !strings.Contains(d, "use-sigstore-attachments: true (scope ghcr.io/team, "+filepath.Join(user, "10-ghcr.yaml")+":3)") {
		t.Errorf("Describe: %s", d)
	}

	none, err := Load(filepath.Join(user, "missing"))
	if err != nil || none.Dir != "" {
		t.Fatalf("missing dir: %+v %v", none, err)
	}
	if _, ok := none.For(mustRef(t, "ghcr.io/a/b:1")); ok {
		t.Error("an empty config matched")
	}
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		body, want string
	}{
		"unknown top":      {"dokker:\n  x.io: {}\n", "f.yaml:1: unknown key \"dokker\""},
		"unknown in sec":   {"docker:\n  x.io:\n    use-sigstore: true\n", "f.yaml:3: docker scope x.io: unknown key \"use-sigstore\""},
		"not bool":         {"docker:\n  x.io:\n    use-sigstore-attachments: yes\n", "f.yaml:3: docker scope x.io: use-sigstore-attachments must be true or false, not \"yes\""},
		"repeated scope":   {"docker:\n  x.io: {}\n  x.io: {}\n", "f.yaml:3: docker: key \"x.io\" repeats line 2"},
		"repeated key":     {"default-docker:\n  lookaside: https://a\n  lookaside: https://b\n", "f.yaml:3: default-docker: key \"lookaside\" repeats line 2"},
		"not mapping":      {"- a\n- b\n", "f.yaml:1: the file must be a mapping"},
		"docker list":      {"docker: [a]\n", "f.yaml:1: docker must be a mapping"},
		"bad url":          {"default-docker:\n  lookaside: sigstore.example.com\n", "f.yaml:2: default-docker: lookaside: \"sigstore.example.com\" has no scheme"},
		"bad scheme":       {"default-docker:\n  lookaside: ftp://x\n", "scheme \"ftp\""},
		"both names":       {"default-docker:\n  lookaside: https://a\n  sigstore: https://b\n", "both lookaside and its old name sigstore"},
		"bad scope":        {"docker:\n  \"x.io/App\": {}\n", "f.yaml:2: docker scope \"x.io/App\""},
		"short scope":      {"docker:\n  library/busybox: {}\n", "not fully qualified"},
		"wildcard":         {"docker:\n  \"*.a/b\": {}\n", "*.domain"},
		"bare name":        {"docker:\n  busybox: {}\n", "docker scope \"busybox\": not fully qualified"},
		"bare junk":        {"docker:\n  \"a@b\": {}\n", "docker scope \"a@b\""},
		"two documents":    {"docker: {}\n---\ndocker: {}\n", "f.yaml:2: more than one YAML document"},
		"alias":            {"default-docker: &a {lookaside: https://a}\ndocker:\n  x.io: *a\n", "aliases are not accepted"},
		"syntax":           {"docker:\n  x.io: {\n", "f.yaml: YAML:"},
		"lookaside number": {"default-docker:\n  lookaside: 3\n", "must be a URL string"},
	} {
		var c Config
		err := c.Parse([]byte(tc.body), "f.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if len(c.Docker) != 0 || c.Default != nil {
			t.Errorf("%s: a bad file added %+v %+v", name, c.Docker, c.Default)
		}
	}
}

func TestAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", "default-docker:\n  use-sigstore-attachments: true\ndocker:\n  x.io: {}\n")
	write(t, dir, "b.yaml", "docker:\n  x.io:\n    use-sigstore-attachments: true\n")
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "b.yaml:2: docker scope \"x.io\" is already configured at "+filepath.Join(dir, "a.yaml")+":4") {
		t.Errorf("scope in two files: %v", err)
	}
	os.Remove(filepath.Join(dir, "b.yaml"))
	write(t, dir, "c.yaml", "\n\ndefault-docker: {}\n")
	_, err = Load(dir)
	if err == nil || !strings.Contains(err.Error(), "c.yaml:3: default-docker is already configured at "+filepath.Join(dir, "a.yaml")) {
		t.Errorf("default-docker in two files: %v", err)
	}
	os.Remove(filepath.Join(dir, "c.yaml"))
	write(t, dir, "d.yaml", strings.Repeat("#", MaxFileSize+1))
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("oversized: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"docker:\n  ghcr.io/team:\n    use-sigstore-attachments: true\n",
		"default-docker:\n  lookaside: https://a\n  lookaside-staging: file:///b\n",
		"docker:\n  \"*.example.com\": {sigstore: https://x}\n",
		"docker: {x.io: null}\n",
		"- a",
		"a: &x [*x]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		if err := c.Parse(b, "fuzz.yaml"); err != nil {
			if len(c.Docker) != 0 || c.Default != nil {
				t.Fatalf("error %v left %+v", err, c)
			}
			return
		}
		ref, _ := reference.Parse("ghcr.io/team/app:1")
		m, ok := c.For(ref)
		if ok {
			_ = m.Describe()
		}
	})
}

// TestNullSections: containers-common's default.yaml leaves default-docker
// empty (its keys commented out): a section with no settings.
func TestNullSections(t *testing.T) {
	var c Config
	if err := c.Parse([]byte("# comments\ndefault-docker:\n#  lookaside: https://x\ndocker:\n  x.io:\n"), "default.yaml"); err != nil {
		t.Fatal(err)
	}
	m, ok := c.For(mustRef(t, "x.io/a:1"))
	if _, set := m.UseSigstoreAttachments(); !ok || set || m.Scope != "x.io" || c.Default == nil {
		t.Errorf("%+v %t", m, ok)
	}
	if d := m.Describe(); !strings.Contains(d, "no settings (scope x.io, default.yaml:5)") {
		t.Errorf("Describe: %s", d)
	}
}
