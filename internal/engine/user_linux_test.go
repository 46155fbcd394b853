package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
	"golang.org/x/sys/unix"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
garbled:x:notanumber:0::/:/bin/sh
app:x:1000:1000:App:/home/app:/bin/sh
`

const testGroup = `root:x:0:
daemon:x:1:
www-data:x:33:
audio:x:29:app,www-data
video:x:44:app
app:x:1000:app
staff:x:50:
`

// writeRootfs makes a rootfs in a temporary directory with the given files
// (relative to its root).
func writeRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestUserResolve(t *testing.T) {
	root := writeRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	for _, tc := range []struct {
		spec string
		want execUser
	}{
		{"", execUser{UID: 0, GID: 0, Home: "/root"}},
		{"0", execUser{UID: 0, GID: 0, Home: "/root"}},
		{"root", execUser{UID: 0, GID: 0, Home: "/root"}},
		{"app", execUser{UID: 1000, GID: 1000, AdditionalGids: []uint32{29, 44}, Home: "/home/app"}},
		{"1000", execUser{UID: 1000, GID: 1000, AdditionalGids: []uint32{29, 44}, Home: "/home/app"}},
		{"www-data", execUser{UID: 33, GID: 33, AdditionalGids: []uint32{29}, Home: "/var/www"}},
		{"app:staff", execUser{UID: 1000, GID: 50, Home: "/home/app"}},
		{"app:50", execUser{UID: 1000, GID: 50, Home: "/home/app"}},
		{"1000:1234", execUser{UID: 1000, GID: 1234, Home: "/home/app"}},
		{"4242", execUser{UID: 4242, GID: 0}},
		{"4242:staff", execUser{UID: 4242, GID: 50}},
		{"4242:777", execUser{UID: 4242, GID: 777}},
	} {
		got, err := resolveUser(context.Background(), root, tc.spec)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.spec, got, tc.want)
		}
	}
}

func TestUserResolveErrors(t *testing.T) {
	root := writeRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	for _, tc := range []struct{ spec, want string }{
		{"nobody", "unable to find user nobody: no matching entries in passwd file"},
		{"garbled", "unable to find user garbled"},
		{"app:nogroup", "unable to find group nogroup: no matching entries in group file"},
		{"app:", "empty group"},
		{":app", "empty user"},
		{"4294967295", "out of range"},
		{"99999999999999999999", "out of range"},
		{"1:4294967296", "out of range"},
	} {
		_, err := resolveUser(context.Background(), root, tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: got %v, want an invalid-argument error with %q", tc.spec, err, tc.want)
		}
	}
}

func TestUserResolveNoFiles(t *testing.T) {
	root := t.TempDir()
	if u, err := resolveUser(context.Background(), root, "123:456"); err != nil || u.UID != 123 || u.GID != 456 {
		t.Fatalf("numeric user without passwd: %+v, %v", u, err)
	}
	if _, err := resolveUser(context.Background(), root, "app"); err == nil {
		t.Fatal("named user without passwd resolved")
	}
}

// TestUserResolveHostileSymlinks checks that /etc/passwd links in the image
// are resolved inside the rootfs, never on the host.
func TestUserResolveHostileSymlinks(t *testing.T) {
	// A host file with a user that must not be seen.
	host := t.TempDir()
	hostPasswd := filepath.Join(host, "passwd")
	if err := os.WriteFile(hostPasswd, []byte("hostonly:x:4321:4321::/host:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{hostPasswd, "../../../../../../../../" + hostPasswd} {
		root := writeRootfs(t, map[string]string{"etc/group": testGroup})
		if err := os.Symlink(target, filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		if _, err := resolveUser(context.Background(), root, "hostonly"); err == nil {
			t.Fatalf("symlink to %s: the host's passwd was read", target)
		}
		// The same path inside the rootfs is what the link means.
		inside := filepath.Join(root, hostPasswd)
		if err := os.MkdirAll(filepath.Dir(inside), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(inside, []byte("inner:x:77:77::/inner:/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		u, err := resolveUser(context.Background(), root, "inner")
		if err != nil || u.UID != 77 {
			t.Fatalf("symlink to %s: got %+v, %v; want the rootfs's file", target, u, err)
		}
	}
	// A directory symlink: /etc -> /host's dir.
	root := t.TempDir()
	if err := os.Symlink(host, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveUser(context.Background(), root, "hostonly"); err == nil {
		t.Fatal("symlinked /etc: the host's passwd was read")
	}
}

func TestUserResolveNotRegular(t *testing.T) {
	root := writeRootfs(t, map[string]string{"etc/group": testGroup})
	// A FIFO would block an open for reading forever.
	if err := unix.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := resolveUser(context.Background(), root, "app")
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("FIFO passwd: %v", err)
	}
	root = writeRootfs(t, nil)
	if err := os.MkdirAll(filepath.Join(root, "etc/passwd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveUser(context.Background(), root, "app"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory passwd: %v", err)
	}
}

func TestUserResolveHuge(t *testing.T) {
	root := writeRootfs(t, nil)
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: big on paper, no disk used.
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = resolveUser(context.Background(), root, "app")
	if err == nil || !strings.Contains(err.Error(), "allowed") {
		t.Fatalf("huge passwd: %v", err)
	}
	// One endless line.
	root = writeRootfs(t, map[string]string{"etc/passwd": strings.Repeat("a", maxIDLine+10)})
	if _, err := resolveUser(context.Background(), root, "app"); err == nil {
		t.Fatal("overlong line accepted")
	}
}

func TestUserResolveCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := resolveUser(ctx, t.TempDir(), "0"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func FuzzUserParsePasswd(f *testing.F) {
	f.Add(testPasswd)
	f.Add("a:b:1:2\n::::::\n#x\n")
	f.Add("x:x:4294967296:0::/:\n")
	f.Fuzz(func(t *testing.T, data string) {
		entries, err := parsePasswd(strings.NewReader(data))
		if err != nil {
			return
		}
		for _, e := range entries {
			if strings.Contains(e.Name, ":") || strings.Contains(e.Name, "\n") {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

func FuzzUserParseGroup(f *testing.F) {
	f.Add(testGroup)
	f.Add("g:x:1:a,,b, c\n")
	f.Add("g::-1:\n")
	f.Fuzz(func(t *testing.T, data string) {
		entries, err := parseGroup(strings.NewReader(data))
		if err != nil {
			return
		}
		for _, e := range entries {
			for _, m := range e.Members {
				if m == "" || strings.ContainsAny(m, ",:\n") {
					t.Fatalf("bad member %q in %+v", m, e)
				}
			}
		}
	})
}
