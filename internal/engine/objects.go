package engine

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/network"
	"github.com/berth-project/berth/internal/secmon"
	"github.com/berth-project/berth/internal/volume"
)

// NetworkCreate makes a network.
func (e *Engine) NetworkCreate(ctx context.Context, o NetworkCreateOptions) (NetworkResource, error) {
	if o.Driver != "" && o.Driver != "bridge" {
		return NetworkResource{}, fmt.Errorf("network driver %q is not supported: the driver is bridge: %w", o.Driver, errdefs.ErrInvalidArgument)
	}
	n, err := e.net.Create(ctx, network.CreateOptions{Name: o.Name, Subnet: o.Subnet, Gateway: o.Gateway, Internal: o.Internal, Labels: o.Labels, NoDNS: o.NoDNS})
	if err != nil {
		return NetworkResource{}, err
	}
	e.emitEvent(Event{Type: "network", Action: "create", Actor: EventActor{ID: n.Name, Attributes: map[string]string{"name": n.Name, "type": "bridge"}}})
	return e.networkResource(ctx, n, nil)
}

// networkResource is n as `network inspect` shows it; recs, if not nil,
// are the containers to look through for those on it.
func (e *Engine) networkResource(ctx context.Context, n network.Network, recs []*record) (NetworkResource, error) {
	res := NetworkResource{
		Name: n.Name, ID: n.Name, Created: n.Created, Scope: "local", Driver: n.Driver,
		Internal: n.Internal, Labels: n.Labels, ConfigFile: n.ConfigFile, DNSEnabled: n.DNS,
		Containers: map[string]NetworkContainer{},
		IPAM:       IPAM{Driver: "host-local"},
	}
	if res.Labels == nil {
		res.Labels = map[string]string{}
	}
	if n.Subnet != "" {
		res.IPAM.Config = []IPAMConfig{{Subnet: n.Subnet, Gateway: n.Gateway}}
	}
	if res.IPAM.Config == nil {
		res.IPAM.Config = []IPAMConfig{}
	}
	for _, r := range recs {
		c := e.inspectRecord(r)
		ep := c.NetworkSettings.Networks[n.Name]
		if ep == nil || ep.IPAddress == "" {
			continue
		}
		res.Containers[r.ID] = NetworkContainer{
			Name: strings.TrimPrefix(r.Name, "/"), IPv4Address: fmt.Sprintf("%s/%d", ep.IPAddress, ep.IPPrefixLen), MacAddress: ep.MacAddress,
		}
	}
	return res, nil
}

// NetworkList lists networks (filters: "name", "label", "driver").
func (e *Engine) NetworkList(ctx context.Context, filters map[string][]string) ([]NetworkResource, error) {
	nets, err := e.net.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []NetworkResource
	for _, n := range nets {
		res, err := e.networkResource(ctx, n, nil)
		if err != nil {
			return nil, err
		}
		if !matchObject(res.Name, res.Labels, filters) {
			continue
		}
		if ds := filters["driver"]; len(ds) > 0 && !slices.Contains(ds, res.Driver) {
			continue
		}
		out = append(out, res)
	}
	return out, nil
}

// NetworkInspect shows a network with the containers on it.
func (e *Engine) NetworkInspect(ctx context.Context, name string) (NetworkResource, error) {
	n, err := e.net.Inspect(ctx, name)
	if err != nil {
		return NetworkResource{}, err
	}
	recs, err := e.store.list()
	if err != nil {
		return NetworkResource{}, err
	}
	return e.networkResource(ctx, n, recs)
}

// NetworkRemove removes a network no container uses.
func (e *Engine) NetworkRemove(ctx context.Context, name string) error {
	users, err := e.containersOn(name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("network %s has containers: %s; remove them first: %w", name, strings.Join(users, ", "), errdefs.ErrFailedPrecondition)
	}
	if err := e.net.Remove(ctx, name); err != nil {
		return err
	}
	e.emitEvent(Event{Type: "network", Action: "destroy", Actor: EventActor{ID: name, Attributes: map[string]string{"name": name}}})
	return nil
}

// containersOn names the containers (of every namespace? of this one) that
// join network name.
func (e *Engine) containersOn(name string) ([]string, error) {
	recs, err := e.store.listAll()
	if err != nil {
		return nil, err
	}
	var users []string
	for _, r := range recs {
		if slices.Contains(r.NetworkNames, name) {
			users = append(users, strings.TrimPrefix(r.Name, "/"))
		}
	}
	// This namespace's sandboxes (pods) too: they hold leases on it.
	sbs, err := e.store.listSandboxes()
	if err != nil {
		return nil, err
	}
	for _, sb := range sbs {
		if sb.Config.Network == name && sb.State == SandboxReady {
			users = append(users, "sandbox "+sb.Config.Name)
		}
	}
	return users, nil
}

// NetworkConnect adds a network to a container: a running container joins
// it at once (a new interface in its namespace, its name in the network's
// DNS), a stopped one at its next start.
func (e *Engine) NetworkConnect(ctx context.Context, netName, ref string, aliases []string) error {
	r, err := e.store.get(ref)
	if err != nil {
		return err
	}
	if _, err := e.net.Inspect(ctx, netName); err != nil {
		return err
	}
	mode := r.HostConfig.NetworkMode
	if mode == "host" || mode == "none" || strings.HasPrefix(mode, "container:") {
		return fmt.Errorf("container %s uses --network %s and cannot join other networks: %w", r.Name, mode, errdefs.ErrFailedPrecondition)
	}
	for _, a := range aliases {
		if !validName(a) {
			return fmt.Errorf("invalid network alias %q: %w", a, errdefs.ErrInvalidArgument)
		}
	}
	if slices.Contains(r.NetworkNames, netName) {
		return fmt.Errorf("container %s is already on network %s: %w", r.Name, netName, errdefs.ErrAlreadyExists)
	}
	unlock, err := e.lockContainer(ctx, r.ID)
	if err != nil {
		return err
	}
	defer unlock()
	var ep *EndpointSettings
	if st := e.liveState(r); st.Running {
		name := strings.TrimPrefix(r.Name, "/")
		req := network.AttachRequest{
			ContainerID: r.ID, NetNS: r.NetworkSettings.SandboxKey, Network: netName, IfName: freeIfName(r),
			Name: name, Aliases: append(append([]string{}, aliases...), r.ID[:12]),
		}
		att, err := e.net.Attach(ctx, req)
		if err != nil {
			return fmt.Errorf("network %s: %w", netName, err)
		}
		ep = &EndpointSettings{
			Aliases: aliases, NetworkID: netName, Gateway: att.Gateway, IPAddress: att.IP, IPPrefixLen: att.PrefixLen,
			MacAddress: att.MAC, IfName: att.IfName, DNSNames: append([]string{name, r.ID[:12]}, aliases...),
		}
	}
	_, err = e.store.modify(r.ID, func(cur *record) error {
		cur.NetworkNames = append(cur.NetworkNames, netName)
		if len(aliases) > 0 {
			if cur.Aliases == nil {
				cur.Aliases = map[string][]string{}
			}
			cur.Aliases[netName] = aliases
		}
		if ep != nil {
			if cur.NetworkSettings.Networks == nil {
				cur.NetworkSettings.Networks = map[string]*EndpointSettings{}
			}
			cur.NetworkSettings.Networks[netName] = ep
		}
		return nil
	})
	if err == nil {
		e.emitEvent(Event{Type: "network", Action: "connect", Actor: EventActor{ID: netName, Attributes: map[string]string{"name": netName, "container": r.ID}}})
	}
	return err
}

// freeIfName is the first ethN the running container does not use.
func freeIfName(r *record) string {
	used := map[string]bool{}
	for _, ep := range r.NetworkSettings.Networks {
		if ep != nil {
			used[ep.IfName] = true
		}
	}
	for i := 0; ; i++ {
		if n := fmt.Sprintf("eth%d", i); !used[n] {
			return n
		}
	}
}

// NetworkDisconnect removes a network from a container, at once if it runs.
func (e *Engine) NetworkDisconnect(ctx context.Context, netName, ref string, force bool) error {
	r, err := e.store.get(ref)
	if err != nil {
		return err
	}
	if !slices.Contains(r.NetworkNames, netName) {
		if force {
			return nil
		}
		return fmt.Errorf("container %s is not on network %s: %w", r.Name, netName, errdefs.ErrNotFound)
	}
	unlock, err := e.lockContainer(ctx, r.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if st := e.liveState(r); st.Running || st.Restarting {
		req := network.AttachRequest{
			ContainerID: r.ID, NetNS: r.NetworkSettings.SandboxKey, Network: netName,
			IfName: ifNameFor(r, slices.Index(r.NetworkNames, netName), netName), Name: strings.TrimPrefix(r.Name, "/"),
		}
		if slices.Index(r.NetworkNames, netName) == 0 {
			req.Ports = recordedPorts(r)
		}
		if err := e.net.Detach(ctx, req); err != nil {
			return fmt.Errorf("network %s: %w", netName, err)
		}
	}
	_, err = e.store.modify(r.ID, func(cur *record) error {
		var keep []string
		for _, n := range cur.NetworkNames {
			if n != netName {
				keep = append(keep, n)
			}
		}
		cur.NetworkNames = keep
		delete(cur.Aliases, netName)
		delete(cur.NetworkSettings.Networks, netName)
		return nil
	})
	if err == nil {
		e.emitEvent(Event{Type: "network", Action: "disconnect", Actor: EventActor{ID: netName, Attributes: map[string]string{"name": netName, "container": r.ID}}})
	}
	return err
}

// VolumeCreate makes a named volume (an existing name is returned as is).
func (e *Engine) VolumeCreate(ctx context.Context, o VolumeCreateOptions) (Volume, error) {
	v, err := e.vols.Create(ctx, volume.CreateOptions{Name: o.Name, Labels: o.Labels})
	if err != nil {
		return Volume{}, err
	}
	e.emitEvent(Event{Type: "volume", Action: "create", Actor: EventActor{ID: v.Name, Attributes: map[string]string{"name": v.Name, "driver": "local"}}})
	return apiVolume(v), nil
}

func apiVolume(v volume.Volume) Volume {
	out := Volume{Name: v.Name, Driver: "local", Mountpoint: v.Mountpoint, CreatedAt: v.CreatedAt, Labels: v.Labels, Scope: "local", Options: v.Options, Anonymous: v.Anonymous}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Options == nil {
		out.Options = map[string]string{}
	}
	return out
}

// VolumeList lists volumes (filters: "name", "label", "dangling").
func (e *Engine) VolumeList(ctx context.Context, filters map[string][]string) ([]Volume, error) {
	vs, err := e.vols.List(ctx)
	if err != nil {
		return nil, err
	}
	used, err := e.volumesInUse()
	if err != nil {
		return nil, err
	}
	var out []Volume
	for _, v := range vs {
		if !matchObject(v.Name, v.Labels, filters) {
			continue
		}
		if d := filters["dangling"]; len(d) > 0 {
			dangling := !used[v.Name]
			if (d[0] == "true" || d[0] == "1") != dangling {
				continue
			}
		}
		out = append(out, apiVolume(v))
	}
	return out, nil
}

// volumesInUse maps each volume a container (of any state) mounts, across
// every namespace of this root, to true.
func (e *Engine) volumesInUse() (map[string]bool, error) {
	recs, err := e.store.listAll()
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, r := range recs {
		for _, v := range r.Volumes {
			used[v] = true
		}
	}
	return used, nil
}

// VolumeInspect shows a volume.
func (e *Engine) VolumeInspect(ctx context.Context, name string) (Volume, error) {
	v, err := e.vols.Get(ctx, name)
	if err != nil {
		return Volume{}, err
	}
	return apiVolume(v), nil
}

// VolumeRemove removes a volume no container uses; force ignores a
// missing one (Docker's -f).
func (e *Engine) VolumeRemove(ctx context.Context, name string, force bool) error {
	used, err := e.volumesInUse()
	if err != nil {
		return err
	}
	if used[name] {
		var users []string
		recs, _ := e.store.listAll()
		for _, r := range recs {
			if slices.Contains(r.Volumes, name) {
				users = append(users, strings.TrimPrefix(r.Name, "/"))
			}
		}
		return fmt.Errorf("remove volume %s: volume is in use by %s: %w", name, strings.Join(users, ", "), errdefs.ErrFailedPrecondition)
	}
	if err := e.vols.Remove(ctx, name); err != nil {
		if force && errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	e.emitEvent(Event{Type: "volume", Action: "destroy", Actor: EventActor{ID: name, Attributes: map[string]string{"name": name}}})
	return nil
}

// VolumePrune removes unused anonymous volumes (all: every unused one).
func (e *Engine) VolumePrune(ctx context.Context, all bool) ([]string, int64, error) {
	used, err := e.volumesInUse()
	if err != nil {
		return nil, 0, err
	}
	return e.vols.Prune(ctx, func(n string) bool { return used[n] }, all)
}

// Info is `system info`.
func (e *Engine) Info(ctx context.Context) (Info, error) {
	recs, err := e.store.list()
	if err != nil {
		return Info{}, err
	}
	in := Info{
		Driver: "overlay", CgroupDriver: e.CgroupDriver(), RootDir: e.opts.Root, RunRoot: e.opts.RunRoot,
		Namespace: e.opts.Namespace, Runtimes: e.opts.Runtimes, DefaultRuntime: e.opts.DefaultRuntime,
		OperatingSystem: osRelease(), Architecture: runtime.GOARCH, NCPU: runtime.NumCPU(),
		MemTotal: int64(memTotal()), SecurityOptions: []string{"name=seccomp,profile=builtin"},
		ServerVersion: Version, RuntimeMonitor: secmon.Mechanisms(),
	}
	in.CgroupVersion = "1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		in.CgroupVersion = "2"
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		in.KernelVersion = unix.ByteSliceToString(u.Release[:])
	}
	if id, err := os.ReadFile("/etc/machine-id"); err == nil {
		in.ID = strings.TrimSpace(string(id))
	}
	for _, r := range recs {
		in.Containers++
		switch st := e.liveState(r); {
		case st.Running:
			in.ContainersRunning++
		case st.Paused:
			in.ContainersPaused++
		default:
			in.ContainersStopped++
		}
	}
	if imgs, err := e.images.List(ctx); err == nil {
		in.Images = len(imgs)
	}
	return in, nil
}

// Version is Berth's version, set at build time.
var Version = "dev"

func osRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

// DiskUsage is `system df`.
func (e *Engine) DiskUsage(ctx context.Context) (DiskUsage, error) {
	var du DiskUsage
	recs, err := e.store.list()
	if err != nil {
		return du, err
	}
	usedImages := map[string]bool{}
	for _, r := range recs {
		du.Containers.Total++
		st := e.liveState(r)
		if st.Running {
			du.Containers.Active++
		}
		usedImages[r.Image] = true
		if u, err := e.images.Snapshots.Usage(ctx, r.Snapshot); err == nil {
			du.Containers.Size += u.Size
			if !st.Running {
				du.Containers.Reclaimable += u.Size
			}
		}
	}
	if imgs, err := e.images.List(ctx); err == nil {
		seen := map[string]bool{}
		for _, im := range imgs {
			if seen[string(im.ID)] {
				continue
			}
			seen[string(im.ID)] = true
			du.Images.Total++
			du.Images.Size += im.Size
			if usedImages[string(im.ID)] {
				du.Images.Active++
			} else {
				du.Images.Reclaimable += im.Size
			}
		}
	}
	used, _ := e.volumesInUse()
	if vs, err := e.vols.List(ctx); err == nil {
		for _, v := range vs {
			du.Volumes.Total++
			size, _ := e.vols.Usage(ctx, v.Name)
			du.Volumes.Size += size
			if used[v.Name] {
				du.Volumes.Active++
			} else {
				du.Volumes.Reclaimable += size
			}
		}
	}
	return du, nil
}

// Prune is `system prune`: stopped containers, unused Berth-made networks,
// (with o.Volumes) unused volumes, then images no container uses —
// dangling ones only unless o.All (Berth keeps no untagged images, so
// without All no image goes).
func (e *Engine) Prune(ctx context.Context, o PruneOptions) (PruneReport, error) {
	var rep PruneReport
	recs, err := e.store.list()
	if err != nil {
		return rep, err
	}
	for _, r := range recs {
		if st := e.liveState(r); st.Running || st.Restarting {
			continue
		}
		// A container started meanwhile is refused by Remove: skip it.
		if err := e.Remove(ctx, r.ID, RemoveOptions{}); err != nil {
			e.warn("prune: container %s: %v", r.ID[:12], err)
			continue
		}
		rep.Containers = append(rep.Containers, r.ID)
	}
	nets, err := e.net.List(ctx)
	if err != nil {
		return rep, err
	}
	for _, n := range nets {
		if !n.BerthManaged || n.Name == "bridge" {
			continue
		}
		if users, _ := e.containersOn(n.Name); len(users) > 0 {
			continue
		}
		if err := e.net.Remove(ctx, n.Name); err == nil {
			rep.Networks = append(rep.Networks, n.Name)
		}
	}
	if o.Volumes {
		removed, size, err := e.VolumePrune(ctx, o.All)
		if err != nil {
			return rep, err
		}
		rep.Volumes, rep.SpaceReclaimed = removed, rep.SpaceReclaimed+size
	}
	if o.All {
		left, err := e.store.list()
		if err != nil {
			return rep, err
		}
		used := map[string]bool{}
		for _, r := range left {
			used[r.ImageName] = true
		}
		imgs, err := e.images.List(ctx)
		if err != nil {
			return rep, err
		}
		for _, im := range imgs {
			if used[im.Name] {
				continue
			}
			if name, err := e.images.Remove(ctx, im.Name); err == nil {
				rep.Images = append(rep.Images, name)
			}
		}
	}
	return rep, nil
}

// matchObject applies the "name" (substring) and "label" filters.
func matchObject(name string, labels map[string]string, f map[string][]string) bool {
	if ns := f["name"]; len(ns) > 0 {
		ok := false
		for _, n := range ns {
			ok = ok || strings.Contains(name, n)
		}
		if !ok {
			return false
		}
	}
	for _, l := range f["label"] {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}
