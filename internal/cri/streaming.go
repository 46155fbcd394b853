package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/errdefs"
)

// The streaming server: Exec, Attach and PortForward answer with a URL on
// it (a one-use token, valid for a minute), and the client (kubelet, which
// proxies for kubectl; crictl) upgrades a request to that URL to SPDY
// (channel.k8s.io v1 to v4, portforward.k8s.io) or WebSocket (channel,
// base64.channel and their v4 variants). k8s.io/cri-streaming serves the
// protocols; streamRuntime below carries them out through the engine.
//
// The server has no authentication of its own: the unguessable token is
// the only key, as in containerd and CRI-O, so it listens on loopback by
// default, where kubelet reaches it.

// DefaultStreamingAddress is where the streaming server listens unless
// told otherwise: loopback, on a port chosen when it starts.
const DefaultStreamingAddress = "127.0.0.1:0"

// streamServer is a running streaming server.
type streamServer struct {
	lib    streaming.Server // builds the URLs and serves them
	http   *http.Server
	addr   net.Addr
	served chan error // Serve's result
}

// StartStreaming starts the streaming server on addr ("" means
// DefaultStreamingAddress) and returns the address it listens on. Call it
// once, before serving the gRPC services: until it has run, Exec, Attach
// and PortForward answer Unavailable. StopStreaming stops it.
func (s *Server) StartStreaming(addr string) (net.Addr, error) {
	if addr == "" {
		addr = DefaultStreamingAddress
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: listen on %s: %w", addr, err)
	}
	cfg := streaming.DefaultConfig
	// The URLs name the address actually bound (port 0 becomes the port
	// chosen), known before the first URL is handed out.
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: l.Addr().String()}
	lib, err := streaming.NewServer(cfg, &streamRuntime{engine: s.engine})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	ss := &streamServer{
		lib:    lib,
		http:   &http.Server{Handler: lib, ReadHeaderTimeout: 30 * time.Second},
		addr:   l.Addr(),
		served: make(chan error, 1),
	}
	if !s.streaming.CompareAndSwap(nil, ss) {
		l.Close()
		return nil, errors.New("streaming server: already started")
	}
	go func() { ss.served <- ss.http.Serve(l) }()
	if ip, ok := l.Addr().(*net.TCPAddr); ok && !ip.IP.IsLoopback() {
		s.log.Warn("the streaming server listens beyond loopback: anyone who learns a URL it hands out can use it once", "address", l.Addr().String())
	}
	s.log.Info("streaming server started", "address", l.Addr().String())
	return l.Addr(), nil
}

// StopStreaming closes the streaming server's listener and the requests
// not yet upgraded. Sessions already upgraded (hijacked connections, which
// net/http no longer tracks) go on until they end or berthd exits. It is a
// no-op when the server was not started.
func (s *Server) StopStreaming() error {
	ss := s.streaming.Swap(nil)
	if ss == nil {
		return nil
	}
	err := ss.http.Close()
	if serr := <-ss.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("stop the streaming server: %w", err)
	}
	return nil
}

// streamingServer returns the running streaming server, or Unavailable.
func (s *Server) streamingServer(rpc string) (streaming.Server, error) {
	ss := s.streaming.Load()
	if ss == nil {
		return nil, status.Errorf(codes.Unavailable, "%s: the streaming server is not running", rpc)
	}
	return ss.lib, nil
}

// streamRuntime carries out the streaming server's sessions through the
// engine (k8s.io/cri-streaming's Runtime).
type streamRuntime struct {
	engine *engine.Engine
}

var _ streaming.Runtime = (*streamRuntime)(nil)

// Exec runs cmd in the container with the client's streams. A non-zero
// exit becomes the utilexec.ExitError the library turns into the exit
// code the client reports (protocol v4: kubectl's "command terminated
// with exit code N").
func (r *streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, stderr io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	streams, done, err := engineStreams(in, out, stderr, resize)
	if err != nil {
		return err
	}
	defer done()
	code, err := r.engine.Exec(ctx, containerID, engine.ExecOptions{Cmd: cmd, Tty: tty, Interactive: in != nil, KillOnCancel: true}, streams)
	return exitError(code, err, streams.Stderr, streams.Stdout, tty)
}

// Attach connects the client's streams to the container's own stdio until
// the container exits or the client goes.
func (r *streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, stderr io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	streams, done, err := engineStreams(in, out, stderr, resize)
	if err != nil {
		return err
	}
	defer done()
	_, err = r.engine.Attach(ctx, containerID, streams)
	if errors.Is(err, context.Canceled) {
		// The client went away: a detach, not a failure.
		return nil
	}
	return err
}

// exitError turns the engine's exec result into what the streaming
// library reports: nil for 0, a utilexec.ExitError for another code. When
// the engine could not run the command at all (126, 127: not found, not
// executable), its message goes to the client's stderr (its stdout with a
// terminal) before the code, as a shell would print it.
func exitError(code int, err error, stderr, stdout io.Writer, tty bool) error {
	var xe *engine.ExitError
	if errors.As(err, &xe) {
		w := stderr
		if tty || w == io.Discard {
			w = stdout
		}
		fmt.Fprintf(w, "%v\r\n", xe)
		code, err = xe.Code, nil
	}
	if err != nil {
		return err
	}
	if code == 0 {
		return nil
	}
	return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
}

// engineStreams adapts the library's streams to the engine's. A nil
// output becomes io.Discard (the engine copies a terminal to Stdout
// unconditionally). The client's stdin is handed to the engine through an
// os.Pipe: with a plain io.Reader, os/exec's Wait would wait for the copy
// from the client to end, so a command that exits without reading its
// stdin would hang until the client sent something; with a pipe the
// runtime gets the file and nothing waits on the client. done releases
// the pipe and the resize relay.
func engineStreams(in io.Reader, out, stderr io.WriteCloser, resize <-chan remotecommand.TerminalSize) (engine.AttachStreams, func(), error) {
	var s engine.AttachStreams
	s.Stdout, s.Stderr = io.Discard, io.Discard
	if out != nil {
		s.Stdout = out
	}
	if stderr != nil {
		s.Stderr = stderr
	}
	var closers []func()
	if in != nil {
		pr, pw, err := os.Pipe()
		if err != nil {
			return s, nil, fmt.Errorf("stdin pipe: %w", err)
		}
		go func() {
			// Ends when the client closes stdin (the process sees EOF) or
			// the session ends (the library closes the stream) or the
			// process is gone (the write fails).
			io.Copy(pw, in)
			pw.Close()
		}()
		s.Stdin = pr
		closers = append(closers, func() { pr.Close() })
	}
	if resize != nil {
		ch := make(chan engine.TermSize)
		stop := make(chan struct{})
		go func() {
			defer close(ch)
			for {
				select {
				case <-stop:
					return
				case sz, ok := <-resize:
					if !ok {
						return
					}
					select {
					case ch <- engine.TermSize{Rows: sz.Height, Cols: sz.Width}:
					case <-stop:
						return
					}
				}
			}
		}()
		s.Resize = ch
		closers = append(closers, func() { close(stop) })
	}
	return s, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

// PortForward connects stream to 127.0.0.1:port inside the pod's network
// namespace and copies both ways until both directions end or ctx does.
func (r *streamRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port forward: port %d: want 1 to 65535: %w", port, errdefs.ErrInvalidArgument)
	}
	conn, err := r.dialSandbox(ctx, podSandboxID, port)
	if err != nil {
		return fmt.Errorf("port forward to port %d of %s: %w", port, podSandboxID, err)
	}
	defer conn.Close()
	return pipeBoth(ctx, conn, stream)
}

// pipeBoth copies conn to stream and stream to conn. The client's end of
// input half-closes the connection (the server sees EOF and may still
// answer); the server's end of output ends the forwarding.
func pipeBoth(ctx context.Context, conn *net.TCPConn, stream io.ReadWriteCloser) error {
	toClient := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		conn.CloseWrite()
		if err != nil {
			// The client is gone: nothing more to deliver.
			conn.Close()
		}
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		toClient <- err
	}()
	select {
	case err := <-toClient:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("port forward: %w", err)
		}
		return nil
	case <-ctx.Done():
		conn.Close()
		<-toClient
		return nil
	}
}
