package seccomp

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SendListener hands the seccomp user-notification fd to the agent listening
// on the unix socket at listenerPath, as the runtime-spec's seccomp section
// prescribes: one message whose payload is state as JSON (with Fds set to
// ["seccompFd"] and Metadata to metadata, linux.seccomp.listenerMetadata)
// and whose SCM_RIGHTS data is fd. The caller keeps fd and closes it.
// The deadline of ctx bounds connecting and sending.
func SendListener(ctx context.Context, listenerPath string, fd int, metadata string, state specs.ContainerProcessState) error {
	state.Fds = []string{specs.SeccompFdName}
	state.Metadata = metadata
	payload, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("send seccomp listener to %s: encode state: %w", listenerPath, err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", listenerPath)
	if err != nil {
		// runc's words, which callers and runc's tests look for.
		return fmt.Errorf("send seccomp listener: failed to connect with seccomp agent: %w", err)
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fmt.Errorf("send seccomp listener to %s: %w", listenerPath, err)
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	n, _, err := conn.WriteMsgUnix(payload, unix.UnixRights(fd), nil)
	if err == nil && n < len(payload) {
		// A stream socket may take a large state in pieces; the fd went
		// with the first one.
		_, err = conn.Write(payload[n:])
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("send seccomp listener to %s: %w", listenerPath, err)
	}
	return nil
}
