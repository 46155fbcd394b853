package monitor

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// A container that runs inside another container's sandbox (gVisor's
// runsc, Kata: the pod containers of a CRI infra sandbox) has no host
// process of its own: the runtime's --pid-file names the shared sandbox
// process, which is not our child, does not exit with the container and
// must never be signalled for it. Config.RuntimeWait makes the monitor
// learn such a container's exit from `RUNTIME wait ID` (runsc's and
// kata's command; it prints {"id":…,"exitStatus":N}).

// runtimeWaitRetry is how often the wait is asked again while the runtime
// says the container has not started (runsc's wait fails at once before
// start).
const runtimeWaitRetry = 100 * time.Millisecond

// waitRuntime sends the container's exit code on exited, once. It ends
// when the container exits, is deleted, or its sandbox dies (the runtime's
// wait then fails and its state says stopped or gone; the code is -1, as
// waitInit's for a status that is lost).
func (s *server) waitRuntime(exited chan<- int) {
	for {
		if code, ok := s.runtimeWaitOnce(); ok {
			exited <- code
			return
		}
		switch s.runtimeState() {
		case StateCreated, StateRunning:
			time.Sleep(runtimeWaitRetry)
		case "stopped":
			// It may have started and exited since the wait was refused
			// (before start): a wait now answers with its status.
			code, ok := s.runtimeWaitOnce()
			if !ok {
				code = -1
			}
			exited <- code
			return
		default:
			exited <- -1
			return
		}
	}
}

// runtimeWaitOnce runs `RUNTIME wait ID` until it answers. It has no
// timeout on purpose: it lasts as long as the container runs, and ends
// with it or with its sandbox.
func (s *server) runtimeWaitOnce() (int, bool) {
	out, ok := s.runtimeOutput("wait", s.cfg.ID)
	if !ok {
		return 0, false
	}
	v, err := parseJSON(bytes.TrimSpace(out))
	if err != nil {
		return 0, false
	}
	o, err := asObject(v, "wait result")
	if err != nil {
		return 0, false
	}
	if _, present := o.m["exitStatus"]; !present {
		return 0, false
	}
	return int(o.int64("exitStatus")), true
}

// runtimeState is the runtime's status of the container ("created",
// "running", "stopped"…; "" when it does not know it).
func (s *server) runtimeState() string {
	out, ok := s.runtimeOutput("state", s.cfg.ID)
	if !ok {
		return ""
	}
	v, err := parseJSON(bytes.TrimSpace(out))
	if err != nil {
		return ""
	}
	o, err := asObject(v, "state")
	if err != nil {
		return ""
	}
	return o.str("status")
}

// runtimeOutput runs a runtime command and returns its standard output.
// It logs to a file of its own: the monitor's other runtime calls run at
// the same time. The output is read to its end before the process is
// waited for, because reapOrphans (we are a subreaper) may reap it first.
func (s *server) runtimeOutput(args ...string) ([]byte, bool) {
	global := []string{}
	if s.cfg.RuntimeRoot != "" {
		global = append(global, "--root", s.cfg.RuntimeRoot)
	}
	global = append(append(global, s.cfg.RuntimeArgs...), "--log", filepath.Join(s.cfg.StateDir, "runtime-wait.log"))
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, false
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, false
	}
	defer r.Close()
	argv := append(append([]string{s.cfg.Runtime}, global...), args...)
	p, err := os.StartProcess(s.cfg.Runtime, argv, &os.ProcAttr{Files: []*os.File{devnull, w, devnull}, Sys: &unix.SysProcAttr{Setpgid: true}})
	w.Close()
	if err != nil {
		return nil, false
	}
	out, _ := io.ReadAll(io.LimitReader(r, 1<<20))
	ps, err := p.Wait()
	if err == nil && !ps.Success() {
		return nil, false
	}
	// err != nil: reaped by reapOrphans; the output tells.
	return out, len(bytes.TrimSpace(out)) > 0
}
