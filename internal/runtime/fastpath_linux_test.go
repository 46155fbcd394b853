package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestWriteFastPath(t *testing.T) {
	paths := map[string]string{"memory": "/sys/fs/cgroup/memory/c1"}
	engine := map[string]string{"memory": "/sys/fs/cgroup/memory/berth/c1"}
	for _, tc := range []struct {
		name      string
		r         Runtime
		hooks     *specs.Hooks
		cgroups   map[string]string
		cgPath    string
		pidNS     bool
		want      bool
		wantLines []string
	}{
		{name: "plain", cgroups: paths, want: true,
			wantLines: []string{"berth-fastpath 1", "pid 42", "start 7", "cgroup /sys/fs/cgroup/memory/c1", "bound 60", "end"}},
		{name: "own pid namespace", cgroups: paths, pidNS: true, want: true,
			wantLines: []string{"berth-fastpath 1", "pid 42", "start 7", "cgroup /sys/fs/cgroup/memory/c1", "bound 60", "pidns own", "end"}},
		{name: "the engine's shared parent", cgroups: engine, cgPath: "/berth/c1", want: true,
			wantLines: []string{"berth-fastpath 1", "pid 42", "start 7", "cgroup /sys/fs/cgroup/memory/berth/c1", "parent /sys/fs/cgroup/memory/berth", "bound 60", "end"}},
		{name: "own cgroupsPath has no shared parent", cgroups: map[string]string{"memory": "/sys/fs/cgroup/memory/mine"}, cgPath: "/mine", want: true,
			wantLines: []string{"berth-fastpath 1", "pid 42", "start 7", "cgroup /sys/fs/cgroup/memory/mine", "bound 60", "end"}},
		{name: "createContainer hooks run in the init", cgroups: paths, want: true,
			hooks: &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/true"}}}},
		{name: "poststart", cgroups: paths, hooks: &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/true"}}}},
		{name: "poststop", cgroups: paths, hooks: &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/true"}}}},
		{name: "systemd", r: Runtime{SystemdCgroup: true}, cgroups: paths},
		{name: "rootless", r: Runtime{Rootless: true}, cgroups: paths},
		{name: "cgroup outside cgroupfs", cgroups: map[string]string{"memory": "/elsewhere/c1"}},
		{name: "cgroup path with ..", cgroups: map[string]string{"memory": "/sys/fs/cgroup/memory/../c1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			r.Root = t.TempDir()
			p := &persisted{ID: "c1", Pid: 42, StartTime: 7, CgroupPaths: tc.cgroups,
				Spec: &specs.Spec{Hooks: tc.hooks, Linux: &specs.Linux{CgroupsPath: tc.cgPath}}}
			if tc.pidNS {
				p.Spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.PIDNamespace}}
			}
			if err := os.Mkdir(r.dir(p.ID), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := r.writeFastPath(p); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(r.dir(p.ID), fastPathFile))
			if got := err == nil; got != tc.want {
				t.Fatalf("fastpath file written: %v, want %v", got, tc.want)
			}
			if tc.wantLines != nil && strings.Join(tc.wantLines, "\n")+"\n" != string(b) {
				t.Errorf("fastpath file:\n%s\nwant:\n%s", b, strings.Join(tc.wantLines, "\n"))
			}
			entries, _ := os.ReadDir(r.dir(p.ID))
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			want := ""
			if tc.want {
				want = fastPathFile + " " + fastPathStateFile
			}
			if strings.Join(names, " ") != want {
				t.Errorf("files in the state directory: %v, want %q (no temporary ones)", names, want)
			}
			if tc.want {
				// The template is the state in its placeholder status,
				// with the pid, as MarshalState writes it.
				tmpl, err := os.ReadFile(filepath.Join(r.dir(p.ID), fastPathStateFile))
				want, _ := MarshalState(stateOf(p, stateTemplateStatus))
				if err != nil || string(tmpl) != string(want) || !strings.Contains(string(tmpl), `"status": "\u0001"`) || !strings.Contains(string(tmpl), `"pid": 42,`) {
					t.Errorf("state template (%v):\n%s\nwant:\n%s", err, tmpl, want)
				}
			}
		})
	}
}
