package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/runtime/initproc"
)

// Prespawn is a container init's stage that berth-runtime started for a
// create before its Go runtime, from the namespaces it read in config.json
// (fastpath/prespawn.c). The stage has its namespace config: it makes the
// namespaces and forks the init, whose Go runtime starts beside the
// runtime's instead of after it. Create adopts it when the validated spec
// asks for exactly these namespaces and nothing the prespawned process
// cannot be given later (a console, preserved fds, idmapped mounts), and
// the binary is this build's init; otherwise, and on every error before,
// it is discarded.
type Prespawn struct {
	Sock  *os.File // the runtime's end of the init socket
	Stage int      // the stage's pid
	// Flags are the CLONE_NEW* flags read; the stage makes all but
	// CLONE_NEWCGROUP. Never a user or time namespace (prespawn.c does
	// not start a stage for those), so a spec that has one, or time
	// offsets, which need one, does not match.
	Flags  uintptr
	Binary *os.File // the init binary the stage runs
	done   bool
	// Adopted: create used the stage.
	Adopted bool
}

// errPrespawnLost: the stage never named its init (its exec failed); the
// caller starts its own.
var errPrespawnLost = errors.New("prespawned init stage lost")

// adoptable says whether opt can take the prespawned stage.
func (p *Prespawn) adoptable(opt *spawnOptions) bool {
	if p == nil || p.done || initBuildID == "" || opt.fifo == nil || opt.console != nil || len(opt.join) > 0 ||
		opt.clone != p.Flags || len(opt.mountFiles) > 0 || len(opt.lateMounts) > 0 || opt.preserveFds > 0 || opt.rootDir != nil {
		return false
	}
	// The stage has the runtime's own stdio.
	for i, f := range opt.stdio {
		if f == nil || f.Fd() != uintptr(i) {
			return false
		}
	}
	id, err := gnuBuildID(fdReader(int(p.Binary.Fd())))
	return err == nil && id == initBuildID
}

// Discard kills the stage and the init it forked, and reaps them. It does
// nothing once the stage was adopted or discarded.
func (p *Prespawn) Discard() {
	if p == nil || p.done {
		return
	}
	p.done = true
	defer p.Binary.Close()
	defer p.Sock.Close()
	stage := &stageProc{pid: p.Stage}
	// The stage makes the namespaces and forks at once: its "P" line
	// names the init. Killed before it, the stage could leave an init
	// forked and not yet named.
	initPid, err := p.readInitPid(bufio.NewReader(p.Sock))
	stage.kill()
	if err == nil {
		unix.Kill(initPid, unix.SIGKILL)
	}
	stage.wait(reapTimeout)
	if err == nil {
		reapBounded(initPid, reapTimeout) // ours once the stage is gone: we are its subreaper
	}
}

// readInitPid reads the stage's "P PID" line through r, within
// initStepTimeout.
func (p *Prespawn) readInitPid(r *bufio.Reader) (int, error) {
	if err := p.Sock.SetReadDeadline(time.Now().Add(initStepTimeout)); err != nil {
		return 0, err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	return initPidLine(strings.TrimSuffix(line, "\n"))
}

// spawnPrespawned is spawn for an adopted stage: the namespaces are made
// and the init forked; it puts the init in the container's cgroup, hands
// it what it could not inherit (the exec fifo) and sends its config.
func spawnPrespawned(opt spawnOptions, p *Prespawn) (_ *child, retErr error) {
	p.done = true
	defer func() { p.Adopted = retErr == nil }()
	defer p.Binary.Close()
	stage := &stageProc{pid: p.Stage}
	// One reader for the stage's line and the init's replies after it.
	r := bufio.NewReader(p.Sock)
	initPid, err := p.readInitPid(r)
	if err != nil {
		p.Sock.Close()
		stage.kill()
		stage.wait(reapTimeout)
		var nsErr *nsError
		if errors.As(err, &nsErr) {
			return nil, err // the kernel refused a namespace: the Go path would too
		}
		return nil, fmt.Errorf("%w: %v", errPrespawnLost, err)
	}
	defer func() {
		if retErr != nil {
			p.Sock.Close()
			unix.Kill(initPid, unix.SIGKILL)
			stage.wait(reapTimeout)
			reapBounded(initPid, reapTimeout)
		}
	}()
	p.Sock.SetDeadline(time.Now().Add(initStepTimeout))
	// The init was forked in the caller's cgroup and waits for its
	// config: it is in the container's before it runs anything of the
	// container's. Its Go runtime's pages stay charged where they were.
	if opt.joinCgroup != nil {
		if err := opt.joinCgroup(initPid); err != nil {
			return nil, err
		}
	}
	if opt.oomScoreAdj != nil {
		if err := writeOOMScoreAdj(initPid, *opt.oomScoreAdj); err != nil {
			return nil, err
		}
	}
	if opt.clone&unix.CLONE_NEWCGROUP != 0 {
		opt.message.Config.CgroupNS = true
	}
	if err := stage.wait(initStepTimeout); err != nil {
		return nil, fmt.Errorf("namespace setup process: %w", err)
	}
	if opt.beforeConfig != nil {
		if err := opt.beforeConfig(); err != nil {
			return nil, err
		}
	}
	if err := sendFds(p.Sock, 'f', []int{int(opt.fifo.Fd())}); err != nil {
		return nil, fmt.Errorf("send the exec fifo to init: %w", err)
	}
	return sendConfig(p.Sock, r, initPid, opt)
}

// sendConfig sends the init its config and returns the child that talks
// to it; r reads the socket.
func sendConfig(sock *os.File, r *bufio.Reader, initPid int, opt spawnOptions) (*child, error) {
	c := &child{pid: initPid, sock: sock, dec: json.NewDecoder(r), enc: json.NewEncoder(sock)}
	if cfg := opt.message.Config; cfg != nil && cfg.Spec != nil {
		cfg.Wire = initproc.NewWireSpec(cfg.Spec)
	}
	if err := c.enc.Encode(opt.message); err != nil {
		return nil, fmt.Errorf("send config to init: %w", err)
	}
	return c, nil
}
