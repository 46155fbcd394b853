package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/lockfile"
)

// Names of the networks every Berth host has.
const (
	DefaultNetwork = "bridge"
	HostNetwork    = "host"
	NoneNetwork    = "none"
)

// DefaultSubnet is the default bridge network's subnet. Podman takes
// 10.88.0.0/16 and Docker 172.17.0.0/16; Berth keeps clear of both so the
// three can share a host.
const DefaultSubnet = "10.87.0.0/16"

// DefaultBridge is the Linux bridge of the default network.
const DefaultBridge = "berth0"

// createPool is where Create picks a /24 when it is given no subnet.
var createPool = netip.MustParsePrefix("10.90.0.0/16")

// maxConfSize bounds a conflist read from disk: users' directories may hold
// anything.
const maxConfSize = 1 << 20

// cniVersion is the spec version of the conflists Berth writes: the newest
// that Debian's plugins (1.1.1) speak.
const cniVersion = "1.0.0"

// Config says where the network manager keeps its files and finds its
// plugins.
type Config struct {
	// ConfDir holds Berth's own conflists (ROOT/networks).
	ConfDir string
	// UserConfDirs hold users' conflists, usable by name; they need not
	// exist.
	UserConfDirs []string
	// PluginDirs are searched for CNI plugins; default /usr/lib/cni and
	// /opt/cni/bin.
	PluginDirs []string
	// StateDir is volatile (RUN/network): netns files, the CNI cache,
	// host-local leases, DNS records and servers' pid files.
	StateDir string
	// DNSBin is the command that runs a network's DNS server; the manager
	// appends the state dir and the network name, and the command must call
	// ServeDNS(ctx, stateDir, network) with them.
	DNSBin []string
}

// Manager manages networks, sandboxes' namespaces and attachments.
type Manager struct {
	cfg Config
	cni *libcni.CNIConfig
	// cniTimeout bounds one CNI call; tests shorten it.
	cniTimeout time.Duration
	// upstreamResolvConf is where DNS servers find upstream resolvers;
	// empty means /etc/resolv.conf. Tests point it elsewhere.
	upstreamResolvConf string
}

// Network describes one network.
type Network struct {
	Name   string
	Driver string
	// Subnet and Gateway of the first IPv4 range, if the IPAM config says.
	Subnet, Gateway string
	// Internal networks have no route out and no NAT.
	Internal bool
	// DNS says whether containers resolve each other's names on it.
	DNS    bool
	Labels map[string]string
	// ConfigFile is the conflist the network comes from; empty for host and
	// none.
	ConfigFile string
	Created    time.Time
	// BerthManaged networks live in Config.ConfDir; others come from
	// UserConfDirs and Berth never changes them.
	BerthManaged bool
	// Plugins are the types of the conflist's plugins, in order.
	Plugins []string
	// Bridge is the Linux bridge a bridge network uses.
	Bridge string
}

// CreateOptions are the parameters of a new network.
type CreateOptions struct {
	Name string
	// Subnet is an IPv4 CIDR; empty picks a free /24 in 10.90.0.0/16.
	Subnet string
	// Gateway defaults to the subnet's first address.
	Gateway  string
	Internal bool
	Labels   map[string]string
	// NoDNS leaves out the network's DNS server (pods get their DNS from
	// kubelet).
	NoDNS bool
}

// berthMeta is what Berth records about its networks inside the conflist,
// under the top-level key "berth", which libcni and the plugins ignore.
type berthMeta struct {
	Created  time.Time         `json:"created"`
	Labels   map[string]string `json:"labels,omitempty"`
	Internal bool              `json:"internal,omitempty"`
	DNS      bool              `json:"dns,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ValidateName checks a network name: it becomes a file name and a CNI
// cache key.
func ValidateName(name string) error {
	if len(name) > 64 || !nameRE.MatchString(name) {
		return fmt.Errorf("network name %q must be 1 to 64 characters of [a-zA-Z0-9_.-], starting with a letter or digit: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// New returns a manager for cfg and writes the default network's conflist
// if it is missing.
func New(cfg Config) (*Manager, error) {
	if cfg.ConfDir == "" || cfg.StateDir == "" {
		return nil, fmt.Errorf("network config needs ConfDir and StateDir: %w", errdefs.ErrInvalidArgument)
	}
	if len(cfg.PluginDirs) == 0 {
		cfg.PluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}
	}
	for _, d := range []string{cfg.ConfDir, cfg.StateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create network directory: %w", err)
		}
	}
	m := &Manager{cfg: cfg, cniTimeout: cniTimeout}
	m.cni = libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, filepath.Join(cfg.StateDir, "cni-cache"), nil)
	p := m.confPath(DefaultNetwork)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		conf, err := buildConflist(DefaultNetwork, DefaultBridge, netip.MustParsePrefix(DefaultSubnet),
			netip.MustParseAddr("10.87.0.1"), berthMeta{Created: time.Now().UTC()})
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(p, conf); err != nil {
			return nil, fmt.Errorf("write default network: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("stat default network: %w", err)
	}
	return m, nil
}

func (m *Manager) confPath(name string) string {
	return filepath.Join(m.cfg.ConfDir, name+".conflist")
}

// bridgeName derives a bridge name from a network name, as Docker's br-<id>:
// unique per name and configuration directory (two roots' networks of one
// name, a node's berthd and a test's, must not share a bridge), and within
// IFNAMSIZ.
func (m *Manager) bridgeName(network string) string {
	if network == DefaultNetwork {
		return DefaultBridge
	}
	h := sha256.Sum256([]byte(m.cfg.ConfDir + "\x00" + network))
	return "br-" + hex.EncodeToString(h[:])[:12]
}

// buildConflist writes the conflist of a Berth bridge network. Leases'
// dataDir is not in it: it is volatile and injected at attach time.
func buildConflist(name, bridge string, subnet netip.Prefix, gw netip.Addr, meta berthMeta) ([]byte, error) {
	routes := []map[string]string{{"dst": "0.0.0.0/0"}}
	if meta.Internal {
		// No default route: the subnet is all an internal container reaches.
		routes = nil
	}
	ipam := map[string]any{
		"type":   "host-local",
		"ranges": [][]map[string]string{{{"subnet": subnet.String(), "gateway": gw.String()}}},
	}
	if routes != nil {
		ipam["routes"] = routes
	}
	plugins := []any{
		map[string]any{
			"type":        "bridge",
			"bridge":      bridge,
			"isGateway":   true,
			"ipMasq":      !meta.Internal,
			"hairpinMode": true,
			"ipam":        ipam,
		},
	}
	if !meta.Internal {
		// snat makes published ports answer on 127.0.0.1 from the host.
		plugins = append(plugins, map[string]any{
			"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true,
		})
	}
	plugins = append(plugins,
		map[string]any{"type": "firewall", "backend": "iptables"},
		map[string]any{"type": "tuning"},
	)
	doc := map[string]any{
		"cniVersion": cniVersion,
		"name":       name,
		"plugins":    plugins,
		"berth":      meta,
	}
	return json.MarshalIndent(doc, "", "  ")
}

// parseConflist reads the parts of a conflist Berth reports. It accepts any
// valid conflist: users' ones may use other plugins.
func parseConflist(data []byte, file string) (Network, *libcni.NetworkConfigList, error) {
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return Network{}, nil, fmt.Errorf("parse CNI config %s: %w", file, err)
	}
	n := Network{Name: list.Name, ConfigFile: file}
	for _, p := range list.Plugins {
		n.Plugins = append(n.Plugins, p.Network.Type)
	}
	if len(n.Plugins) > 0 {
		n.Driver = n.Plugins[0]
	}
	var raw struct {
		Berth   *berthMeta `json:"berth"`
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPAM   struct {
				Subnet  string `json:"subnet"`
				Gateway string `json:"gateway"`
				Ranges  [][]struct {
					Subnet  string `json:"subnet"`
					Gateway string `json:"gateway"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	// Loosely typed fields are not an error here: libcni accepted the list.
	_ = json.Unmarshal(data, &raw)
	for _, p := range raw.Plugins {
		if p.Type != "bridge" && p.Type != "macvlan" && p.Type != "ipvlan" && p.Type != "ptp" {
			continue
		}
		n.Driver = p.Type
		n.Bridge = p.Bridge
		if p.Type == "bridge" && n.Bridge == "" {
			n.Bridge = "cni0" // the bridge plugin's default
		}
		n.Subnet, n.Gateway = p.IPAM.Subnet, p.IPAM.Gateway
		for _, set := range p.IPAM.Ranges {
			for _, r := range set {
				if pfx, err := netip.ParsePrefix(r.Subnet); err == nil && pfx.Addr().Is4() && n.Subnet == "" {
					n.Subnet, n.Gateway = r.Subnet, r.Gateway
				}
			}
		}
		if n.Gateway == "" && n.Subnet != "" {
			if pfx, err := netip.ParsePrefix(n.Subnet); err == nil {
				n.Gateway = pfx.Masked().Addr().Next().String()
			}
		}
		break
	}
	if raw.Berth != nil {
		n.BerthManaged = true
		n.Created = raw.Berth.Created
		n.Labels = raw.Berth.Labels
		n.Internal = raw.Berth.Internal
		n.DNS = raw.Berth.DNS
	}
	return n, list, nil
}

// loaded is a network with its parsed conflist.
type loaded struct {
	Network
	list *libcni.NetworkConfigList
}

// loadAll reads every conflist. Berth's own directory wins over users' when
// two define one name; unreadable users' files are skipped, not fatal, as a
// broken file in /etc/cni/net.d must not break `berth network ls`.
func (m *Manager) loadAll() (map[string]loaded, error) {
	out := map[string]loaded{}
	dirs := append([]string{m.cfg.ConfDir}, m.cfg.UserConfDirs...)
	for i, dir := range dirs {
		files, err := libcni.ConfFiles(dir, []string{".conflist", ".conf", ".json"})
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("list CNI configs in %s: %w", dir, err)
		}
		sort.Strings(files)
		for _, f := range files {
			n, list, err := loadFile(f)
			if err != nil {
				if i == 0 {
					return nil, err
				}
				continue
			}
			if i > 0 {
				// Only Berth's directory can mark a network as Berth's.
				n.BerthManaged = false
			}
			if ValidateName(n.Name) != nil || n.Name == HostNetwork || n.Name == NoneNetwork {
				// Its name would become a path (leases, DNS state): a
				// users' network so named is unusable, so it is not listed.
				continue
			}
			if _, dup := out[n.Name]; dup {
				continue
			}
			if n.Created.IsZero() {
				if st, err := os.Stat(f); err == nil {
					n.Created = st.ModTime().UTC()
				}
			}
			out[n.Name] = loaded{n, list}
		}
	}
	return out, nil
}

func loadFile(f string) (Network, *libcni.NetworkConfigList, error) {
	fh, err := os.Open(f)
	if err != nil {
		return Network{}, nil, fmt.Errorf("read CNI config: %w", err)
	}
	defer fh.Close()
	data, err := readLimited(fh, maxConfSize)
	if err != nil {
		return Network{}, nil, fmt.Errorf("read CNI config %s: %w", f, err)
	}
	if !strings.HasSuffix(f, ".conflist") {
		// A single plugin config: wrap it as libcni does.
		conf, err := libcni.ConfFromBytes(data)
		if err != nil {
			return Network{}, nil, fmt.Errorf("parse CNI config %s: %w", f, err)
		}
		list, err := libcni.ConfListFromConf(conf)
		if err != nil {
			return Network{}, nil, fmt.Errorf("parse CNI config %s: %w", f, err)
		}
		data = list.Bytes
		if len(data) == 0 {
			data, _ = json.Marshal(map[string]any{"cniVersion": list.CNIVersion, "name": list.Name, "plugins": []json.RawMessage{conf.Bytes}})
		}
	}
	return parseConflist(data, f)
}

func (m *Manager) lookup(name string) (loaded, error) {
	all, err := m.loadAll()
	if err != nil {
		return loaded{}, err
	}
	l, ok := all[name]
	if !ok {
		return loaded{}, fmt.Errorf("network %s: %w", name, errdefs.ErrNotFound)
	}
	return l, nil
}

func pseudo(name string) Network {
	return Network{Name: name, Driver: name, BerthManaged: true}
}

// List returns every network, the pseudo-networks host and none included,
// sorted by name.
func (m *Manager) List(ctx context.Context) ([]Network, error) {
	all, err := m.loadAll()
	if err != nil {
		return nil, err
	}
	out := []Network{pseudo(HostNetwork), pseudo(NoneNetwork)}
	for _, l := range all {
		if l.Name == HostNetwork || l.Name == NoneNetwork {
			continue
		}
		out = append(out, l.Network)
	}
	slices.SortFunc(out, func(a, b Network) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Inspect returns one network; host and none are pseudo-networks.
func (m *Manager) Inspect(ctx context.Context, name string) (Network, error) {
	if name == HostNetwork || name == NoneNetwork {
		return pseudo(name), nil
	}
	l, err := m.lookup(name)
	if err != nil {
		return Network{}, err
	}
	return l.Network, nil
}

// Create writes a new Berth bridge network with DNS by name. The bridge
// itself appears with the first container attached.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (Network, error) {
	if err := ValidateName(o.Name); err != nil {
		return Network{}, err
	}
	if o.Name == HostNetwork || o.Name == NoneNetwork || o.Name == DefaultNetwork {
		return Network{}, fmt.Errorf("network name %s is reserved: %w", o.Name, errdefs.ErrAlreadyExists)
	}
	// One creator at a time, so two cannot pick the same free subnet.
	lk, err := lockfile.Acquire(ctx, filepath.Join(m.cfg.ConfDir, ".lock"), true, nil)
	if err != nil {
		return Network{}, fmt.Errorf("lock network configs: %w", err)
	}
	defer lk.Release()
	all, err := m.loadAll()
	if err != nil {
		return Network{}, err
	}
	if l, ok := all[o.Name]; ok {
		return Network{}, fmt.Errorf("network %s already exists (%s): %w", o.Name, l.ConfigFile, errdefs.ErrAlreadyExists)
	}
	var taken []netip.Prefix
	for _, l := range all {
		if p, err := netip.ParsePrefix(l.Subnet); err == nil {
			taken = append(taken, p.Masked())
		}
	}
	var subnet netip.Prefix
	if o.Subnet == "" {
		if o.Gateway != "" {
			return Network{}, fmt.Errorf("gateway %s given without a subnet: %w", o.Gateway, errdefs.ErrInvalidArgument)
		}
		subnet, err = pickSubnet(createPool, 24, append(taken, hostPrefixes()...))
		if err != nil {
			return Network{}, err
		}
	} else {
		subnet, err = parseSubnet(o.Subnet)
		if err != nil {
			return Network{}, err
		}
		for _, l := range all {
			if p, err := netip.ParsePrefix(l.Subnet); err == nil && p.Overlaps(subnet) {
				return Network{}, fmt.Errorf("subnet %s overlaps %s of network %s: %w", subnet, l.Subnet, l.Name, errdefs.ErrInvalidArgument)
			}
		}
	}
	gw, err := parseGateway(o.Gateway, subnet)
	if err != nil {
		return Network{}, err
	}
	for k := range o.Labels {
		if k == "" {
			return Network{}, fmt.Errorf("network label with an empty key: %w", errdefs.ErrInvalidArgument)
		}
	}
	meta := berthMeta{Created: time.Now().UTC(), Labels: o.Labels, Internal: o.Internal, DNS: !o.NoDNS}
	data, err := buildConflist(o.Name, m.bridgeName(o.Name), subnet, gw, meta)
	if err != nil {
		return Network{}, fmt.Errorf("build conflist of network %s: %w", o.Name, err)
	}
	p := m.confPath(o.Name)
	if err := writeFileAtomic(p, data); err != nil {
		return Network{}, fmt.Errorf("write network %s: %w", o.Name, err)
	}
	n, _, err := parseConflist(data, p)
	if err != nil {
		os.Remove(p)
		return Network{}, err
	}
	return n, nil
}

// parseSubnet accepts an IPv4 network address with a prefix of /8 to /29.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet %q is not a CIDR such as 10.90.1.0/24: %w", s, errdefs.ErrInvalidArgument)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("subnet %s: only IPv4 subnets are supported: %w", s, errdefs.ErrInvalidArgument)
	}
	if p.Bits() < 8 || p.Bits() > 29 {
		return netip.Prefix{}, fmt.Errorf("subnet %s: prefix length must be between /8 and /29: %w", s, errdefs.ErrInvalidArgument)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("subnet %s has host bits set; did you mean %s: %w", s, p.Masked(), errdefs.ErrInvalidArgument)
	}
	return p, nil
}

func parseGateway(s string, subnet netip.Prefix) (netip.Addr, error) {
	if s == "" {
		return subnet.Addr().Next(), nil
	}
	gw, err := netip.ParseAddr(s)
	if err != nil || !subnet.Contains(gw) || gw == subnet.Addr() || gw == lastAddr(subnet) {
		return netip.Addr{}, fmt.Errorf("gateway %q is not a host address in subnet %s: %w", s, subnet, errdefs.ErrInvalidArgument)
	}
	return gw, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// pickSubnet returns the first /bits prefix in pool overlapping nothing in
// taken.
func pickSubnet(pool netip.Prefix, bits int, taken []netip.Prefix) (netip.Prefix, error) {
	step := uint32(1) << (32 - bits)
	a := pool.Addr().As4()
	start := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n := uint32(1) << (bits - pool.Bits())
	for i := uint32(0); i < n; i++ {
		v := start + i*step
		c := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits)
		if !slices.ContainsFunc(taken, c.Overlaps) {
			return c, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /%d subnet left in %s; give one with --subnet: %w", bits, pool, errdefs.ErrFailedPrecondition)
}

// Remove deletes a Berth network: its DNS server, its bridge, its leases
// and its conflist. The caller checks first that no container uses it.
func (m *Manager) Remove(ctx context.Context, name string) error {
	if name == DefaultNetwork || name == HostNetwork || name == NoneNetwork {
		return fmt.Errorf("network %s is built in and cannot be removed: %w", name, errdefs.ErrInvalidArgument)
	}
	if err := ValidateName(name); err != nil {
		return err
	}
	l, err := m.lookup(name)
	if err != nil {
		return err
	}
	if !l.BerthManaged {
		return fmt.Errorf("network %s is defined by %s, not by berth; remove that file instead: %w", name, l.ConfigFile, errdefs.ErrFailedPrecondition)
	}
	if err := m.stopDNS(ctx, name); err != nil {
		return err
	}
	if ownMasquerade(l) {
		m.removeMasquerade(ctx, l)
	}
	if l.Driver == "bridge" && l.Bridge != "" {
		if err := deleteLink(l.Bridge); err != nil {
			return fmt.Errorf("remove network %s: %w", name, err)
		}
	}
	for _, d := range []string{m.dnsDir(name), filepath.Join(m.ipamDir(), name)} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove network %s state: %w", name, err)
		}
	}
	if err := os.Remove(l.ConfigFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}

func (m *Manager) ipamDir() string { return filepath.Join(m.cfg.StateDir, "ipam") }

// writeFileAtomic replaces path with data so readers see the old or the new
// file, never a part.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes: %w", limit, errdefs.ErrInvalidArgument)
	}
	return data, nil
}
