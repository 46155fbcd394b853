package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Ten concurrent `run -d` give ten running containers; ten concurrent
// `run --name same` give one container and nine "already in use" errors
// (issue 8, test 9).
func TestEngineConcurrentRuns(t *testing.T) {
	e := newEngine(t)
	const n = 10
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.berth("run", "-d", e.image, "sleep", "3600")
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	for _, r := range results {
		if r.code != 0 {
			t.Errorf("concurrent %s", r)
			continue
		}
		ids[strings.TrimSpace(r.stdout)] = true
	}
	if len(ids) != n {
		t.Errorf("%d concurrent run -d gave %d distinct ids", n, len(ids))
	}
	running := strings.Fields(e.ok("ps", "-q", "--no-trunc", "--filter", "status=running"))
	if len(running) != n {
		t.Errorf("ps lists %d running containers, want %d", len(running), n)
	}
	for _, id := range running {
		if !ids[id] {
			t.Errorf("ps lists %s, which no run printed", id)
		}
	}

	same := uniq("same")
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.berth("run", "-d", "--name", same, e.image, "sleep", "3600")
		}()
	}
	wg.Wait()
	ok := 0
	for _, r := range results {
		switch {
		case r.code == 0:
			ok++
		case r.code != 125 || !strings.Contains(r.stderr, "already in use"):
			t.Errorf("run --name %s lost the race: %s\nwant exit 125 and \"already in use\"", same, r)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent run --name %s succeeded, want 1", ok, n, same)
	}
	if all := strings.Fields(e.ok("ps", "-a", "-q")); len(all) != n+1 {
		t.Errorf("ps -a lists %d containers, want %d", len(all), n+1)
	}
}

// kill -9 of `berth run` at points of its work, and of a container's
// monitor: ps tells the truth and rm -f cleans everything (issue 8, test
// 10). The leak check runs after each phase and at cleanup.
func TestEngineKilledMidRun(t *testing.T) {
	e := newEngine(t)
	netName := e.networkCreate()
	for i := range 8 {
		delay := time.Duration(rand.IntN(300)) * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), engineCmdTimeout)
		cmd := e.command(ctx, "run", "-d", "--name", fmt.Sprintf("k%d-%s", i, uniq("k")), "--network", netName,
			"-p", fmt.Sprintf("%d:80", freePort(t)), e.image, "httpd", "-f", "-p", "80")
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cancel()
		// ps must answer, whatever the killed run left.
		if r := e.berth("ps", "-a"); r.code != 0 {
			t.Errorf("ps -a after kill -9 of run at %v: %s", delay, r)
		}
	}
	for _, id := range strings.Fields(e.ok("ps", "-a", "-q", "--no-trunc")) {
		e.recordIPs(id)
		if r := e.berth("rm", "-f", id); r.code != 0 {
			t.Errorf("rm -f of a container whose run was killed: %s", r)
		}
	}
	if left := e.ok("ps", "-a", "-q"); left != "" {
		t.Errorf("ps -a after rm -f: %q", left)
	}
	for _, l := range e.leaks(true) {
		t.Errorf("after kill -9 of run and rm -f: leak: %s", l)
	}

	// kill -9 of the monitor.
	id := e.runD("--network", netName, e.image, "sleep", "3600")
	mon, _ := strconv.Atoi(e.inspectF(id, "{{.State.MonitorPid}}"))
	pid, _ := strconv.Atoi(e.inspectF(id, "{{.State.Pid}}"))
	if mon <= 0 || pid <= 0 {
		t.Fatalf("inspect: MonitorPid %d, Pid %d; want both", mon, pid)
	}
	syscall.Kill(mon, syscall.SIGKILL)
	waitFor(t, "the monitor to die", func() bool {
		callersReapZombies("berth-monitor")
		return callersGone(mon)
	})
	// Truthful: running exactly while the container's process lives.
	st := e.status(id)
	alive := !callersGone(pid)
	if alive && st != "running" || !alive && st == "running" {
		t.Errorf("after kill -9 of the monitor: status %q while the container's process %d alive=%v", st, pid, alive)
	}
	psOut := e.ok("ps", "-a", "--no-trunc")
	if !strings.Contains(psOut, id) {
		t.Errorf("ps -a lost the container whose monitor died:\n%s", psOut)
	}
	e.recordIPs(id)
	if r := e.berth("rm", "-f", id); r.code != 0 {
		t.Errorf("rm -f of a container whose monitor died: %s", r)
	}
	if !callersGone(pid) {
		t.Errorf("rm -f left the container's process %d", pid)
		_ = os.Getpid()
	}
}
