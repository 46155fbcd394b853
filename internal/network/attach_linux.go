package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/internal/errdefs"
)

// cniTimeout bounds one CNI call (a whole conflist); a plugin that hangs is
// killed when it passes.
const cniTimeout = 60 * time.Second

// PortMapping publishes a container port on the host.
type PortMapping struct {
	HostIP        string // empty: all addresses
	HostPort      uint16
	ContainerPort uint16
	Protocol      string // tcp or udp
}

// AttachRequest names a sandbox and the network to join.
type AttachRequest struct {
	ContainerID string
	NetNS       string // path of the sandbox's netns (NewNetNS)
	Network     string
	IfName      string // eth0, eth1 ...
	// Name and Aliases are registered in the network's DNS.
	Name    string
	Aliases []string
	Ports   []PortMapping
}

// Attachment is what joining a network gave a sandbox.
type Attachment struct {
	Network, IfName, IP, Gateway, MAC string
	PrefixLen                         int
	// DNSServer is set on networks with name resolution.
	DNSServer string
}

var ifNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,14}$`)

// validateTarget checks what names an attachment: its parts become file
// names and CNI cache keys.
func validateTarget(r AttachRequest) error {
	if err := validateID(r.ContainerID); err != nil {
		return err
	}
	if err := ValidateName(r.Network); err != nil {
		return err
	}
	if !ifNameRE.MatchString(r.IfName) {
		return fmt.Errorf("interface name %q must be 1 to 15 characters of [a-zA-Z0-9_.-]: %w", r.IfName, errdefs.ErrInvalidArgument)
	}
	return nil
}

func validateRequest(r AttachRequest) error {
	if err := validateTarget(r); err != nil {
		return err
	}
	for _, n := range append([]string{r.Name}, r.Aliases...) {
		if n != "" && !validDNSName(n) {
			return fmt.Errorf("container name or alias %q is not a valid DNS name: %w", n, errdefs.ErrInvalidArgument)
		}
	}
	if len(r.Aliases) > maxNamesPerRecord-1 {
		return fmt.Errorf("more than %d aliases: %w", maxNamesPerRecord-1, errdefs.ErrInvalidArgument)
	}
	for _, p := range r.Ports {
		if err := validatePort(p); err != nil {
			return err
		}
	}
	return nil
}

// runtimeList prepares a network's conflist for a CNI call: host-local
// leases go to the volatile state dir unless the conflist says otherwise,
// since they must vanish at reboot with the namespaces they describe.
func (m *Manager) runtimeList(l loaded) (*libcni.NetworkConfigList, error) {
	var doc map[string]any
	if err := json.Unmarshal(l.list.Bytes, &doc); err != nil {
		return nil, fmt.Errorf("parse CNI config of network %s: %w", l.Name, err)
	}
	plugins, _ := doc["plugins"].([]any)
	for _, p := range plugins {
		pm, _ := p.(map[string]any)
		if pm["type"] == "bridge" && ownMasquerade(l) {
			// One rule per network does it (masq_linux.go).
			pm["ipMasq"] = false
		}
		ipam, _ := pm["ipam"].(map[string]any)
		if ipam == nil || ipam["type"] != "host-local" {
			continue
		}
		if _, ok := ipam["dataDir"]; !ok {
			ipam["dataDir"] = m.ipamDir()
		}
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode CNI config of network %s: %w", l.Name, err)
	}
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("parse CNI config of network %s: %w", l.Name, err)
	}
	return list, nil
}

func runtimeConf(r AttachRequest) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: r.ContainerID, NetNS: r.NetNS, IfName: r.IfName}
	if len(r.Ports) > 0 {
		var pm []map[string]any
		for _, p := range r.Ports {
			pm = append(pm, map[string]any{
				"hostPort": int(p.HostPort), "containerPort": int(p.ContainerPort),
				"protocol": p.Protocol, "hostIP": p.HostIP,
			})
		}
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

// Attach joins the sandbox's namespace to a network (CNI ADD), publishes
// its ports and registers its name and aliases in the network's DNS. On
// any error it undoes all of that.
func (m *Manager) Attach(ctx context.Context, r AttachRequest) (att Attachment, err error) {
	if err := validateRequest(r); err != nil {
		return Attachment{}, err
	}
	if r.Network == HostNetwork || r.Network == NoneNetwork {
		return Attachment{}, fmt.Errorf("network %s takes no attachment; the engine handles it: %w", r.Network, errdefs.ErrInvalidArgument)
	}
	if _, err := os.Stat(r.NetNS); err != nil {
		return Attachment{}, fmt.Errorf("attach %s to network %s: network namespace: %w", r.ContainerID, r.Network, err)
	}
	l, err := m.lookup(r.Network)
	if err != nil {
		return Attachment{}, fmt.Errorf("attach %s: %w", r.ContainerID, err)
	}
	if len(r.Ports) > 0 && !slices.Contains(l.Plugins, "portmap") {
		return Attachment{}, fmt.Errorf("network %s cannot publish ports (no portmap plugin; internal networks have none): %w", r.Network, errdefs.ErrInvalidArgument)
	}
	list, err := m.runtimeList(l)
	if err != nil {
		return Attachment{}, err
	}
	rt := runtimeConf(r)
	if ownMasquerade(l) {
		if err := m.ensureMasquerade(ctx, l); err != nil {
			return Attachment{}, err
		}
	}

	// Undo in reverse order whatever was done, on every error path. The
	// undo runs on a fresh context: the caller's may be what expired.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err := m.reservePorts(r.ContainerID, r.Ports); err != nil {
		return Attachment{}, err
	}
	undo = append(undo, func() { m.releasePorts(r.ContainerID) })

	undo = append(undo, func() { m.cniDel(context.Background(), list, rt) })
	cctx, cancel := context.WithTimeout(ctx, m.cniTimeout)
	res, err := m.cni.AddNetworkList(cctx, list, rt)
	cancel()
	if err != nil {
		return Attachment{}, fmt.Errorf("attach %s to network %s: %w", r.ContainerID, r.Network, err)
	}
	att, err = attachmentFrom(res, r)
	if err != nil {
		return Attachment{}, err
	}

	if l.DNS && len(m.cfg.DNSBin) > 0 {
		subnet, err1 := netip.ParsePrefix(l.Subnet)
		gw, err2 := netip.ParseAddr(l.Gateway)
		if err := errors.Join(err1, err2); err != nil {
			return Attachment{}, fmt.Errorf("network %s: DNS needs its subnet and gateway: %w", r.Network, err)
		}
		names := []string{}
		for _, n := range append([]string{r.Name}, r.Aliases...) {
			if n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		ip, _ := netip.ParseAddr(att.IP)
		if len(names) > 0 {
			undo = append(undo, func() { m.unregisterNames(r.Network, r.ContainerID) })
			if err := m.updateRecords(ctx, r.Network, func(rs []record) []record {
				rs = slices.DeleteFunc(rs, func(x record) bool { return x.ID == r.ContainerID })
				return append(rs, record{ID: r.ContainerID, IP: ip, Names: names})
			}); err != nil {
				return Attachment{}, err
			}
		}
		if err := m.ensureDNS(ctx, r.Network, gw, subnet.Masked()); err != nil {
			return Attachment{}, err
		}
		att.DNSServer = gw.String()
	}
	return att, nil
}

func (m *Manager) unregisterNames(network, id string) error {
	if _, err := os.Stat(m.dnsDir(network)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cniTimeout)
	defer cancel()
	return m.updateRecords(ctx, network, func(rs []record) []record {
		return slices.DeleteFunc(rs, func(x record) bool { return x.ID == id })
	})
}

func attachmentFrom(res types.Result, r AttachRequest) (Attachment, error) {
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return Attachment{}, fmt.Errorf("attach %s to network %s: read CNI result: %w", r.ContainerID, r.Network, err)
	}
	att := Attachment{Network: r.Network, IfName: r.IfName}
	ifIndex := -1
	for i, in := range cur.Interfaces {
		if in.Name == r.IfName && in.Sandbox != "" {
			ifIndex, att.MAC = i, in.Mac
		}
	}
	for _, ip := range cur.IPs {
		if ip.Address.IP.To4() == nil {
			continue
		}
		if ip.Interface != nil && ifIndex >= 0 && *ip.Interface != ifIndex {
			continue
		}
		att.IP = ip.Address.IP.String()
		att.PrefixLen, _ = ip.Address.Mask.Size()
		if ip.Gateway != nil {
			att.Gateway = ip.Gateway.String()
		}
		break
	}
	if att.IP == "" {
		return Attachment{}, fmt.Errorf("attach %s to network %s: the CNI result has no IPv4 address for %s", r.ContainerID, r.Network, r.IfName)
	}
	return att, nil
}

// Detach undoes Attach from the CNI cache: it needs neither the sandbox's
// namespace nor its processes, and detaching twice is not an error.
func (m *Manager) Detach(ctx context.Context, r AttachRequest) error {
	if err := validateTarget(r); err != nil {
		return err
	}
	rt := &libcni.RuntimeConf{ContainerID: r.ContainerID, IfName: r.IfName}
	var list *libcni.NetworkConfigList
	cached, cachedRT, err := m.cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: r.Network}, rt)
	if err == nil && cached != nil {
		if list, err = libcni.ConfListFromBytes(cached); err != nil {
			list = nil
		} else if cachedRT != nil {
			rt.CapabilityArgs = cachedRT.CapabilityArgs
		}
	}
	var orphanIPs []string
	if list == nil {
		// No cache: the attach never finished, or a detach did. An ADD cut
		// short may still have plugins running: let them finish first.
		// Then a DEL with the current config is harmless and frees
		// anything half made.
		waitForPlugins(ctx, r.ContainerID)
		if l, err := m.lookup(r.Network); err == nil {
			list, _ = m.runtimeList(l)
			rt = runtimeConf(r)
			rt.NetNS = ""
		}
		// An ADD cut short (its berth killed) wrote no cache, so DEL gets
		// no result and the firewall plugin cannot know which address's
		// rules to remove: learn it from the lease.
		orphanIPs = m.leasedIPs(r.Network, r.ContainerID)
	}
	if r.NetNS != "" {
		if _, err := os.Stat(r.NetNS); err == nil {
			rt.NetNS = r.NetNS
		}
	}
	var errs []error
	if list != nil && rt.NetNS == "" {
		// The bridge plugin (1.1.1) learns the addresses whose masquerade
		// rules it removes from the interface inside the namespace; with
		// the namespace gone it would leave them. A stand-in namespace with
		// an interface of that name and address gives it what it
		// reads.
		if standIn, err := m.standInNetNS(ctx, list, rt); err == nil {
			rt.NetNS = standIn
			defer m.RemoveNetNS(context.Background(), standInID(r.ContainerID))
		}
	}
	if list != nil {
		if err := m.cniDel(ctx, list, rt); err != nil {
			errs = append(errs, fmt.Errorf("detach %s from network %s: %w", r.ContainerID, r.Network, err))
		}
	}
	for _, ip := range orphanIPs {
		removeFirewallRules(ctx, ip)
	}
	if err := m.unregisterNames(r.Network, r.ContainerID); err != nil {
		errs = append(errs, err)
	}
	if err := m.releasePorts(r.ContainerID); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cniDel runs CNI DEL for the whole list. libcni stops at the first plugin
// that fails, which would leave the veth and the lease of the plugins before
// it; so when the list fails, every plugin is deleted on its own, each with
// its own timeout, and the first error is returned.
func (m *Manager) cniDel(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	cctx, cancel := context.WithTimeout(ctx, m.cniTimeout)
	err := m.cni.DelNetworkList(cctx, list, rt)
	cancel()
	if err == nil {
		return nil
	}
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		conf, ierr := libcni.InjectConf(list.Plugins[i], map[string]any{"name": list.Name, "cniVersion": list.CNIVersion})
		if ierr != nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, m.cniTimeout)
		m.cni.DelNetwork(pctx, conf, rt)
		cancel()
	}
	return err
}

func standInID(id string) string { return "detach-" + id }

// standInNetNS makes a namespace holding an interface named as the
// attachment's, with the addresses of its cached CNI result.
func (m *Manager) standInNetNS(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (string, error) {
	res, err := m.cni.GetNetworkListCachedResult(list, rt)
	if err != nil || res == nil {
		return "", fmt.Errorf("no cached result for %s", rt.ContainerID)
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return "", err
	}
	id := standInID(rt.ContainerID)
	if err := validateID(id); err != nil {
		return "", err
	}
	m.RemoveNetNS(ctx, id) // a stand-in a crash left behind
	p, err := m.NewNetNS(ctx, id)
	if err != nil {
		return "", err
	}
	err = inNetNS(p, func() error {
		// A veth, not a dummy: kernels without the dummy module have veth,
		// which the bridge plugin needs anyway. Its peer dies with the
		// namespace.
		d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: rt.IfName}, PeerName: peerName(rt.IfName)}
		if err := netlink.LinkAdd(d); err != nil {
			return fmt.Errorf("add stand-in interface: %w", err)
		}
		for _, ip := range cur.IPs {
			if err := netlink.AddrAdd(d, &netlink.Addr{IPNet: &ip.Address}); err != nil {
				return fmt.Errorf("add stand-in address: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		m.RemoveNetNS(ctx, id)
		return "", err
	}
	return p, nil
}

func peerName(ifName string) string {
	if ifName == "standin0" {
		return "standin1"
	}
	return "standin0"
}
