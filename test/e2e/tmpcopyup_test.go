package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
)

// TestTmpfsCopyUp: a tmpfs with "tmpcopyup" (what Podman sends for
// --tmpfs) starts with a copy of the image directory it covers: modes
// (setuid included), owners, symlinks as symlinks (never followed), file
// contents and nested directories; writes land in the tmpfs, not in the
// image (runc mounts.bats "runc run [tmpcopyup]").
func TestTmpfsCopyUp(t *testing.T) {
	rt := newRuntime(t)
	var rootfsDir string
	out := runOut(t, rt, "copyup",
		testutil.WithShell(`ls -ld /dir1/dir2 | cut -c1-10; cat /dir1/dir2/f; stat -c '%a %u:%g' /dir1/suid /dir1/owned; readlink /dir1/esc; `+
			`test -e /dir1/esc && echo followed; echo new > /dir1/new && cat /dir1/new; grep ' /dir1 ' /proc/self/mountinfo | grep -c tmpfs; `+
			`ls /ro; touch /ro/x 2>/dev/null || echo ro-refused`),
		testutil.WithRootfs(func(rootfs string) error {
			rootfsDir = rootfs
			d := filepath.Join(rootfs, "dir1", "dir2")
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(d, 0o777); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(d, "f"), []byte("from-image\n"), 0o644); err != nil {
				return err
			}
			suid := filepath.Join(rootfs, "dir1", "suid")
			if err := os.WriteFile(suid, []byte("#!/bin/sh\n"), 0o755); err != nil {
				return err
			}
			if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
				return err
			}
			owned := filepath.Join(rootfs, "dir1", "owned")
			if err := os.WriteFile(owned, nil, 0o600); err != nil {
				return err
			}
			if err := os.Chown(owned, 1234, 5678); err != nil {
				return err
			}
			// A symlink out of the tree: copied as a link, never read.
			if err := os.Symlink("../../../../../../etc/shadow-berth-missing", filepath.Join(rootfs, "dir1", "esc")); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Join(rootfs, "ro"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(rootfs, "ro", "kept"), nil, 0o644)
		}),
		testutil.WithMounts(
			specs.Mount{Destination: "/dir1", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup"}},
			specs.Mount{Destination: "/ro", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "ro"}}))
	want := []string{"drwxrwxrwx", "from-image", "4755 0:0", "600 1234:5678", "../../../../../../etc/shadow-berth-missing", "new", "1", "kept", "ro-refused"}
	if got := strings.Fields(strings.ReplaceAll(out, "\n", " ")); strings.Join(got, "|") != strings.Join(strings.Fields(strings.Join(want, " ")), "|") {
		t.Errorf("in the container:\n got %q\nwant %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(rootfsDir, "dir1", "new")); err == nil {
		t.Errorf("a write to the tmpcopyup tmpfs reached the image directory")
	}

	// A tmpfs too small for what it covers fails the create, naming it,
	// and leaves nothing behind.
	b := testutil.NewBundle(t, testutil.WithArgs("true"),
		testutil.WithRootfs(func(rootfs string) error {
			if err := os.MkdirAll(filepath.Join(rootfs, "big"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(rootfs, "big", "blob"), make([]byte, 256<<10), 0o644)
		}),
		testutil.WithMounts(specs.Mount{Destination: "/big", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "size=64k"}}))
	id := rt.NewID("copyupfull")
	res := rt.Create(id, b.Dir)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "tmpcopyup") || !strings.Contains(res.Stderr, "/big/blob") {
		t.Errorf("create with a tmpcopyup tmpfs too small: want a failure naming tmpcopyup and /big/blob: %s", res)
	}
	checkCreateLeftNothing(t, rt, id, b)
}
