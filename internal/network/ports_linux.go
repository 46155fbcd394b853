package network

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
)

// Published ports are reserved by files StateDir/ports/<proto>_<ip>_<port>
// holding the container ID: portmap's DNAT rules hold no socket, so a bind
// test alone would let two containers publish one port.

func validatePort(p PortMapping) error {
	if p.Protocol != "tcp" && p.Protocol != "udp" {
		return fmt.Errorf("port mapping %d/%s: protocol must be tcp or udp: %w", p.HostPort, p.Protocol, errdefs.ErrInvalidArgument)
	}
	if p.HostPort == 0 || p.ContainerPort == 0 {
		return fmt.Errorf("port mapping %d:%d/%s: ports must be 1 to 65535: %w", p.HostPort, p.ContainerPort, p.Protocol, errdefs.ErrInvalidArgument)
	}
	if p.HostIP != "" {
		a, err := netip.ParseAddr(p.HostIP)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("port mapping %d/%s: host IP %q is not an IP address: %w", p.HostPort, p.Protocol, p.HostIP, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func hostAddr(p PortMapping) string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return net.JoinHostPort(ip, strconv.Itoa(int(p.HostPort))) + "/" + p.Protocol
}

func (m *Manager) portsDir() string { return filepath.Join(m.cfg.StateDir, "ports") }

func portFile(p PortMapping) string {
	ip := "0.0.0.0"
	if p.HostIP != "" {
		ip = netip.MustParseAddr(p.HostIP).String()
	}
	return fmt.Sprintf("%s_%s_%d", p.Protocol, ip, p.HostPort)
}

// reservation returns the ID of a container that published a port
// clashing with p, if any.
func (m *Manager) reservation(p PortMapping) (string, bool) {
	entries, err := os.ReadDir(m.portsDir())
	if err != nil {
		return "", false
	}
	for _, e := range entries {
		f := strings.SplitN(e.Name(), "_", 3)
		if len(f) != 3 || f[0] != p.Protocol || f[2] != strconv.Itoa(int(p.HostPort)) {
			continue
		}
		ip := "0.0.0.0"
		if p.HostIP != "" {
			ip = netip.MustParseAddr(p.HostIP).String()
		}
		if f[1] == ip || f[1] == "0.0.0.0" || ip == "0.0.0.0" {
			id, _ := os.ReadFile(filepath.Join(m.portsDir(), e.Name()))
			return string(id), true
		}
	}
	return "", false
}

// CheckPorts refuses host ports that something holds already: a socket of
// any process, or another container's published port.
func (m *Manager) CheckPorts(ports []PortMapping) error {
	for i, p := range ports {
		if err := validatePort(p); err != nil {
			return err
		}
		for _, q := range ports[:i] {
			if q.Protocol == p.Protocol && q.HostPort == p.HostPort && (q.HostIP == p.HostIP || q.HostIP == "" || p.HostIP == "") {
				return fmt.Errorf("host port %s is published twice: %w", hostAddr(p), errdefs.ErrInvalidArgument)
			}
		}
		if id, ok := m.reservation(p); ok {
			return fmt.Errorf("host port %s is already published by container %.12s: %w", hostAddr(p), id, errdefs.ErrFailedPrecondition)
		}
		if err := tryBind(p); errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("host IP %s of port mapping %d/%s is not an address of this host: %w", p.HostIP, p.HostPort, p.Protocol, errdefs.ErrInvalidArgument)
		} else if err != nil {
			return fmt.Errorf("host port %s is already in use: %w", hostAddr(p), errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

// tryBind binds the port for a moment. An empty HostIP binds the IPv6
// wildcard, which on Linux clashes with IPv4 sockets too.
func tryBind(p PortMapping) error {
	addr := net.JoinHostPort(p.HostIP, strconv.Itoa(int(p.HostPort)))
	if p.Protocol == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

func (m *Manager) reservePorts(id string, ports []PortMapping) error {
	if len(ports) == 0 {
		return nil
	}
	if err := os.MkdirAll(m.portsDir(), 0o755); err != nil {
		return fmt.Errorf("reserve ports: %w", err)
	}
	for i, p := range ports {
		f, err := os.OpenFile(filepath.Join(m.portsDir(), portFile(p)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.WriteString(id)
			f.Close()
		}
		if err != nil {
			for _, q := range ports[:i] {
				os.Remove(filepath.Join(m.portsDir(), portFile(q)))
			}
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("host port %s is already published: %w", hostAddr(p), errdefs.ErrFailedPrecondition)
			}
			return fmt.Errorf("reserve host port %s: %w", hostAddr(p), err)
		}
	}
	return nil
}

// releasePorts drops every reservation of the container.
func (m *Manager) releasePorts(id string) error {
	entries, err := os.ReadDir(m.portsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release ports of %s: %w", id, err)
	}
	for _, e := range entries {
		p := filepath.Join(m.portsDir(), e.Name())
		if b, err := os.ReadFile(p); err == nil && string(b) == id {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("release port %s of %s: %w", e.Name(), id, err)
			}
		}
	}
	return nil
}
