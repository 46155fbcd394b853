package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// readStartReply gives up on a writer that never answers as soon as the
// check says so, and reads a whole answer up to EOF.
func TestReadStartReply(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	stuck := errors.New("stuck")
	calls := 0
	_, err = readStartReply(r, time.Hour, func() error {
		if calls++; calls == 3 {
			return stuck
		}
		return nil
	})
	if !errors.Is(err, stuck) {
		t.Errorf("readStartReply with a silent writer: %v, want the check's error", err)
	}

	r2, w2, _ := os.Pipe()
	defer r2.Close()
	w2.Write([]byte("0"))
	w2.Close()
	msg, err := readStartReply(r2, time.Hour, func() error { return nil })
	if err != nil || string(msg) != "0" {
		t.Errorf("readStartReply = %q, %v, want \"0\"", msg, err)
	}
}

func TestDirFrozen(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		file, content string
		frozen        bool
	}{
		{"freezer.state", "THAWED\n", false},
		{"freezer.state", "FROZEN\n", true},
		{"freezer.state", "FREEZING\n", true},
		{"cgroup.freeze", "0\n", false},
		{"cgroup.freeze", "1\n", true},
	} {
		os.Remove(filepath.Join(dir, "freezer.state"))
		os.Remove(filepath.Join(dir, "cgroup.freeze"))
		if err := os.WriteFile(filepath.Join(dir, c.file), []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, _ := dirFrozen(dir); got != c.frozen {
			t.Errorf("%s %q: frozen %v, want %v", c.file, c.content, got, c.frozen)
		}
	}
	if got, _ := dirFrozen(filepath.Join(dir, "missing")); got {
		t.Error("a missing cgroup counts as frozen")
	}
}

func TestHooksAroundPivot(t *testing.T) {
	h := specs.Hook{Path: "/bin/true"}
	for _, c := range []struct {
		hooks *specs.Hooks
		want  bool
	}{
		{nil, false},
		{&specs.Hooks{}, false},
		// Run by start and delete, from the saved state: no exchange.
		{&specs.Hooks{Poststart: []specs.Hook{h}, Poststop: []specs.Hook{h}}, false},
		{&specs.Hooks{Prestart: []specs.Hook{h}}, true},
		{&specs.Hooks{CreateRuntime: []specs.Hook{h}}, true},
		{&specs.Hooks{CreateContainer: []specs.Hook{h}}, true},
		{&specs.Hooks{StartContainer: []specs.Hook{h}}, true},
	} {
		if got := hooksAroundPivot(c.hooks); got != c.want {
			t.Errorf("hooksAroundPivot(%+v) = %v, want %v", c.hooks, got, c.want)
		}
	}
}
