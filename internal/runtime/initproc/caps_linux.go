package initproc

import (
	"fmt"
	"os"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/oci"
)

// processCaps applies a process's five capability sets in the two steps the
// kernel needs around the uid change: the bounding set while the process
// still has CAP_SETPCAP, the rest after setuid (with keep-caps set).
type processCaps struct {
	c    capability.Capabilities
	sets map[capability.CapType][]capability.Cap
}

// resolveCaps maps names to capabilities. Names that are no capability at
// all were refused by oci.Validate; a known one that this kernel lacks is
// one the runtime "cannot map", which the spec says is logged, not fatal,
// so it is skipped with a warning, as runc does.
func resolveCaps(names []string) []capability.Cap {
	last, _ := capability.LastCap()
	var out []capability.Cap
	for _, n := range names {
		c, ok := oci.ParseCapability(n)
		if !ok || c > last {
			fmt.Fprintf(os.Stderr, "berth-runtime: warning: capability %q is unknown to this kernel; ignored\n", n)
			continue
		}
		out = append(out, c)
	}
	return out
}

func newCaps(lc *specs.LinuxCapabilities) (*processCaps, error) {
	c, err := capability.NewPid2(0)
	if err != nil {
		return nil, fmt.Errorf("capabilities: %w", err)
	}
	if err := c.Load(); err != nil {
		return nil, fmt.Errorf("capabilities: %w", err)
	}
	if lc == nil {
		lc = &specs.LinuxCapabilities{}
	}
	// runtime-spec: a capability that "cannot be granted otherwise" is
	// logged and the runtime SHOULD NOT fail, "for example, if the runtime
	// operates in a restricted environment": what our own bounding set
	// lacks (this host withholds CAP_SYS_RESOURCE) is skipped, warned once.
	warned := map[capability.Cap]bool{}
	grantable := func(names []string) []capability.Cap {
		var out []capability.Cap
		for _, cp := range resolveCaps(names) {
			if c.Get(capability.BOUNDING, cp) {
				out = append(out, cp)
			} else if !warned[cp] {
				warned[cp] = true
				fmt.Fprintf(os.Stderr, "berth-runtime: warning: capability %s is not in the runtime's bounding set on this host; ignored\n", strings.ToUpper("cap_"+cp.String()))
			}
		}
		return out
	}
	sets := map[capability.CapType][]capability.Cap{
		capability.BOUNDING:    grantable(lc.Bounding),
		capability.EFFECTIVE:   grantable(lc.Effective),
		capability.PERMITTED:   grantable(lc.Permitted),
		capability.INHERITABLE: grantable(lc.Inheritable),
	}
	// The kernel raises an ambient capability only if it is permitted
	// and inheritable too; like runc, skip the others with a warning
	// rather than fail the container.
	for _, a := range grantable(lc.Ambient) {
		if has(sets[capability.PERMITTED], a) && has(sets[capability.INHERITABLE], a) {
			sets[capability.AMBIENT] = append(sets[capability.AMBIENT], a)
		} else {
			// runc's wording, which its tests match.
			fmt.Fprintf(os.Stderr, "berth-runtime: warning: can't raise ambient capability %s: it is not both permitted and inheritable; ignored\n", strings.ToUpper("cap_"+a.String()))
		}
	}
	return &processCaps{c: c, sets: sets}, nil
}

func (p *processCaps) applyBounding() error {
	p.c.Clear(capability.BOUNDING)
	p.c.Set(capability.BOUNDING, p.sets[capability.BOUNDING]...)
	if err := p.c.Apply(capability.BOUNDING); err != nil {
		return fmt.Errorf("process.capabilities.bounding: %w", err)
	}
	return nil
}

func (p *processCaps) apply() error {
	p.c.Clear(capability.CAPS | capability.AMBIENT)
	for _, t := range []capability.CapType{capability.EFFECTIVE, capability.PERMITTED, capability.INHERITABLE, capability.AMBIENT} {
		p.c.Set(t, p.sets[t]...)
	}
	if err := p.c.Apply(capability.CAPS); err != nil {
		return fmt.Errorf("process.capabilities: %w", err)
	}
	if err := p.c.Apply(capability.AMBIENT); err != nil {
		return fmt.Errorf("process.capabilities.ambient: %w", err)
	}
	return nil
}

func has(list []capability.Cap, c capability.Cap) bool {
	for _, v := range list {
		if v == c {
			return true
		}
	}
	return false
}
