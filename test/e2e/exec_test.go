package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExec(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithWritableRoot(), testutil.WithArgs("sleep", "1000"))
	id := rt.NewID("exec")
	rt.Run(id, b.Dir, "-d").OK(t)

	check := func(name string, res testutil.Result, want string) {
		t.Helper()
		if res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != want {
			t.Errorf("%s: got stdout %q, want %q\n%s", name, strings.TrimSpace(res.Stdout), want, res)
		}
	}
	// The exec'd process is in the container: it sees the container's
	// hostname, not the host's.
	check("exec args", rt.Exec(id, nil, "hostname"), "runc")
	if res := rt.Exec(id, nil, "sh", "-c", "exit 5"); res.ExitCode != 5 {
		t.Errorf("exec `exit 5`: exit %d, want 5\n%s", res.ExitCode, res)
	}
	check("exec --env", rt.Exec(id, []string{"--env", "BERTH_X=from-exec"}, "sh", "-c", "echo $BERTH_X"), "from-exec")
	check("exec --cwd", rt.Exec(id, []string{"--cwd", "/home/user"}, "pwd"), "/home/user")
	check("exec --user", rt.Exec(id, []string{"--user", "1000:1000"}, "sh", "-c",
		`grep -E '^(Uid|Gid):' /proc/self/status | tr -s '\t' ' '`), "Uid: 1000 1000 1000 1000\nGid: 1000 1000 1000 1000")

	proc := specs.Process{
		Args: []string{"sh", "-c", `echo "$BERTH_P $(pwd) $(id -u)"`},
		Env:  []string{"PATH=/bin", "BERTH_P=from-process-file"},
		Cwd:  "/tmp",
		User: specs.User{UID: 1000, GID: 1000},
	}
	data, _ := json.Marshal(proc)
	pf := filepath.Join(b.Dir, "process.json")
	if err := os.WriteFile(pf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	check("exec --process", rt.Exec(id, []string{"--process", pf}), "from-process-file /tmp 1000")

	rt.Exec(id, []string{"-d"}, "sh", "-c", "touch /tmp/execd; exec sleep 1000").OK(t)
	waitFor(t, "the detached exec to run", func() bool { return fileExists(b.Path("tmp/execd")) })
	ps := rt.Exec(id, nil, "ps", "-o", "args").OK(t).Stdout
	if strings.Count(ps, "sleep 1000") != 2 {
		t.Errorf("want the init's and the detached exec's `sleep 1000` in ps:\n%s", ps)
	}

	if res := rt.Exec(id, nil, "/no/such/program"); res.ExitCode == 0 {
		t.Errorf("exec of a missing program succeeded: %s", res)
	}
	if res := rt.Exec("berth-e2e-no-such-container", nil, "true"); res.ExitCode == 0 {
		t.Errorf("exec in a missing container succeeded: %s", res)
	}
}

func TestExecStoppedContainer(t *testing.T) {
	rt := newRuntime(t)
	b := testutil.NewBundle(t, testutil.WithArgs("true"))
	id := rt.NewID("execstop")
	rt.Run(id, b.Dir, "-d").OK(t)
	rt.Wait(id)
	if res := rt.Exec(id, nil, "true"); res.ExitCode == 0 {
		t.Errorf("exec in a stopped container succeeded: %s", res)
	}
}
