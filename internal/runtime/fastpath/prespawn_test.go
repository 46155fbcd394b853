package fastpath

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestScanNamespaces(t *testing.T) {
	const plain = unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNS
	for _, tc := range []struct {
		name, config string
		flags        uintptr
		ok           bool
	}{
		{"runc spec", `{"ociVersion":"1.3.0","process":{"args":["sh"],"env":["A=\"b\""]},"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},` +
			`"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}],"maskedPaths":["/proc/kcore"]}}`, plain, true},
		{"cgroup namespace", `{"linux":{"namespaces":[{"type":"mount"},{"type":"cgroup"}]}}`, unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP, true},
		{"spaces and order", " {\n \"linux\" : { \"namespaces\" : [ { \"path\" : \"\" , \"type\" : \"uts\" } ] } , \"ociVersion\" : \"1.0.2\" }\n", unix.CLONE_NEWUTS, true},
		{"keys in any case, as encoding/json reads them", `{"Linux":{"NameSpaces":[{"Type":"pid"}]}}`, unix.CLONE_NEWPID, true},
		{"no linux", `{"ociVersion":"1.3.0"}`, 0, true},
		{"null namespaces", `{"linux":{"namespaces":null}}`, 0, true},
		{"empty namespaces", `{"linux":{"namespaces":[]}}`, 0, true},
		{"joined by path", `{"linux":{"namespaces":[{"type":"network","path":"/proc/1/ns/net"}]}}`, 0, false},
		{"user namespace", `{"linux":{"namespaces":[{"type":"user"},{"type":"mount"}]}}`, 0, false},
		{"time namespace", `{"linux":{"namespaces":[{"type":"time"}]}}`, 0, false},
		{"unknown type", `{"linux":{"namespaces":[{"type":"bogus"}]}}`, 0, false},
		{"twice the same", `{"linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}`, 0, false},
		{"no type", `{"linux":{"namespaces":[{}]}}`, 0, false},
		{"linux twice", `{"linux":{},"linux":{"namespaces":[{"type":"pid"}]}}`, 0, false},
		{"escaped key", `{"lin\u0075x":{"namespaces":[{"type":"pid"}]}}`, 0, false},
		{"escaped type", `{"linux":{"namespaces":[{"type":"p\u0069d"}]}}`, 0, false},
		{"a key encoding/json folds to namespaces", `{"linux":{"namespaceſ":[{"type":"pid"}]}}`, 0, false},
		{"truncated", `{"linux":{"namespaces":[{"type":"pid"}`, 0, false},
		{"trailing data", `{"linux":{}} {}`, 0, false},
		{"not an object", `[]`, 0, false},
		{"empty", ``, 0, false},
		{"deep", `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, 0, false},
	} {
		flags, ok := scanNamespaces([]byte(tc.config))
		if ok != tc.ok || flags != tc.flags {
			t.Errorf("%s: scan = %#x, %v; want %#x, %v", tc.name, flags, ok, tc.flags, tc.ok)
		}
	}
}

// FuzzScanNamespaces: the scanner never reads out of bounds (run under
// the race detector or ASan for that) and never proposes namespaces other
// than those encoding/json reads from the same document: what it gets
// wrong may cost time, never a namespace.
func FuzzScanNamespaces(f *testing.F) {
	for _, seed := range []string{
		`{"linux":{"namespaces":[{"type":"pid"},{"type":"network"},{"type":"mount"}]}}`,
		`{"Linux":{"namespaces":[{"type":"cgroup","path":""}]},"process":{"args":["a\"b"]}}`,
		`{"linux":{"namespaces":[{"type":"user"}]}}`,
		`{"linux":null}`, `{}`, `{"a":[1,2.5e3,true,false,null,{"b":"\\"}]}`,
	} {
		f.Add([]byte(seed))
	}
	names := map[specs.LinuxNamespaceType]uintptr{
		specs.PIDNamespace: unix.CLONE_NEWPID, specs.NetworkNamespace: unix.CLONE_NEWNET, specs.MountNamespace: unix.CLONE_NEWNS,
		specs.IPCNamespace: unix.CLONE_NEWIPC, specs.UTSNamespace: unix.CLONE_NEWUTS, specs.CgroupNamespace: unix.CLONE_NEWCGROUP,
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		flags, ok := scanNamespaces(data)
		if !ok {
			return
		}
		var spec specs.Spec
		if err := json.Unmarshal(data, &spec); err != nil {
			return // the Go path refuses it: the stage is discarded
		}
		var want uintptr
		if spec.Linux != nil {
			for _, ns := range spec.Linux.Namespaces {
				if ns.Path != "" {
					t.Fatalf("scanner proposed %#x for a namespace joined by path: %q", flags, data)
				}
				want |= names[ns.Type]
			}
		}
		if flags != want {
			t.Fatalf("scanner proposed %#x, encoding/json reads %#x: %q", flags, want, data)
		}
	})
}

// TestLooksPlain: prespawn.c's guess whether the init can create a config
// itself turns away what needs the runtime beside the init. A wrong "yes"
// only costs a start (the init decides), a wrong "no" the Go create.
func TestLooksPlain(t *testing.T) {
	for _, tc := range []struct {
		config string
		want   bool
	}{
		{`{"process":{"terminal":false,"args":["sh"]}}`, true},
		{`{"process":{"args":["sh"]}}`, true},
		{`{"process":{"terminal" : true}}`, false},
		{`{"process":{"terminal":false},"x":{"terminal":true}}`, false},
		{`{"hooks":{"poststop":[]}}`, false},
		{`{"mounts":[{"destination":"/m","options":["rbind","idmap"]}]}`, false},
		{`{"mounts":[{"destination":"/m","uidMappings":[]}]}`, false},
		{`{"linux":{"seccomp":{"defaultAction":"SCMP_ACT_NOTIFY"}}}`, false},
		{`{"linux":{"seccomp":{"listenerPath":"/s"}}}`, false},
		{`{"process":{"terminal"`, true},
		{``, true},
	} {
		if got := looksPlain([]byte(tc.config)); got != tc.want {
			t.Errorf("looksPlain(%s) = %v, want %v", tc.config, got, tc.want)
		}
	}
}

// FuzzLooksPlain runs prespawn.c's guess over any bytes (it reads them in
// C, before the Go runtime): it must stay in bounds, and any of the
// markers it looks for makes the answer no.
func FuzzLooksPlain(f *testing.F) {
	for _, seed := range []string{
		`{"process":{"terminal":false}}`, `{"process":{"terminal" :	true}}`, `"terminal"`, `"terminal":`,
		`{"hooks":{}}`, `{"linux":{"seccomp":{"listenerPath":"/s"}}}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := looksPlain(data)
		for _, m := range []string{`"hooks"`, "idmap", `Mappings"`, "SCMP_ACT_NOTIFY", "listenerPath"} {
			if got && bytes.Contains(data, []byte(m)) {
				t.Fatalf("looksPlain(%q) = true with %s in it", data, m)
			}
		}
	})
}
