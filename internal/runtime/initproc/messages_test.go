package initproc

import (
	"encoding/json"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestInitSpecCoversSpec fails when runtime-spec has a field of Spec or
// Linux that WireSpec neither carries (same name, same type) nor lists in
// initSpecOmits: a new field must be decided on, not lost on the way to
// the init.
func TestInitSpecCoversSpec(t *testing.T) {
	check := func(name string, full, wire reflect.Type) {
		for i := 0; i < full.NumField(); i++ {
			f := full.Field(i)
			key := name + "." + f.Name
			w, ok := wire.FieldByName(f.Name)
			switch {
			case initSpecOmits[key]:
				if ok {
					t.Errorf("%s is both carried and omitted", key)
				}
			case !ok:
				t.Errorf("%s is neither in WireSpec nor in initSpecOmits", key)
			case key == "Linux.Seccomp":
				// Sent as a flag: the init gets the compiled filter.
			case key == "Spec.Linux":
			case w.Type != f.Type || w.Tag.Get("json") != f.Tag.Get("json"):
				t.Errorf("%s: WireSpec has %s `json:%q`, runtime-spec %s `json:%q`", key, w.Type, w.Tag.Get("json"), f.Type, f.Tag.Get("json"))
			}
		}
	}
	check("Spec", reflect.TypeOf(specs.Spec{}), reflect.TypeOf(WireSpec{}))
	check("Linux", reflect.TypeOf(specs.Linux{}), reflect.TypeOf(initLinux{}))
}

// TestInitSpecRoundTrip: what the init reads after the trip through JSON is
// the spec without the omitted fields, and linux.seccomp still set.
func TestInitSpecRoundTrip(t *testing.T) {
	prio := 3
	spec := &specs.Spec{
		Version: "1.3.0",
		Process: &specs.Process{Args: []string{"sh"}, Cwd: "/", OOMScoreAdj: &prio,
			Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}},
			Rlimits:      []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 10, Soft: 5}}},
		Root:        &specs.Root{Path: "rootfs", Readonly: true},
		Hostname:    "h",
		Domainname:  "d",
		Mounts:      []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid"}}},
		Hooks:       &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/true"}}},
		Annotations: map[string]string{"a": "b"},
		Linux: &specs.Linux{
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
			Sysctl:      map[string]string{"net.ipv4.ip_forward": "1"},
			Resources:   &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &[]int64{5}[0]}},
			CgroupsPath: "/x", Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}},
			Devices:           []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}},
			Seccomp:           &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"x"}}}},
			RootfsPropagation: "rslave", MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{"/proc/sys"},
			MountLabel: "l", Personality: &specs.LinuxPersonality{Domain: specs.PerLinux32},
			TimeOffsets: map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}},
			IntelRdt:    &specs.LinuxIntelRdt{ClosID: "c"},
		},
		Windows: &specs.Windows{},
	}
	data, err := json.Marshal(&Config{Spec: spec, Wire: NewWireSpec(spec)})
	if err != nil {
		t.Fatal(err)
	}
	var got Config
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec != nil {
		t.Fatal("Spec travelled outside Wire")
	}
	want := *spec
	want.Windows = nil
	wl := *spec.Linux
	wl.Resources, wl.IntelRdt = nil, nil
	wl.Seccomp = &specs.LinuxSeccomp{}
	want.Linux = &wl
	if g := got.Wire.spec(); !reflect.DeepEqual(g, &want) {
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(&want)
		t.Fatalf("after the trip:\n%s\nwant\n%s", gj, wj)
	}
	noSeccomp := *spec
	nl := *spec.Linux
	nl.Seccomp = nil
	noSeccomp.Linux = &nl
	if NewWireSpec(&noSeccomp).spec().Linux.Seccomp != nil {
		t.Fatal("linux.seccomp appeared")
	}
	if NewWireSpec(nil).spec() != nil {
		t.Fatal("nil spec")
	}
}
