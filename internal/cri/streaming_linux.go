package cri

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"time"

	"github.com/vishvananda/netns"
)

// portForwardDialTimeout bounds the connection to the pod's port: a port
// nothing listens on is refused at once, a filtered one must not hang the
// session.
const portForwardDialTimeout = 10 * time.Second

// sandboxNetNS is the path of the pod's network namespace ("" for the
// host's).
func (r *streamRuntime) sandboxNetNS(ctx context.Context, sandboxID string) (string, error) {
	return r.engine.SandboxNetNS(ctx, sandboxID)
}

// dialSandbox connects to 127.0.0.1:port in the sandbox's network
// namespace (the pinned one: no pid to be reused on the way).
func (r *streamRuntime) dialSandbox(ctx context.Context, sandboxID string, port int32) (*net.TCPConn, error) {
	nsPath, err := r.sandboxNetNS(ctx, sandboxID)
	if err != nil {
		return nil, err
	}
	return dialInNetNS(ctx, nsPath, port)
}

// dialInNetNS connects to 127.0.0.1:port in the network namespace at
// nsPath. Only the socket is made in the namespace: the calling OS thread
// enters it, creates and connects the socket, and returns to berthd's
// namespace; a socket keeps the namespace it was made in, so the copying
// afterwards runs on any thread. If the thread cannot return, it stays
// locked and dies with its goroutine rather than serving berthd in the
// pod's namespace.
func dialInNetNS(ctx context.Context, nsPath string, port int32) (*net.TCPConn, error) {
	if nsPath == "" {
		// A pod on the host's network: its ports are the host's.
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open the network namespace %s: %w", nsPath, err)
	}
	defer target.Close()

	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	// A goroutine of its own, so that a thread that cannot go back is
	// dropped with it (LockOSThread without Unlock at exit).
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("berthd's network namespace: %w", err)}
			return
		}
		defer home.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter the network namespace %s: %w", nsPath, err)}
			return
		}
		// The dialer makes the socket on this thread (socket(2) then a
		// non-blocking connect); the runtime's poller completes it.
		d := net.Dialer{Timeout: portForwardDialTimeout}
		conn, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err := netns.Set(home); err != nil {
			if conn != nil {
				conn.Close()
			}
			ch <- result{err: fmt.Errorf("return to berthd's network namespace: %w", err)}
			return // the thread stays locked: Go ends it with this goroutine
		}
		runtime.UnlockOSThread()
		ch <- result{conn: conn, err: err}
	}()
	res := <-ch
	if res.err != nil {
		return nil, res.err
	}
	return res.conn.(*net.TCPConn), nil
}
