package monitor

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The monitor's codec must agree with encoding/json, which the engine uses
// on the other side.

func TestConfigDecodesAsEncodingJSON(t *testing.T) {
	c := Config{
		ID: "abc", Runtime: "/usr/sbin/runc", RuntimeRoot: "/run/r", RuntimeArgs: []string{"--systemd-cgroup", "é\"\\\n<>&\u2028"},
		Bundle: "/b", Terminal: true, Stdin: true, LogPath: "/l", LogMaxSize: 1 << 40, LogMaxFiles: 3,
		StateDir: "/s", ExitFile: "/e", OOMFiles: []string{"/sys/fs/cgroup/x/memory.events"},
		OOMParentFiles: []string{"/sys/fs/cgroup/memory.events"},
		Restart:        RestartPolicy{Name: "on-failure", MaxRetries: 5}, RuntimeWait: true,
	}
	data, err := json.MarshalIndent(c, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("decodeConfig = %+v, want %+v", got, c)
	}
	for _, bad := range []string{`{"id":1}`, `{"stdin":"yes"}`, `{"logMaxSize":1.5}`, `{"oomFiles":[1]}`, `{"restart":[]}`, `[]`, `{"id":"a"} x`, strings.Repeat("[", 100)} {
		if _, err := decodeConfig([]byte(bad)); err == nil {
			t.Errorf("decodeConfig(%q) accepted it", bad)
		}
	}
}

func TestStatusEncodesAsEncodingJSON(t *testing.T) {
	for _, st := range []Status{
		{},
		{State: StateExited, Pid: 12, MonitorPid: 13, ExitCode: -1, OOMKilled: true, Error: "exec: \"nosuch\": executable file not found in $PATH\x00\xff",
			StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC), FinishedAt: time.Now(), RestartCount: 3, StoppedByUser: true},
	} {
		want, _ := json.Marshal(st)
		if got := encodeStatus(st); string(got) != string(want) {
			t.Errorf("encodeStatus =\n%s\nwant\n%s", got, want)
		}
		r := reply{Status: &st, Terminal: true, Error: "e"}
		want, _ = json.Marshal(r)
		if got := encodeReply(r); string(got) != string(want) {
			t.Errorf("encodeReply =\n%s\nwant\n%s", got, want)
		}
		v, err := parseJSON(want)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := asObject(v, "reply")
		back, err := decodeStatus(o.m["status"])
		if err != nil {
			t.Fatal(err)
		}
		var std Status
		json.Unmarshal(encodeStatus(st), &std)
		if !reflect.DeepEqual(back, std) {
			t.Errorf("decodeStatus = %+v, want %+v", back, std)
		}
	}
	if got := encodeReply(reply{}); string(got) != "{}" {
		t.Errorf("empty reply = %s", got)
	}
}

func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`{"id":"a","runtimeArgs":["x"],"restart":{"name":"always","maxRetries":2}}`))
	f.Add([]byte(`"\ud83d\ude00\u00e9\n"`))
	f.Add([]byte(`[1, -0.5e+3, true, false, null, {}]`))
	f.Add([]byte(`"\ud800x"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseJSON(data)
		if (err == nil) != json.Valid(data) {
			t.Fatalf("parseJSON(%q) error %v, json.Valid %v", data, err, json.Valid(data))
		}
		var std any
		if err != nil || json.Unmarshal(data, &std) != nil {
			return // invalid, or a number beyond float64 (not ours to read)
		}
		if !sameJSON(v, std) {
			t.Fatalf("parseJSON(%q) = %#v, encoding/json %#v", data, v, std)
		}
		// Strings encode back as encoding/json does.
		if s, ok := v.(string); ok {
			want, _ := json.Marshal(s)
			if got := appendJSONString(nil, s); string(got) != string(want) {
				t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
			}
		}
	})
}

// sameJSON compares a parseJSON value with an encoding/json one.
func sameJSON(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			if !sameJSON(v, bm[k]) {
				return false
			}
		}
		return true
	case []any:
		ba, ok := b.([]any)
		if !ok || len(a) != len(ba) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], ba[i]) {
				return false
			}
		}
		return true
	case jsonNumber:
		var f float64
		return json.Unmarshal([]byte(a), &f) == nil && reflect.DeepEqual(f, b)
	default:
		return reflect.DeepEqual(a, b)
	}
}
