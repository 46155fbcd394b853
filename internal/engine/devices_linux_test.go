package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/testutil"
)

func TestMappedDevices(t *testing.T) {
	ctx := context.Background()
	devs, rules, err := mappedDevices(ctx, []DeviceMapping{{"/dev/null", "/opt/null", "rw"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].Path != "/opt/null" || devs[0].Type != "c" || devs[0].Major != 1 || devs[0].Minor != 3 {
		t.Fatalf("devices = %+v, want /opt/null c 1:3", devs)
	}
	if len(rules) != 1 || !rules[0].Allow || rules[0].Access != "rw" || *rules[0].Major != 1 || *rules[0].Minor != 3 || rules[0].Type != "c" {
		t.Fatalf("rules = %+v, want allow c 1:3 rw", rules)
	}

	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ host, want string }{
		{file, "not a character or block device"},
		{"/dev/does-not-exist-berth", "no such file"},
		{t.TempDir(), "no devices under it"},
	} {
		_, _, err := mappedDevices(ctx, []DeviceMapping{{tc.host, "/dev/x", "rwm"}})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.host) || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("mappedDevices(%s) = %v, want an invalid-argument error naming it and saying %q", tc.host, err, tc.want)
		}
	}
}

// TestMappedDevicesDirectory: a directory gives every device under it, at
// the same place under the container path, and a link is followed.
func TestMappedDevicesDirectory(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(dir, "sub", "zero"), unix.S_IFCHR|0o640, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	devs, _, err := mappedDevices(context.Background(), []DeviceMapping{{filepath.Join(dir, "link"), "/dev/mine", "r"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].Path != "/dev/mine/zero" || devs[0].Minor != 5 || *devs[0].FileMode != 0o640 {
		t.Fatalf("devices = %+v, want /dev/mine/zero 1:5 mode 0640", devs)
	}
}
