package engine

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestResolveMountsBeforeRecord: before the record is stored (nil undo),
// resolveMounts resolves host paths and tmpfs, and gives way with
// errNeedsRecord to anything that needs the record (volumes, the image's
// VOLUMEs, image mounts); other errors are its own.
func TestResolveMountsBeforeRecord(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name    string
		binds   []string
		mounts  []Mount
		tmpfs   map[string]string
		volumes []string
		want    []string // destinations, or nil with wantErr
		wantErr error
	}{
		{name: "host paths", binds: []string{dir + ":/a:ro"}, mounts: []Mount{{Type: "bind", Source: dir, Target: "/b"}},
			tmpfs: map[string]string{"/t": ""}, want: []string{"/a", "/b", "/t"}},
		{name: "image volume covered", binds: []string{dir + ":/data"}, volumes: []string{"/data"}, want: []string{"/data"}},
		{name: "none", want: []string{}},
		{name: "named volume", binds: []string{"vol:/data"}, wantErr: errNeedsRecord},
		{name: "anonymous volume", binds: []string{"/data"}, wantErr: errNeedsRecord},
		{name: "mount volume", mounts: []Mount{{Type: "volume", Source: "v", Target: "/v"}}, wantErr: errNeedsRecord},
		{name: "image mount", mounts: []Mount{{Type: "image", Source: "busybox", Target: "/i"}}, wantErr: errNeedsRecord},
		{name: "image volume", volumes: []string{"/var/lib/x"}, wantErr: errNeedsRecord},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &record{}
			r.HostConfig.Binds, r.HostConfig.Mounts, r.HostConfig.Tmpfs = c.binds, c.mounts, c.tmpfs
			if len(c.volumes) > 0 {
				r.Config.Volumes = map[string]struct{}{}
				for _, v := range c.volumes {
					r.Config.Volumes[v] = struct{}{}
				}
			}
			ms, err := (&Engine{}).resolveMounts(context.Background(), r, nil)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, m := range ms {
				got = append(got, m.Destination)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("destinations %v, want %v", got, c.want)
			}
		})
	}
	// A bad host path is resolveMounts' own error, not a reason to wait.
	r := &record{}
	r.HostConfig.Binds = []string{dir + "/missing:/m"}
	if _, err := (&Engine{}).resolveMounts(context.Background(), r, nil); err == nil || errors.Is(err, errNeedsRecord) {
		t.Errorf("missing bind source: err = %v, want the bind's error", err)
	}
}
