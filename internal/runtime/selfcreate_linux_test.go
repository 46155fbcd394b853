package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/oci"
)

// TestSelfCreateFailedSays: each way a self-create fails becomes the error
// the Go create gives for it.
func TestSelfCreateFailedSays(t *testing.T) {
	r := &Runtime{Root: t.TempDir()}
	for _, tc := range []struct {
		f    SelfCreateFailure
		want string
	}{
		{SelfCreateFailure{Why: SelfStageLine, Line: "E 1 unshare(CLONE_NEWPID)"}, "unshare(CLONE_NEWPID)"},
		{SelfCreateFailure{Why: SelfStageLine, Line: ""}, `init sent "" during namespace setup`},
		{SelfCreateFailure{Why: SelfReply, Line: `{"type":"error","error":"mount /m: no such file"}`}, "mount /m: no such file"},
		{SelfCreateFailure{Why: SelfReply, Line: `{"type":"hooks"}`}, `init sent "{\"type\":\"hooks\"}", expected "ready"`},
		{SelfCreateFailure{Why: SelfTimeout, Pid: 1}, "did not answer within 2m0s"},
		{SelfCreateFailure{Why: SelfNoAnswer}, "exited without saying why"},
		{SelfCreateFailure{Why: SelfMessage, Line: "--pid-file: /x: No such file or directory"}, "--pid-file: /x"},
	} {
		if err := r.SelfCreateFailed(context.Background(), "c1", tc.f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SelfCreateFailed(%+v) = %v, want %q in it", tc.f, err, tc.want)
		}
	}
}

// TestSelfCreateFailedRemovesOnlyItsOwn: the container is deleted only when
// its state names the init that failed; a create that failed on an id in
// use leaves that container alone.
func TestSelfCreateFailedRemovesOnlyItsOwn(t *testing.T) {
	r := &Runtime{Root: t.TempDir()}
	// A pid no process has, with a start time no process has had, and
	// a "cgroup" that is a missing directory of the test's: delete
	// touches nothing of the host's.
	p := &persisted{ID: "berth-unit-selffail", Bundle: "/b", Pid: 1 << 22, StartTime: 1, Spec: oci.DefaultSpec(),
		CgroupPaths: map[string]string{"pids": filepath.Join(t.TempDir(), "cgroup")}}
	if err := os.Mkdir(filepath.Join(r.Root, p.ID), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.save(p); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(r.Root, p.ID, stateFile)
	r.SelfCreateFailed(context.Background(), p.ID, SelfCreateFailure{Why: SelfMessage, Line: "x", Pid: p.Pid + 1})
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("another init's failure removed the container: %v", err)
	}
	r.SelfCreateFailed(context.Background(), p.ID, SelfCreateFailure{Why: SelfMessage, Line: "x", Pid: p.Pid})
	if _, err := os.Stat(filepath.Join(r.Root, p.ID)); !os.IsNotExist(err) {
		t.Fatalf("its own init's failure left the container: %v", err)
	}
}
