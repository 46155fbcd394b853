package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/go-units"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/monitor"
	"github.com/berth-project/berth/internal/oci"
)

// defaultStopTimeout is Docker's.
const defaultStopTimeout = 10 * time.Second

// Stop sends the stop signal, then SIGKILL after timeout (nil: the
// container's StopTimeout, else 10 s), and waits for the exit. Stopping a
// container that does not run succeeds, as in Docker.
func (e *Engine) Stop(ctx context.Context, ref string, timeout *time.Duration) error {
	return e.withContainer(ctx, ref, func(r *record) error {
		if err := e.stop(ctx, r, timeout, true); err != nil {
			return err
		}
		// The monitor's clean-up gave way to this stop: --rm is ours.
		if r.HostConfig.AutoRemove {
			return e.remove(ctx, r, RemoveOptions{Volumes: true})
		}
		return nil
	})
}

// withContainer runs fn on the container ref holding its lock.
func (e *Engine) withContainer(ctx context.Context, ref string, fn func(r *record) error) error {
	r, err := e.store.get(ref)
	if err != nil {
		return err
	}
	unlock, err := e.lockContainer(ctx, r.ID)
	if err != nil {
		return err
	}
	defer unlock()
	// What was read before the lock may be stale: read it again.
	if r, err = e.store.get(r.ID); err != nil {
		return err
	}
	return fn(r)
}

func (e *Engine) stop(ctx context.Context, r *record, timeout *time.Duration, emit bool) error {
	if _, err := e.store.modify(r.ID, func(cur *record) error { cur.StoppedByUser = true; return nil }); err != nil {
		return err
	}
	rundir := e.runDir(r.ID)
	if _, alive := monitor.Alive(rundir); alive {
		if err := monitor.Stopping(ctx, rundir); err != nil {
			e.warn("container %s: tell the monitor: %v", r.ID[:12], err)
		}
	}
	st := e.liveState(r)
	if !st.Running && !st.Restarting {
		e.teardown(ctx, r)
		return nil
	}
	d := defaultStopTimeout
	if timeout != nil {
		d = *timeout
	} else if r.Config.StopTimeout != nil {
		d = time.Duration(*r.Config.StopTimeout) * time.Second
	}
	sig := r.Config.StopSignal
	if sig == "" {
		sig = "TERM"
	}
	if st.Running && d > 0 {
		if err := e.signal(ctx, r, st, sig); err != nil {
			e.warn("container %s: %v", r.ID[:12], err)
		} else if emit {
			e.emitWith(ctx, "container", "kill", r, map[string]string{"signal": sig})
		}
		if e.waitStopped(ctx, r, d) {
			e.afterStop(ctx, r, emit)
			return nil
		}
	}
	if err := e.signal(ctx, r, e.liveState(r), "KILL"); err != nil {
		e.warn("container %s: %v", r.ID[:12], err)
	}
	if !e.waitStopped(ctx, r, 30*time.Second) {
		return fmt.Errorf("container %s did not stop after SIGKILL", r.ID[:12])
	}
	e.afterStop(ctx, r, emit)
	return nil
}

func (e *Engine) afterStop(ctx context.Context, r *record, emit bool) {
	// The monitor's exit command tears down too; doing it here as well
	// makes `stop` return with the network and mounts gone.
	e.teardown(ctx, r)
	if emit {
		// Docker's order: die, then stop.
		e.emitDie(ctx, r, e.liveState(r))
		e.emit(ctx, "container", "stop", r)
	}
}

// emitDie records the die (and oom) event of r's last exit once, whoever
// sees the exit first: the monitor's clean-up or the command that stopped
// the container. A marker named by the exit's time says it was done.
func (e *Engine) emitDie(ctx context.Context, r *record, st State) {
	if st.Status != "exited" || st.FinishedAt.IsZero() {
		return
	}
	marker := filepath.Join(e.containerDir(r.ID), "died."+strconv.FormatInt(st.FinishedAt.UnixNano(), 10))
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return // recorded already (or the container is gone)
	}
	f.Close()
	if old, _ := filepath.Glob(filepath.Join(e.containerDir(r.ID), "died.*")); len(old) > 1 {
		for _, o := range old {
			if o != marker {
				os.Remove(o)
			}
		}
	}
	e.emitWith(ctx, "container", "die", r, map[string]string{"exitCode": strconv.Itoa(st.ExitCode)})
	if st.OOMKilled {
		e.emit(ctx, "container", "oom", r)
	}
}

// waitStopped waits up to d for r to stop running; it reports whether it did.
func (e *Engine) waitStopped(ctx context.Context, r *record, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		st := e.liveState(r)
		if !st.Running && !st.Restarting {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *Engine) waitMonitorGone(ctx context.Context, r *record, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if _, alive := monitor.Alive(e.runDir(r.ID)); !alive {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal delivers sig to the container: through the runtime, or straight
// to its init when the runtime no longer knows it (its monitor was killed).
func (e *Engine) signal(ctx context.Context, r *record, st State, sig string) error {
	if _, err := e.runtimeCmd(ctx, r, "kill", r.ID, sig); err == nil {
		return nil
	} else if st.Pid > 0 && processOf(st.Pid, r.ID) {
		n, perr := parseSignal(sig)
		if perr != nil {
			return perr
		}
		return unix.Kill(st.Pid, n)
	} else {
		return err
	}
}

// Kill sends signal (a name "KILL"/"SIGKILL" or a number; "" = KILL).
func (e *Engine) Kill(ctx context.Context, ref, signal string) error {
	r, err := e.store.get(ref)
	if err != nil {
		return err
	}
	if signal == "" {
		signal = "KILL"
	}
	n, err := parseSignal(signal)
	if err != nil {
		return err
	}
	st := e.liveState(r)
	if !st.Running && !st.Restarting {
		return fmt.Errorf("cannot kill container %s: container %s is not running: %w", ref, r.ID[:12], errdefs.ErrFailedPrecondition)
	}
	if n == unix.SIGKILL || n == unix.SIGTERM {
		// Docker: a kill is a user's stop for the restart policy... only
		// for unless-stopped/always does it keep it down? Docker restarts
		// on-failure and always after kill; it counts `docker kill` as a
		// manual stop for all policies. Do the same.
		e.store.modify(r.ID, func(cur *record) error { cur.StoppedByUser = true; return nil })
		if _, alive := monitor.Alive(e.runDir(r.ID)); alive {
			monitor.Stopping(ctx, e.runDir(r.ID))
		}
	}
	if err := e.signal(ctx, r, st, strconv.Itoa(int(n))); err != nil {
		return err
	}
	e.emitWith(ctx, "container", "kill", r, map[string]string{"signal": strconv.Itoa(int(n))})
	return nil
}

// Restart is Stop then Start.
func (e *Engine) Restart(ctx context.Context, ref string, timeout *time.Duration) error {
	return e.withContainer(ctx, ref, func(r *record) error {
		if err := e.stop(ctx, r, timeout, true); err != nil {
			return err
		}
		if err := e.start(ctx, r, nil); err != nil {
			return err
		}
		e.emit(ctx, "container", "restart", r)
		return nil
	})
}

// Remove deletes a container and everything it holds: processes, mounts,
// network, runtime state, snapshot, pin, record, and with o.Volumes its
// anonymous volumes.
func (e *Engine) Remove(ctx context.Context, ref string, o RemoveOptions) error {
	err := e.withContainer(ctx, ref, func(r *record) error { return e.remove(ctx, r, o) })
	if errdefs.IsNotFound(err) && o.Force && e.removeOrphan(ctx, ref) {
		return nil
	}
	return err
}

// removeOrphan removes what a create killed before it recorded the
// container left under the full ID id (its directory, a pin, a snapshot),
// and reports whether there was any.
func (e *Engine) removeOrphan(ctx context.Context, id string) bool {
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return false
	}
	if _, err := os.Stat(e.containerDir(id)); err != nil {
		return false
	}
	if _, err := e.store.get(id); err == nil {
		return false // recorded meanwhile: not an orphan
	}
	e.images.Snapshots.Remove(ctx, "container-"+id)
	e.images.Unpin(ctx, "container/"+id)
	e.removeImageMounts(ctx, id, "container-"+id)
	os.RemoveAll(e.runDir(id))
	os.RemoveAll(e.containerDir(id))
	return true
}

func (e *Engine) remove(ctx context.Context, r *record, o RemoveOptions) error {
	st := e.liveState(r)
	if (st.Running || st.Restarting) && !o.Force {
		return fmt.Errorf("cannot remove container %q: container is %s: stop the container before removing or force remove: %w", r.Name, st.Status, errdefs.ErrFailedPrecondition)
	}
	if st.Running || st.Restarting {
		zero := time.Duration(0)
		if err := e.stop(ctx, r, &zero, false); err != nil {
			// The monitor may hang: endMonitor kills it.
			e.warn("container %s: %v", r.ID[:12], err)
		}
	}
	// A monitor whose container has exited for good is only running its
	// clean-up, which finds the container gone: no need to wait for it.
	// Any other (stuck before start, hung) is ended.
	e.endMonitor(ctx, r, false)
	e.teardown(ctx, r)
	if err := e.images.Snapshots.Remove(ctx, r.Snapshot); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove the root file system of %s: %w", r.ID[:12], err)
	}
	if err := e.removeImageMounts(ctx, r.ID, r.Snapshot); err != nil {
		return fmt.Errorf("remove the image mounts of %s: %w", r.ID[:12], err)
	}
	// A create killed half-way may not have pinned yet.
	if err := e.images.Unpin(ctx, "container/"+r.ID); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	if o.Volumes {
		for _, v := range r.AnonVolumes {
			if err := e.vols.Remove(ctx, v); err != nil && !errdefs.IsNotFound(err) {
				e.warn("volume %s: %v", v, err)
			}
		}
	}
	if err := e.store.remove(r.ID); err != nil {
		return err
	}
	os.RemoveAll(e.containerDir(r.ID))
	e.emit(ctx, "container", "destroy", r)
	return nil
}

// Cleanup is what a monitor runs when its container has exited for good
// (`berth system cleanup ID`), before the monitor itself exits: it tears
// down the network and mounts, records the die event, and removes the
// container if it was made with --rm. When another berth command holds
// the container (a stop, a rm), that command does the teardown: Cleanup
// does not wait for it, so the monitor is never held up.
func (e *Engine) Cleanup(ctx context.Context, id string) error {
	r, err := e.store.get(id)
	if err != nil {
		return err
	}
	st := e.liveState(r)
	if st.Running || st.Restarting {
		return nil // started again meanwhile
	}
	e.emitDie(ctx, r, st)
	lctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	unlock, err := e.lockContainer(lctx, r.ID)
	if err != nil {
		return nil // busy: its holder tears down
	}
	defer unlock()
	e.teardown(ctx, r)
	if r.HostConfig.AutoRemove {
		return e.remove(ctx, r, RemoveOptions{Volumes: true})
	}
	return nil
}

// Wait blocks until the container is not running and returns its exit code.
func (e *Engine) Wait(ctx context.Context, ref string) (int, error) {
	r, err := e.store.get(ref)
	if err != nil {
		return 0, err
	}
	last := -1
	for {
		if _, err := os.Stat(e.containerDir(r.ID)); errors.Is(err, os.ErrNotExist) {
			// Removed meanwhile (--rm): give the last exit code seen.
			if last < 0 {
				last = 0
			}
			return last, nil
		}
		st := e.liveState(r)
		if st.Status == "exited" {
			last = st.ExitCode
			if st.MonitorPid == 0 {
				return st.ExitCode, nil
			}
		}
		if st.Status == "created" && st.MonitorPid == 0 {
			// Docker's condition "not-running": a container never
			// started does not run.
			return st.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Inspect returns the container's record with its current state.
func (e *Engine) Inspect(ctx context.Context, ref string) (Container, error) {
	r, err := e.store.get(ref)
	if err != nil {
		return Container{}, err
	}
	return e.inspectRecord(r), nil
}

// InspectAll returns every container of the namespace as Inspect does,
// oldest first, from one read of the store (the CRI server lists them on
// every kubelet relist).
func (e *Engine) InspectAll(ctx context.Context) ([]Container, error) {
	recs, err := e.store.list()
	if err != nil {
		return nil, err
	}
	out := make([]Container, 0, len(recs))
	for _, r := range recs {
		out = append(out, e.inspectRecord(r))
	}
	return out, nil
}

// List is `ps`.
func (e *Engine) List(ctx context.Context, o ListOptions) ([]Summary, error) {
	recs, err := e.store.list()
	if err != nil {
		return nil, err
	}
	var out []Summary
	for i := len(recs) - 1; i >= 0; i-- { // newest first, as Docker
		r := recs[i]
		c := e.inspectRecord(r)
		if !o.All && !c.State.Running && !c.State.Restarting && !c.State.Paused {
			if len(o.Filters["status"]) == 0 && len(o.Filters["exited"]) == 0 {
				continue
			}
		}
		s := summarize(r, c)
		if !matchFilters(r, c, s, o.Filters) {
			continue
		}
		out = append(out, s)
		if o.Limit > 0 && len(out) == o.Limit {
			break
		}
	}
	return out, nil
}

func summarize(r *record, c Container) Summary {
	cmd := strings.Join(append([]string{c.Path}, c.Args...), " ")
	s := Summary{
		ID: c.ID, Names: []string{c.Name}, Image: c.Config.Image, ImageID: c.Image,
		Command: cmd, Created: c.Created, State: c.State.Status, ExitCode: c.State.ExitCode,
		Labels: c.Config.Labels, Namespace: c.Namespace, Networks: append([]string{}, r.NetworkNames...),
		Status: statusText(c.State),
	}
	keys := make([]string, 0, len(c.NetworkSettings.Ports))
	for k := range c.NetworkSettings.Ports {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		port, proto, _ := strings.Cut(k, "/")
		pp, _ := strconv.Atoi(port)
		for _, b := range c.NetworkSettings.Ports[k] {
			hp, _ := strconv.Atoi(b.HostPort)
			s.Ports = append(s.Ports, PortSummary{IP: b.HostIP, PrivatePort: uint16(pp), PublicPort: uint16(hp), Type: proto})
		}
	}
	for _, m := range c.Mounts {
		if m.Name != "" {
			s.Mounts = append(s.Mounts, m.Name)
		} else {
			s.Mounts = append(s.Mounts, m.Source)
		}
	}
	return s
}

// statusText is `ps`'s STATUS column, in Docker's words.
func statusText(st State) string {
	switch st.Status {
	case "running":
		up := "Up " + units.HumanDuration(time.Since(st.StartedAt))
		if st.Health != nil {
			up += " (" + st.Health.Status + ")"
		}
		return up
	case "restarting":
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, units.HumanDuration(time.Since(st.FinishedAt)))
	case "exited":
		if st.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", st.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(time.Since(st.FinishedAt)))
	case "created":
		return "Created"
	}
	return st.Status
}

// matchFilters applies Docker's ps filters.
func matchFilters(r *record, c Container, s Summary, f map[string][]string) bool {
	any := func(key string, pred func(v string) bool) bool {
		vals := f[key]
		if len(vals) == 0 {
			return true
		}
		for _, v := range vals {
			if pred(v) {
				return true
			}
		}
		return false
	}
	name := strings.TrimPrefix(c.Name, "/")
	return any("name", func(v string) bool { return strings.Contains(name, strings.TrimPrefix(v, "/")) }) &&
		any("id", func(v string) bool { return strings.HasPrefix(c.ID, v) }) &&
		any("status", func(v string) bool { return c.State.Status == v }) &&
		any("exited", func(v string) bool { return c.State.Status == "exited" && strconv.Itoa(c.State.ExitCode) == v }) &&
		any("ancestor", func(v string) bool {
			return c.Config.Image == v || r.ImageName == v || strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), strings.TrimPrefix(v, "sha256:"))
		}) &&
		any("network", func(v string) bool {
			for _, n := range r.NetworkNames {
				if n == v {
					return true
				}
			}
			return false
		}) &&
		any("volume", func(v string) bool {
			for _, m := range c.Mounts {
				if m.Name == v || m.Source == v || m.Destination == v {
					return true
				}
			}
			return false
		}) &&
		all(f["label"], func(v string) bool {
			k, val, hasVal := strings.Cut(v, "=")
			got, ok := c.Config.Labels[k]
			return ok && (!hasVal || got == val)
		})
}

func all(vals []string, pred func(string) bool) bool {
	for _, v := range vals {
		if !pred(v) {
			return false
		}
	}
	return true
}

// parseSignal takes "KILL", "SIGKILL", "kill", "9" or "SIGRTMIN+3"; not 0.
func parseSignal(s string) (syscall.Signal, error) {
	n, err := oci.ParseSignal(s)
	if err == nil && n == 0 {
		err = fmt.Errorf("invalid signal %q", s)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return n, nil
}

// exitFilePath is where the monitor records each exit (persistent).
func (e *Engine) exitFilePath(id string) string {
	return filepath.Join(e.containerDir(id), "exit.json")
}
