package cgroups

import (
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups/systemd"
)

func TestParseSystemdPath(t *testing.T) {
	for _, tc := range []struct {
		in                  string
		slice, prefix, name string
		wantCgroup          string // the scope's cgroup below /sys/fs/cgroup
	}{
		{"", "", "berth", "c1", "/system.slice/berth-c1.scope"},
		{"system.slice:docker:c1", "system.slice", "docker", "c1", "/system.slice/docker-c1.scope"},
		// kubelet's form for a Burstable pod, as the CRI server passes it.
		{"kubepods-burstable-pod0a1b.slice:cri-berth:c1", "kubepods-burstable-pod0a1b.slice", "cri-berth", "c1",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b.slice/cri-berth-c1.scope"},
		{"machine.slice:libpod:abc_1.2", "machine.slice", "libpod", "abc_1.2", "/machine.slice/libpod-abc_1.2.scope"},
		{":runc:c1", "", "runc", "c1", "/system.slice/runc-c1.scope"},
		{"-.slice:p:c1", "-.slice", "p", "c1", "/p-c1.scope"},
	} {
		slice, prefix, name, err := parseSystemdPath(tc.in, "c1")
		if err != nil {
			t.Errorf("parseSystemdPath(%q): %v", tc.in, err)
			continue
		}
		if slice != tc.slice || prefix != tc.prefix || name != tc.name {
			t.Errorf("parseSystemdPath(%q) = %q %q %q, want %q %q %q", tc.in, slice, prefix, name, tc.slice, tc.prefix, tc.name)
		}
		parent := "/system.slice"
		if slice != "" {
			if parent, err = systemd.ExpandSlice(slice); err != nil {
				t.Fatal(err)
			}
		}
		if got := path.Join(parent, prefix+"-"+name+".scope"); got != tc.wantCgroup {
			t.Errorf("cgroup of %q: %s, want %s", tc.in, got, tc.wantCgroup)
		}
	}
}

func TestParseSystemdPathRefuses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/berth/c1", "not of the systemd form"},
		{"a:b", "not of the systemd form"},
		{"a:b:c:d", "not of the systemd form"},
		{"system:p:c1", `slice "system"`},
		{"kube--pods.slice:p:c1", `slice "kube--pods.slice"`},
		{"-kube.slice:p:c1", `slice "-kube.slice"`},
		{"../x.slice:p:c1", `slice "../x.slice"`},
		{"system.slice::c1", "empty prefix"},
		{"system.slice:p:", "empty name"},
		{"system.slice:p/q:c1", `prefix "p/q"`},
		{"system.slice:p:../../init", `name "../../init"`},
		{"system.slice:p:..", "not a unit name"},
		{"system.slice:..:c1", "not a unit name"},
		{"system.slice:p:a b", `name "a b"`},
		{"system.slice:p:x\n", `name "x\n"`},
		{"system.slice:p:pod.slice", "not a slice"},
		{"system.slice:p:" + strings.Repeat("x", 250), "255 characters"},
	} {
		_, _, _, err := parseSystemdPath(tc.in, "c1")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "linux.cgroupsPath") {
			t.Errorf("parseSystemdPath(%q): error %v, want one naming linux.cgroupsPath and containing %q", tc.in, err, tc.want)
		}
	}
}

// FuzzParseSystemdPath: whatever it accepts names a scope below the slice's
// own cgroup, never elsewhere in the hierarchy.
func FuzzParseSystemdPath(f *testing.F) {
	for _, s := range []string{"", "system.slice:docker:c1", "kubepods-burstable-pod1.slice:cri-berth:c1",
		":p:c", "-.slice:p:c", "a:b", "x.slice:..:..", "x.slice:p:a/../b", "a-b-c.slice:p\\x2d:n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		slice, prefix, name, err := parseSystemdPath(in, "id")
		if err != nil {
			return
		}
		parent := "/system.slice"
		if slice != "" {
			if parent, err = systemd.ExpandSlice(slice); err != nil {
				t.Fatalf("accepted slice %q that ExpandSlice refuses: %v", slice, err)
			}
		}
		unit := prefix + "-" + name + ".scope"
		if strings.ContainsAny(unit, "/\x00") {
			t.Fatalf("%q: unit name %q", in, unit)
		}
		if got := path.Join(parent, unit); path.Dir(got) != path.Clean(parent) {
			t.Fatalf("%q: scope cgroup %s is not directly below %s", in, got, parent)
		}
	})
}

// TestSystemdWithoutSystemd: where PID 1 is not systemd, the driver refuses
// at once with an error that says so (and a malformed path names the field).
func TestSystemdWithoutSystemd(t *testing.T) {
	if systemd.IsRunningSystemd() {
		t.Skip("systemd is PID 1 here; the error is for hosts without it (test/vm's systemd VM tests the driver)")
	}
	_, err := New(Config{ID: "c1", CgroupsPath: "system.slice:berth:c1", Systemd: true})
	if err == nil || !strings.Contains(err.Error(), "PID 1 is not systemd") || !strings.Contains(err.Error(), "--systemd-cgroup") {
		t.Errorf("New with Systemd where PID 1 is not systemd: %v, want an error naming --systemd-cgroup and PID 1", err)
	}
	_, err = New(Config{ID: "c1", CgroupsPath: "/berth/c1", Systemd: true})
	if err == nil || !strings.Contains(err.Error(), "linux.cgroupsPath") {
		t.Errorf("New with Systemd and a cgroupfs path: %v, want an error naming linux.cgroupsPath", err)
	}
}

func TestSystemdProperties(t *testing.T) {
	props, err := systemdProperties(map[string]string{
		"org.systemd.property.TimeoutStopUSec": "uint64 123456789",
		"org.systemd.property.CollectMode":     "'inactive-or-failed'",
		"io.kubernetes.pod.name":               "not a property",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(props) != 2 || props[0].Name != "CollectMode" || props[1].Name != "TimeoutStopUSec" {
		t.Fatalf("properties %+v, want CollectMode and TimeoutStopUSec in that order", props)
	}
	if v, ok := props[1].Value.Value().(uint64); !ok || v != 123456789 {
		t.Errorf("TimeoutStopUSec = %#v, want uint64 123456789", props[1].Value.Value())
	}
	if v, ok := props[0].Value.Value().(string); !ok || v != "inactive-or-failed" {
		t.Errorf("CollectMode = %#v, want the string inactive-or-failed", props[0].Value.Value())
	}

	for _, tc := range []struct{ key, value, want string }{
		{"org.systemd.property.", "1", "not a systemd property name"},
		{"org.systemd.property.Foo/Bar", "1", "not a systemd property name"},
		{"org.systemd.property.CollectMode", "inactive-or-failed'", "not a GVariant text"},
		// godbus's parser panics on this one,
		{"org.systemd.property.Foo", "@b []", "not a GVariant text"},
		// and never returns on this one.
		{"org.systemd.property.CPUWeight", "\u1bb0", "printable ASCII"},
		{"org.systemd.property.Description", "'" + strings.Repeat("x", 5000) + "'", "at most 4096 bytes"},
	} {
		_, err := systemdProperties(map[string]string{tc.key: tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "annotations[") {
			t.Errorf("annotation %s=%s: error %v, want one naming the annotation and containing %q", tc.key, tc.value, err, tc.want)
		}
	}
}

// FuzzSystemdProperties: any annotation value gives a property or an
// error naming the annotation, never a panic.
func FuzzSystemdProperties(f *testing.F) {
	for _, s := range []string{"uint64 123456789", "'inactive-or-failed'", "true", "[1, 2]", "@as []", "<1>", "{'a': 1}", "'"} {
		f.Add("TimeoutStopUSec", s)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		key := "org.systemd.property." + name
		props, err := systemdProperties(map[string]string{key: value})
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("annotations[%q]", key)) {
				t.Fatalf("error %v does not name the annotation %q", err, key)
			}
			return
		}
		if len(props) != 1 || props[0].Name != name {
			t.Fatalf("properties %+v for %q", props, key)
		}
	})
}
