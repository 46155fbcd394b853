package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
)

var lowerTime = time.Date(2010, 1, 2, 3, 4, 5, 0, time.UTC)

// lowerLayers makes two committed-looking layers, near above far, for
// the tests of what Apply reads below:
//
//	far:  usr/ usr/bin/ (0750 2:2) usr/bin/tool (4755, xattrs) usr/bin/sym -> tool
//	      etc/gone  opt/x/y  run/fifo  var/mail/ (2775 0:8, setgid)  home/user/ (0700 1000:1000)
//	near: etc/gone whited out, opt/ opaque, lib -> usr/lib, usr/lib/libc
func lowerLayers(t *testing.T) (near, far string) {
	t.Helper()
	base := t.TempDir()
	near, far = filepath.Join(base, "near"), filepath.Join(base, "far")
	var made []string
	// unix.Chmod, not os.Chmod: os.FileMode's setuid and setgid are
	// not the mode's bits.
	mkdir := func(p string, mode uint32, uid, gid int) {
		t.Helper()
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		made = append(made, p)
	}
	write := func(p, body string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		made = append(made, p)
	}
	mkdir(near, 0o755, 0, 0)
	mkdir(filepath.Join(far, "usr/bin"), 0o750, 2, 2)
	tool := filepath.Join(far, "usr/bin/tool")
	write(tool, "tool v1")
	if err := unix.Chmod(tool, 0o4755); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"user.origin": "far", "security.capability": capNetBindService()} {
		if err := unix.Setxattr(tool, k, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("tool", filepath.Join(far, "usr/bin/sym")); err != nil {
		t.Fatal(err)
	}
	mkdir(filepath.Join(far, "etc"), 0o755, 0, 0)
	write(filepath.Join(far, "etc/gone"), "whited out above")
	mkdir(filepath.Join(far, "opt/x"), 0o755, 0, 0)
	write(filepath.Join(far, "opt/x/y"), "hidden by an opaque opt above")
	mkdir(filepath.Join(far, "run"), 0o755, 0, 0)
	if err := unix.Mkfifo(filepath.Join(far, "run/fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(filepath.Join(far, "run/fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	mkdir(filepath.Join(far, "var/mail"), 0o2775, 0, 8)
	mkdir(filepath.Join(far, "home/user"), 0o700, 1000, 1000)

	mkdir(filepath.Join(near, "etc"), 0o755, 0, 0)
	if err := unix.Mknod(filepath.Join(near, "etc/gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	mkdir(filepath.Join(near, "opt"), 0o755, 0, 0)
	if err := unix.Setxattr(filepath.Join(near, "opt"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	mkdir(filepath.Join(near, "usr/lib"), 0o755, 0, 0)
	write(filepath.Join(near, "usr/lib/libc"), "libc")
	if err := os.Symlink("usr/lib", filepath.Join(near, "lib")); err != nil {
		t.Fatal(err)
	}
	// Times last: making a directory's children changes its mtime.
	for i := len(made) - 1; i >= 0; i-- {
		if err := os.Chtimes(made[i], lowerTime, lowerTime); err != nil {
			t.Fatal(err)
		}
	}
	return near, far
}

// dumpTree describes everything Apply decides about a tree: type, mode,
// owner, size, links, device, content, symlink target, xattrs, and the
// mtime where Apply set one, not the time of writing: that is after since,
// give or take the file system's coarse clock, so a minute's margin.
func dumpTree(t testing.TB, root string, since time.Time) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d nlink=%d rdev=%d", st.Mode, st.Uid, st.Gid, st.Nlink, st.Rdev)
		if mt := time.Unix(st.Mtim.Unix()); mt.Before(since.Add(-time.Minute)) {
			desc += " mtime=" + mt.UTC().Format(time.RFC3339Nano)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha256=%x", sha256.Sum256(b))
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			names := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
			sort.Strings(names)
			for _, name := range names {
				if name == "" {
					continue
				}
				v := make([]byte, 4096)
				m, _ := unix.Lgetxattr(p, name, v)
				desc += fmt.Sprintf(" %s=%x", name, v[:max(m, 0)])
			}
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

func TestApplyHardLinkToALowerLayersFile(t *testing.T) {
	requireRoot(t)
	near, far := lowerLayers(t)
	before := treeState(t, filepath.Dir(near))
	upper := t.TempDir()
	layer := tarOf(t,
		linkEnt("bin/tool-link", "usr/bin/tool"),
		linkEnt("bin/sym-link", "usr/bin/sym"),
		linkEnt("fifo-link", "run/fifo"),
		fileEnt("after", "the layer goes on", 0o644),
	)
	if _, err := Apply(context.Background(), upper, bytes.NewReader(layer), ApplyOptions{Parents: []string{near, far}}); err != nil {
		t.Fatal(err)
	}
	// The file is copied up to its own name, whole, and linked to there.
	tool, link := lstat(t, filepath.Join(upper, "usr/bin/tool")), lstat(t, filepath.Join(upper, "bin/tool-link"))
	if tool.Ino != link.Ino || tool.Nlink != 2 {
		t.Errorf("bin/tool-link and the copied-up usr/bin/tool: inodes %d and %d, nlink %d; want one file", link.Ino, tool.Ino, tool.Nlink)
	}
	if b, _ := os.ReadFile(filepath.Join(upper, "bin/tool-link")); string(b) != "tool v1" {
		t.Errorf("bin/tool-link = %q", b)
	}
	if tool.Mode != unix.S_IFREG|0o4755 || tool.Mtim.Sec != lowerTime.Unix() {
		t.Errorf("copied-up tool: mode %o mtime %d, want setuid 4755 and %d", tool.Mode, tool.Mtim.Sec, lowerTime.Unix())
	}
	for k, want := range map[string]string{"user.origin": "far", "security.capability": capNetBindService()} {
		if got := xattr(t, filepath.Join(upper, "bin/tool-link"), k); got != want {
			t.Errorf("copied-up tool %s = %x, want %x", k, got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(upper, "bin/sym-link")); err != nil || target != "tool" {
		t.Errorf("bin/sym-link -> %q, %v; want the symlink itself", target, err)
	}
	if st := lstat(t, filepath.Join(upper, "fifo-link")); st.Mode != unix.S_IFIFO|0o620 || st.Nlink != 2 {
		t.Errorf("fifo-link: mode %o nlink %d", st.Mode, st.Nlink)
	}
	// The copy's directories are the ones below, as for implied ones.
	if st := lstat(t, filepath.Join(upper, "usr/bin")); st.Mode != unix.S_IFDIR|0o750 || st.Uid != 2 || st.Mtim.Sec != lowerTime.Unix() {
		t.Errorf("usr/bin: mode %o uid %d mtime %d", st.Mode, st.Uid, st.Mtim.Sec)
	}
	if b, _ := os.ReadFile(filepath.Join(upper, "after")); string(b) != "the layer goes on" {
		t.Errorf("after = %q", b)
	}
	if after := treeState(t, filepath.Dir(near)); !reflect.DeepEqual(before, after) {
		t.Errorf("the layers below changed:\nbefore %v\nafter  %v", before, after)
	}

	// What the merged view does not show cannot be linked to.
	for _, tc := range []struct{ target, why string }{
		{"etc/gone", "whited out in near"},
		{"opt/x/y", "under near's opaque opt"},
		{"lib/libc", "through near's symlink lib"},
		{"usr/bin", "a directory"},
		{"nothing", "nowhere"},
	} {
		err := apply(t, t.TempDir(), tarOf(t, linkEnt("h", tc.target)))
		// apply gives no Parents: nothing is below.
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"h"`) {
			t.Errorf("link to %s with nothing below: %v", tc.target, err)
		}
		_, err = Apply(context.Background(), t.TempDir(), bytes.NewReader(tarOf(t, linkEnt("h", tc.target))), ApplyOptions{Parents: []string{near, far}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"h"`) {
			t.Errorf("link to %s (%s): %v, want a hostile-entry error naming h", tc.target, tc.why, err)
		}
	}
	if after := treeState(t, filepath.Dir(near)); !reflect.DeepEqual(before, after) {
		t.Errorf("the layers below changed:\nbefore %v\nafter  %v", before, after)
	}
}

// laterLayers are layers whose upper directory depends on the layers
// below (lowerLayers): implied directories, hard links to their files, and
// the entries that interact with both.
var laterLayers = map[string]func(t *testing.T) []byte{
	"implied directories": func(t *testing.T) []byte {
		return tarOf(t,
			fileEnt("home/user/.wh.bashrc", "", 0o644),
			fileEnt("opt/x/.wh.y", "", 0o644),             // hidden below by near's opaque opt
			fileEnt("lib/.wh.w", "", 0o644),               // a symlink below
			fileEnt("var/mail/new/deep/.wh.x", "", 0o644), // new and deep inherit var/mail's setgid group
			fileEnt("var/mail/new/deep/f", "f", 0o644),
			dirEnt("var/mail/new/hdr/", 0o700), // a header inside a setgid implied directory
		)
	},
	"implied, then set by a header": func(t *testing.T) []byte {
		return tarOf(t,
			fileEnt("usr/bin/.wh.old", "", 0o644),
			withOwner(dirEnt("usr/", 0o700), 9, 9),
			fileEnt("var/mail/a/.wh.b", "", 0o644),
			withOwner(dirEnt("var/mail/", 0o755), 3, 3), // var/mail/a was made when var/mail was setgid
		)
	},
	"implied, removed and made again": func(t *testing.T) []byte {
		return tarOf(t,
			fileEnt("usr/bin/.wh.x", "", 0o644),
			fileEnt("usr/.wh.bin", "", 0o644),
			dirEnt("usr/bin/", 0o711),
			fileEnt("etc/.wh.a", "", 0o644),
			fileEnt("etc/.wh..wh..opq", "", 0o644),
			fileEnt("etc/sub/.wh.z", "", 0o644), // below an opaque etc: nothing below shows
			fileEnt("home/user/.wh.x", "", 0o644),
			fileEnt("home/user", "a file now", 0o644),
		)
	},
	"hard links to files below, among implied directories": func(t *testing.T) []byte {
		return tarOf(t,
			fileEnt("var/mail/before/.wh.q", "", 0o644),
			linkEnt("bin/tool-link", "usr/bin/tool"),
			linkEnt("bin/sym-link", "usr/bin/sym"),
			fileEnt("var/mail/after/.wh.q", "", 0o644),
			fileEnt("home/user/.wh.x", "", 0o644),
		)
	},
	"no implied directories": func(t *testing.T) []byte {
		return tarOf(t, dirEnt("srv/", 0o755), fileEnt("srv/f", "f", 0o644), fileEnt("srv/.wh.g", "", 0o644))
	},
}

// TestApplyParentsLaterMakesTheSameTree applies each layer of laterLayers
// twice, with Parents and with ParentsLater, and compares everything.
func TestApplyParentsLaterMakesTheSameTree(t *testing.T) {
	requireRoot(t)
	for name, layer := range laterLayers {
		t.Run(name, func(t *testing.T) {
			near, far := lowerLayers(t)
			start := time.Now()
			eager, later := t.TempDir(), t.TempDir()
			l := layer(t)
			if _, err := Apply(context.Background(), eager, bytes.NewReader(l), ApplyOptions{Parents: []string{near, far}}); err != nil {
				t.Fatal(err)
			}
			calls := 0
			_, err := Apply(context.Background(), later, bytes.NewReader(l), ApplyOptions{ParentsLater: func(context.Context) ([]string, error) {
				calls++
				return []string{near, far}, nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			if want := 1; name == "no implied directories" {
				if calls != 0 {
					t.Errorf("ParentsLater called %d times for a layer that needs nothing below", calls)
				}
			} else if calls != want {
				t.Errorf("ParentsLater called %d times, want %d", calls, want)
			}
			a, b := dumpTree(t, eager, start), dumpTree(t, later, start)
			for p := range a {
				if a[p] != b[p] {
					t.Errorf("%s:\nwith Parents      %s\nwith ParentsLater %s", p, a[p], b[p])
				}
			}
			for p := range b {
				if _, ok := a[p]; !ok {
					t.Errorf("%s only with ParentsLater: %s", p, b[p])
				}
			}
		})
	}
}

// TestApplyParentsLaterIsTheSetgidCaseItClaims pins what the comparison
// above relies on: the setgid, header and opaque cases really are made
// as the layers below say.
func TestApplyParentsLaterIsTheSetgidCaseItClaims(t *testing.T) {
	requireRoot(t)
	near, far := lowerLayers(t)
	upper := t.TempDir()
	if _, err := Apply(context.Background(), upper, bytes.NewReader(laterLayers["implied directories"](t)), ApplyOptions{ParentsLater: func(context.Context) ([]string, error) {
		return []string{near, far}, nil
	}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		mode     uint32
		uid, gid uint32
	}{
		{"home/user", unix.S_IFDIR | 0o700, 1000, 1000},
		{"var/mail", unix.S_IFDIR | 0o2775, 0, 8},
		{"var/mail/new", unix.S_IFDIR | 0o2755, 0, 8},
		{"var/mail/new/deep", unix.S_IFDIR | 0o2755, 0, 8},
		{"opt/x", unix.S_IFDIR | 0o755, 0, 0},
		{"lib", unix.S_IFDIR | 0o755, 0, 0},
	} {
		if st := lstat(t, filepath.Join(upper, tc.name)); st.Mode != tc.mode || st.Uid != tc.uid || st.Gid != tc.gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", tc.name, st.Mode, st.Uid, st.Gid, tc.mode, tc.uid, tc.gid)
		}
	}
}

// TestApplyParentsLaterWaitsOnlyWhereItMust: a layer with implied
// directories is extracted whole before Apply asks for the layers below;
// one with a hard link to a file below waits at the link; a failure to
// get them fails the layer.
func TestApplyParentsLaterWaitsOnlyWhereItMust(t *testing.T) {
	requireRoot(t)
	near, far := lowerLayers(t)
	for _, tc := range []struct {
		name            string
		layer           []byte
		present, absent []string // when ParentsLater is called
	}{
		{"implied directories", tarOf(t,
			fileEnt("home/user/.wh.x", "", 0o644), fileEnt("home/user/f", "f", 0o644), fileEnt("last", "l", 0o644),
		), []string{"home/user/f", "last"}, nil},
		{"hard link below", tarOf(t,
			fileEnt("first", "f", 0o644), linkEnt("link", "usr/bin/tool"), fileEnt("last", "l", 0o644),
		), []string{"first"}, []string{"link", "last"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upper := t.TempDir()
			_, err := Apply(context.Background(), upper, bytes.NewReader(tc.layer), ApplyOptions{ParentsLater: func(context.Context) ([]string, error) {
				for _, p := range tc.present {
					if _, err := os.Lstat(filepath.Join(upper, p)); err != nil {
						t.Errorf("%s not extracted before waiting for the layers below: %v", p, err)
					}
				}
				for _, p := range tc.absent {
					if _, err := os.Lstat(filepath.Join(upper, p)); err == nil {
						t.Errorf("%s extracted before the layers below it needs", p)
					}
				}
				return []string{near, far}, nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			parentFailed := errors.New("the layer below failed")
			_, err = Apply(context.Background(), t.TempDir(), bytes.NewReader(tc.layer), ApplyOptions{ParentsLater: func(context.Context) ([]string, error) {
				return nil, parentFailed
			}})
			if !errors.Is(err, parentFailed) {
				t.Errorf("Apply when the layers below fail: %v", err)
			}
		})
	}
}
