package engine

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/secmon"
)

// The runtime security monitor (internal/secmon) is wired here: a
// container's rules (ROOT/secmon.yaml, --security-opt monitor=FILE, the
// secmon.AnnotationRules label) are compiled when its spec is built, so a
// rule the host cannot enforce fails the start; the spec gets seccomp
// denies and a createRuntime hook that puts the rest in the kernel before
// the container's first instruction. The teardown tells the agent.

// besideMonitor is the executable name in berth-monitor's directory (the
// binaries are installed side by side), or "".
func (e *Engine) besideMonitor(name string) string {
	if e.opts.MonitorBin == "" {
		return ""
	}
	p := filepath.Join(filepath.Dir(e.opts.MonitorBin), name)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return ""
}

// secmonOptions finds berth-secmon beside the monitor binary, else on
// $PATH.
func (e *Engine) secmonOptions() secmon.Options {
	bin := e.besideMonitor("berth-secmon")
	if bin == "" {
		bin, _ = exec.LookPath("berth-secmon")
	}
	return secmon.Options{AgentBin: bin}
}

// secmonContainer is the `container` the rules see.
func secmonContainer(r *record) secmon.Container {
	c := secmon.Container{ID: r.ID, Name: trimSlash(r.Name), Image: r.Config.Image, ImageDigest: r.Image, Labels: r.Config.Labels}
	if ns, name := r.Config.Labels["io.kubernetes.pod.namespace"], r.Config.Labels["io.kubernetes.pod.name"]; name != "" {
		c.Pod = &secmon.Pod{Namespace: ns, Name: name}
	}
	return c
}

// secmonCheck refuses, at create, a container whose rules the host or
// its runtime cannot carry out: rules compiled with its fields, and a
// Landlock plan (exec/open deny) only with a runtime that applies it.
func (e *Engine) secmonCheck(ctx context.Context, r *record) error {
	rs, err := secmon.ContainerRules(e.opts.Root, r.HostConfig.SecurityOpt, r.Config.Labels)
	if err != nil || rs == nil {
		return err
	}
	plan, err := rs.Plan(secmonContainer(r))
	if err != nil {
		return err
	}
	return secmon.CheckRuntime(ctx, plan, r.HostConfig.Runtime, r.Runtime)
}

// secmonPrepare adds the container's monitor rules to its spec.
func (e *Engine) secmonPrepare(ctx context.Context, r *record, s *specs.Spec, rootfs string) error {
	rs, err := secmon.ContainerRules(e.opts.Root, r.HostConfig.SecurityOpt, r.Config.Labels)
	if err != nil || rs == nil {
		return err
	}
	c := secmonContainer(r)
	// The global rules may have changed since create.
	if plan, err := rs.Plan(c); err != nil {
		return err
	} else if err := secmon.CheckRuntime(ctx, plan, r.HostConfig.Runtime, r.Runtime); err != nil {
		return err
	}
	reg := secmon.Registration{
		Container:  c,
		AlertsPath: secmon.AlertsPath(e.opts.Root),
		EventsPath: e.eventsPath(),
		Namespace:  e.opts.Namespace,
		Rootfs:     rootfs,
	}
	return secmon.Prepare(e.secmonOptions(), rs, reg, filepath.Join(e.runDir(r.ID), "secmon.json"), s)
}

// secmonRelease tells the agent the container is gone (nothing when it
// had no rules).
func (e *Engine) secmonRelease(ctx context.Context, r *record) {
	if err := secmon.Release(ctx, e.secmonOptions(), r.ID); err != nil {
		e.warn("container %s: monitor: %v", r.ID[:12], err)
	}
}

func trimSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}
