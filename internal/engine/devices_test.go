package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestParseDevice(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DeviceMapping
		err  string
	}{
		{in: "/dev/fuse", want: DeviceMapping{"/dev/fuse", "/dev/fuse", "rwm"}},
		{in: "/dev/zero:/dev/z", want: DeviceMapping{"/dev/zero", "/dev/z", "rwm"}},
		{in: "/dev/zero:r", want: DeviceMapping{"/dev/zero", "/dev/zero", "r"}},
		{in: "/dev/zero:/dev/z:rw", want: DeviceMapping{"/dev/zero", "/dev/z", "rw"}},
		{in: "dev/zero", err: `host path "dev/zero": not an absolute path`},
		{in: "/dev/zero:z", err: `container path "z": not an absolute path`},
		{in: "/dev/zero:/dev/z:rx", err: `permissions "rx" for /dev/zero: want some of r, w and m`},
		{in: "/dev/zero:/dev/z:rr", err: `each once`},
		{in: "/dev/zero:/dev/z:", err: `permissions "" for /dev/zero`},
		{in: "/dev/../etc/shadow", err: "climbs with .."},
		{in: "/dev/zero:/dev", err: "cannot replace /dev"},
		{in: "/a:/b:r:x", err: "want HOST[:CONTAINER][:PERMISSIONS]"},
	} {
		got, err := ParseDevice(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ParseDevice(%q) = %v, want an invalid-argument error containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDevice(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseDevice(f *testing.F) {
	for _, s := range []string{"/dev/fuse", "/dev/zero:/dev/z:rw", "/dev/zero:r", "a:b:c:d", "/x/../y:/z", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDevice(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(d.PathOnHost, "/") || !strings.HasPrefix(d.PathInContainer, "/") || strings.Contains(d.PathInContainer, "/../") {
			t.Fatalf("ParseDevice(%q) accepted %+v", s, d)
		}
		if d.Validate() != nil {
			t.Fatalf("ParseDevice(%q) = %+v, which Validate refuses", s, d)
		}
	})
}
