package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitLog polls the container's log until it contains s.
func (e *engineT) waitLog(ref, s string) {
	e.t.Helper()
	waitForLong(e.t, fmt.Sprintf("the log of %s to show %q", ref, s), 30*time.Second, func() bool {
		r := e.berth("logs", ref)
		return strings.Contains(r.stdout+r.stderr, s)
	})
}

// `stop` sends SIGTERM and waits; a container that ignores it is killed
// after --time (issue 8, test 6).
func TestEngineStop(t *testing.T) {
	e := newEngine(t)
	id := e.runD(e.image, "sh", "-c", "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done")
	e.waitLog(id, "ready")
	e.ok("stop", id)
	if st, code := e.status(id), e.inspectF(id, "{{.State.ExitCode}}"); st != "exited" || code != "3" {
		t.Errorf("after stop: status %q exit code %s, want exited 3 (the trap's)", st, code)
	}
	if out := e.ok("logs", id); !strings.Contains(out, "got TERM") {
		t.Errorf("the log lacks the trap's line: %q", out)
	}

	deaf := e.runD(e.image, "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done")
	e.waitLog(deaf, "ready")
	e.ok("stop", "--time", "1", deaf)
	if code := e.inspectF(deaf, "{{.State.ExitCode}}"); code != "137" {
		t.Errorf("a container ignoring TERM after stop --time 1: exit code %s, want 137 (SIGKILL)", code)
	}
}

// --memory with a process that allocates more: killed by the OOM killer,
// exit 137, .State.OOMKilled true (issue 8, test 7).
func TestEngineMemoryLimitOOM(t *testing.T) {
	e := newEngine(t)
	name := uniq("oom")
	// tail buffers /dev/zero while it looks for a newline that never comes.
	r := e.berth("run", "--name", name, "--memory", "16m", e.image, "tail", "/dev/zero")
	if r.code != 137 {
		t.Errorf("run --memory 16m tail /dev/zero: exit %d, want 137\n%s", r.code, r)
	}
	if got := e.inspectF(name, "{{.State.OOMKilled}}"); got != "true" {
		t.Errorf(".State.OOMKilled = %s, want true", got)
	}
	if got := e.inspectF(name, "{{.HostConfig.Memory}}"); got != "16777216" {
		t.Errorf(".HostConfig.Memory = %s, want 16777216", got)
	}
}

// restartCount is .RestartCount.
func (e *engineT) restartCount(ref string) int {
	e.t.Helper()
	n, _ := strconv.Atoi(strings.TrimSpace(e.berth("inspect", "-f", "{{.RestartCount}}", ref).stdout))
	return n
}

// Restart policies (issue 8, test 8).
func TestEngineRestartPolicies(t *testing.T) {
	e := newEngine(t)

	t.Run("on-failure:2", func(t *testing.T) {
		id := e.runD("--restart", "on-failure:2", e.image, "sh", "-c", "exit 1")
		waitForLong(t, "two restarts, then exited", 60*time.Second, func() bool {
			return e.restartCount(id) == 2 && e.status(id) == "exited"
		})
		// Let a third restart happen if the policy were wrong; `wait`
		// returns once it is not running.
		e.ok("wait", id)
		if n, st := e.restartCount(id), e.status(id); n != 2 || st != "exited" {
			t.Errorf("on-failure:2: RestartCount %d, status %s; want 2, exited", n, st)
		}
		if code := e.inspectF(id, "{{.State.ExitCode}}"); code != "1" {
			t.Errorf("on-failure:2: exit code %s, want 1", code)
		}
	})

	for _, policy := range []string{"always", "unless-stopped"} {
		t.Run(policy, func(t *testing.T) {
			// exit 0: only always and unless-stopped restart it.
			id := e.runD("--restart", policy, e.image, "sh", "-c", "sleep 0.3; exit 0")
			waitForLong(t, policy+": two restarts", 60*time.Second, func() bool { return e.restartCount(id) >= 2 })
			e.ok("stop", "--time", "1", id)
			if st := e.status(id); st != "exited" {
				t.Errorf("%s after stop: status %s, want exited", policy, st)
			}
			n := e.restartCount(id)
			// A stopped container stays stopped: `wait` returns at once
			// and the count does not move across another wait.
			e.ok("wait", id)
			e.ok("wait", id)
			if st, m := e.status(id), e.restartCount(id); st != "exited" || m != n {
				t.Errorf("%s after stop: status %s, RestartCount %d→%d; want exited, unchanged", policy, st, n, m)
			}
		})
	}
}

// Everyday commands (issue 8, test 13): run --rm, exit codes, inspect's
// fields, ps/stats JSON, top, wait, events, cp (and that cp does not follow a
// container's symlinks onto the host).
func TestEngineEveryday(t *testing.T) {
	e := newEngine(t)
	if out := e.ok("run", "--rm", e.image, "echo", "hi"); out != "hi" {
		t.Errorf("run --rm echo hi: %q", out)
	}
	if out := e.ok("ps", "-a", "-q"); out != "" {
		t.Errorf("run --rm left a container: %q", out)
	}
	if r := e.berth("run", "--rm", e.image, "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("run sh -c 'exit 7': exit %d, want 7", r.code)
	}

	netName := e.networkCreate()
	vol := uniq("vol")
	name := uniq("every")
	id := e.runD("--name", name, "--network", netName, "-e", "FOO=bar", "--memory", "64m", "-v", vol+":/data", e.image, "sleep", "3600")
	c := e.inspect(name)
	get := func(path ...string) any {
		var v any = c
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		}
		return v
	}
	if get("Id") != id {
		t.Errorf("inspect .Id = %v, want %s", get("Id"), id)
	}
	if get("State", "Status") != "running" {
		t.Errorf(".State.Status = %v", get("State", "Status"))
	}
	if pid, _ := get("State", "Pid").(float64); pid <= 0 || !fileExists(fmt.Sprintf("/proc/%d", int(pid))) {
		t.Errorf(".State.Pid = %v, want the container's running process", get("State", "Pid"))
	}
	if env, _ := json.Marshal(get("Config", "Env")); !strings.Contains(string(env), `"FOO=bar"`) {
		t.Errorf(".Config.Env = %s, want FOO=bar in it", env)
	}
	if mem, _ := get("HostConfig", "Memory").(float64); mem != 64<<20 {
		t.Errorf(".HostConfig.Memory = %v, want %d", get("HostConfig", "Memory"), 64<<20)
	}
	if ip, _ := get("NetworkSettings", "Networks", netName, "IPAddress").(string); !strings.HasPrefix(ip, "10.231.") {
		t.Errorf(".NetworkSettings.Networks.%s.IPAddress = %v, want an address of the network's subnet", netName, ip)
	}
	mounts, _ := json.Marshal(get("Mounts"))
	if !strings.Contains(string(mounts), `"Destination":"/data"`) || !strings.Contains(string(mounts), vol) {
		t.Errorf(".Mounts = %s, want the volume %s on /data", mounts, vol)
	}

	psOut := e.ok("ps", "--format", "json")
	var rows []map[string]any
	if json.Unmarshal([]byte(psOut), &rows) != nil {
		rows = nil
		for _, l := range strings.Split(psOut, "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("ps --format json: line %q: %v", l, err)
			}
			rows = append(rows, m)
		}
	}
	if len(rows) != 1 {
		t.Errorf("ps --format json: %s, want one row for %s", psOut, id)
	} else if psID := fmt.Sprint(firstOf(rows[0], "ID", "Id")); len(psID) < 12 || !strings.HasPrefix(id, psID) {
		t.Errorf("ps --format json: ID %q, want a prefix of %s", psID, id)
	}
	if top := e.ok("top", name); !strings.Contains(top, "PID") || !strings.Contains(top, "sleep 3600") {
		t.Errorf("top: %q, want a PID column and sleep 3600", top)
	}
	stats := e.ok("stats", "--no-stream", "--format", "json", name)
	var st map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSuffix(stats, "]"), "[")), &st); err != nil {
		t.Errorf("stats --no-stream --format json: %v: %q", err, stats)
	} else if _, ok := st["PIDs"]; !ok {
		t.Errorf("stats --format json lacks PIDs: %q", stats)
	}

	since := time.Now().Add(-time.Second)
	w := e.runD(e.image, "sh", "-c", "sleep 0.5; exit 4")
	if out := e.ok("wait", w); out != "4" {
		t.Errorf("wait: %q, want 4", out)
	}
	events := e.ok("events", "--since", strconv.FormatInt(since.Unix(), 10), "--until", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10), "--format", "json")
	var actions []string
	for _, l := range strings.Split(events, "\n") {
		var ev struct {
			Type, Action string
			Actor        struct{ ID string }
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("events --format json: line %q: %v", l, err)
		}
		if ev.Actor.ID == w {
			actions = append(actions, ev.Action)
		}
	}
	if got := strings.Join(actions, " "); !strings.Contains(got, "create start") || !strings.Contains(got, "die") {
		t.Errorf("events of %s: %q, want create, start, die", w[:12], got)
	}

	// cp both ways.
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in"), []byte("from host\n"), 0o644)
	e.ok("cp", filepath.Join(host, "in"), name+":/tmp/in")
	if out := e.ok("exec", name, "cat", "/tmp/in"); out != "from host" {
		t.Errorf("cp host → container: %q", out)
	}
	e.ok("exec", name, "sh", "-c", "echo from ctr > /tmp/out")
	e.ok("cp", name+":/tmp/out", filepath.Join(host, "out"))
	if b, _ := os.ReadFile(filepath.Join(host, "out")); string(b) != "from ctr\n" {
		t.Errorf("cp container → host: %q", b)
	}
	// A symlink to / in the container: cp into it lands in the
	// container's root, never the host's.
	e.ok("exec", name, "ln", "-s", "/", "/tmp/escape")
	evil := uniq("berth-e2e-cp-escape")
	r := e.berth("cp", filepath.Join(host, "in"), name+":/tmp/escape/"+evil)
	if fileExists("/" + evil) {
		os.Remove("/" + evil)
		t.Errorf("cp into a symlink to / in the container wrote /%s on the host", evil)
	}
	if r.code == 0 {
		if out := e.ok("exec", name, "cat", "/"+evil); out != "from host" {
			t.Errorf("cp through the container's symlink: %q, want the file in the container's /", out)
		}
	}
	// A symlink to the host's /etc/shadow copied out is the link or the
	// container's file, never the host's.
	e.ok("exec", name, "ln", "-s", "/etc/shadow", "/tmp/shadow")
	e.berth("cp", name+":/tmp/shadow", filepath.Join(host, "shadow"))
	// (Docker copies the link itself; reading it on the host would follow
	// it to the host's file, so only a regular file is compared.)
	if fi, err := os.Lstat(filepath.Join(host, "shadow")); err == nil && fi.Mode().IsRegular() {
		hostShadow, _ := os.ReadFile("/etc/shadow")
		if b, _ := os.ReadFile(filepath.Join(host, "shadow")); len(hostShadow) > 0 && string(b) == string(hostShadow) {
			t.Errorf("cp out of a symlink to /etc/shadow copied the host's /etc/shadow")
		}
	}
}

func firstOf(m map[string]any, keys ...string) any {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return ""
}

// `berth --runtime-flag` (Podman's flag, without the leading dashes) gives
// the runtime of the containers it creates global flags: every call for
// such a container has them, later commands included. A value with its
// dashes is refused.
func TestEngineRuntimeFlag(t *testing.T) {
	e := newEngine(t)
	wrapper, calls := loggingRuntime(t, runtimeBin(t))
	id := e.runD("--runtime", wrapper, "--network", "none", e.image, "sleep", "600")
	// Neither flag given again: the container keeps those of its create.
	e.ok("--runtime", wrapper, "--runtime-flag", "debug", "run", "--rm", "--network", "none", e.image, "true")
	b, _ := os.ReadFile(calls)
	before := strings.Count(string(b), "--debug")
	id2 := e.ok("--runtime", wrapper, "--runtime-flag", "debug", "--runtime-flag", "log-format=json", "create", "--network", "none", e.image, "sleep", "600")
	e.ok("start", id2)
	e.ok("exec", id2, "true")
	e.ok("rm", "-f", id2)
	e.ok("rm", "-f", id)
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(line, id2) {
			mine = append(mine, line)
		} else if strings.Contains(line, id) && strings.Contains(line, "--debug") {
			t.Errorf("a call for the container created without --runtime-flag has the flag: %q", line)
		}
	}
	if len(mine) < 4 {
		t.Fatalf("want create, start, exec and kill/delete calls for %s, got %q", id2[:12], mine)
	}
	for _, line := range mine {
		if !strings.Contains(line, "--debug --log-format=json") {
			t.Errorf("a call for the container created with --runtime-flag lacks the flags: %q", line)
		}
	}
	if before == 0 {
		t.Errorf("run --rm with --runtime-flag debug made no call with --debug: %q", b)
	}
	r := e.berth("--runtime-flag", "--debug", "run", "--rm", e.image, "true")
	if r.code == 0 || !strings.Contains(r.stderr, "without its leading dashes") {
		t.Errorf("--runtime-flag --debug: want a refusal: %s", r)
	}
}
