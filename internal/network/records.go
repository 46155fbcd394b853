package network

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
)

// The records file of a network (StateDir/dns/<network>/records) has one
// line per attachment:
//
//	<container-id> <ipv4> <name> [<alias>...]
//
// Attach and Detach rewrite it whole and rename it into place; the DNS
// server rereads it when its inode, size or mtime change.

// record is one attachment's names.
type record struct {
	ID    string
	IP    netip.Addr
	Names []string
}

// maxRecordsSize bounds the records file the DNS server reads; the file is
// ours, but its names come from users.
const maxRecordsSize = 8 << 20

// maxNamesPerRecord bounds a container's name plus aliases.
const maxNamesPerRecord = 64

// dnsNameRE is what the engine allows for container names and aliases, and
// nothing that could change the meaning of a line of the records file.
var dnsNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func validDNSName(s string) bool {
	return len(s) <= 253 && dnsNameRE.MatchString(s) && !strings.Contains(s, "..")
}

func parseRecords(data []byte) ([]record, error) {
	if len(data) > maxRecordsSize {
		return nil, fmt.Errorf("records file larger than %d bytes: %w", maxRecordsSize, errdefs.ErrInvalidArgument)
	}
	var out []record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxRecordsSize)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("records line %d: want <id> <ip> <name>..., got %d fields: %w", line, len(f), errdefs.ErrInvalidArgument)
		}
		if len(f) > 2+maxNamesPerRecord {
			return nil, fmt.Errorf("records line %d: more than %d names: %w", line, maxNamesPerRecord, errdefs.ErrInvalidArgument)
		}
		if !idRE.MatchString(f[0]) {
			return nil, fmt.Errorf("records line %d: bad container ID %q: %w", line, f[0], errdefs.ErrInvalidArgument)
		}
		ip, err := netip.ParseAddr(f[1])
		if err != nil || !ip.Is4() {
			return nil, fmt.Errorf("records line %d: %q is not an IPv4 address: %w", line, f[1], errdefs.ErrInvalidArgument)
		}
		r := record{ID: f[0], IP: ip}
		for _, n := range f[2:] {
			if !validDNSName(n) {
				return nil, fmt.Errorf("records line %d: bad name %q: %w", line, n, errdefs.ErrInvalidArgument)
			}
			r.Names = append(r.Names, strings.ToLower(n))
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("records line %d: %w", line+1, err)
	}
	return out, nil
}

func formatRecords(rs []record) []byte {
	var b bytes.Buffer
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %s %s\n", r.ID, r.IP, strings.Join(r.Names, " "))
	}
	return b.Bytes()
}

// index maps lower-case names to their addresses, in file order.
func index(rs []record) map[string][]netip.Addr {
	m := map[string][]netip.Addr{}
	for _, r := range rs {
		for _, n := range r.Names {
			m[n] = append(m[n], r.IP)
		}
	}
	return m
}

// ParseAddHost splits a --add-host value "host:ip" (the IP may be IPv6,
// or "host-gateway" for the container's first gateway).
func ParseAddHost(s string) (host, ip string, err error) {
	host, ip, ok := strings.Cut(s, ":")
	if !ok || host == "" || ip == "" {
		return "", "", fmt.Errorf("--add-host %q: want host:ip: %w", s, errdefs.ErrInvalidArgument)
	}
	if !validDNSName(host) {
		return "", "", fmt.Errorf("--add-host %q: bad host name %q: %w", s, host, errdefs.ErrInvalidArgument)
	}
	if ip == "host-gateway" {
		return host, ip, nil
	}
	a, err := netip.ParseAddr(strings.Trim(ip, "[]"))
	if err != nil || a.Zone() != "" {
		return "", "", fmt.Errorf("--add-host %q: bad IP address %q: %w", s, ip, errdefs.ErrInvalidArgument)
	}
	return host, a.String(), nil
}
