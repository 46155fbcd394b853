package initproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// RunHooks runs hooks in order with the state on stdin; the first failure
// stops the rest and is returned with the hook's stderr. Poststart and
// poststop hooks are the exception the spec makes: a failure there is only
// a warning, and the remaining hooks still run, so all of them run and
// every failure is returned, joined.
func RunHooks(hooks []specs.Hook, kind string, state specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	in, err := json.Marshal(state)
	if err != nil {
		return err
	}
	// Only a failed poststop hook is a warning after which the others
	// run (runtime-spec 1.3, runtime.md lifecycle step 13); after any
	// other, poststart included (step 9), the lifecycle goes on at the
	// container's destruction.
	keepGoing := kind == "poststop"
	var errs []error
	for i, h := range hooks {
		if err := runHook(h, in); err != nil {
			// runc's wording, which callers and runc's tests look for,
			// after the config.json field.
			err = fmt.Errorf("hooks.%s[%d] (%s): error running %s hook #%d: %w", kind, i, h.Path, kind, i, err)
			if !keepGoing {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func runHook(h specs.Hook, state []byte) error {
	if h.Timeout != nil && *h.Timeout <= 0 {
		return fmt.Errorf("timeout must be positive, got %d", *h.Timeout)
	}
	// A hook without a timeout gets defaultHookTimeout: one that never
	// exits must not hang the runtime and its caller.
	limit := hookTimeout(h)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	cmd := exec.CommandContext(ctx, h.Path, args[1:]...)
	cmd.Args = args
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(state)
	var stderr, stdout bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stdout
	// A hook that forks a daemon keeping stdout open must not hang us.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		if h.Timeout == nil {
			return fmt.Errorf("timed out after %s (the default for a hook without a timeout)", limit)
		}
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// defaultHookTimeout bounds a hook whose config sets no timeout. The spec
// sets no default; two minutes is kubelet's default runtime-request-timeout,
// past which the caller has given up anyway.
const defaultHookTimeout = 2 * time.Minute

// hookTimeout is how long one hook may run.
func hookTimeout(h specs.Hook) time.Duration {
	if h.Timeout != nil && *h.Timeout > 0 {
		return time.Duration(*h.Timeout) * time.Second
	}
	return defaultHookTimeout
}

// HooksBound is how long a list of hooks may run in all, with a second each
// for the delay after a hook's exit (see runHook).
func HooksBound(hooks []specs.Hook) time.Duration {
	var d time.Duration
	for _, h := range hooks {
		d += hookTimeout(h) + time.Second
	}
	return d
}
