package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Files of a network's DNS state directory, StateDir/dns/<network>/.
const (
	recordsFile = "records"
	serverFile  = "server.json"
	pidFile     = "pid"
	lockFile    = "lock"
	logFile     = "log"
)

// forwardTimeout bounds one upstream exchange; forwardBudget a whole
// forwarded query, so a dead upstream costs the client at most that.
const (
	forwardTimeout = 2 * time.Second
	forwardBudget  = 4 * time.Second
)

// serverConfig is written by the manager before it starts a server.
type serverConfig struct {
	Listen string `json:"listen"` // the gateway address
	Subnet string `json:"subnet"` // clients allowed
	// ResolvConf names the upstream resolvers' file; empty means
	// /etc/resolv.conf.
	ResolvConf string `json:"resolvConf,omitempty"`
}

// fileStamp says whether a file changed since it was read.
type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func stampOf(fi os.FileInfo) fileStamp {
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

// dnsHandler answers one network's queries.
type dnsHandler struct {
	dir    string
	subnet netip.Prefix
	self   netip.Addr
	resolv string

	// mu guards the fields below it.
	mu        sync.Mutex
	recStamp  fileStamp
	names     map[string][]netip.Addr
	rcStamp   fileStamp
	upstreams []string
}

// ServeDNS is the body of a network's DNS server process: it answers A
// queries for the names in the network's records file, forwards others to
// the host's resolvers, and returns when ctx is done, on SIGTERM or SIGINT,
// or when the network's state directory is removed.
func ServeDNS(ctx context.Context, stateDir, network string) error {
	if err := ValidateName(network); err != nil {
		return err
	}
	dir := filepath.Join(stateDir, "dns", network)
	data, err := os.ReadFile(filepath.Join(dir, serverFile))
	if err != nil {
		return fmt.Errorf("read DNS server config of network %s: %w", network, err)
	}
	var sc serverConfig
	if err := json.Unmarshal(data, &sc); err != nil {
		return fmt.Errorf("parse DNS server config of network %s: %w", network, err)
	}
	listen, err := netip.ParseAddr(sc.Listen)
	if err != nil {
		return fmt.Errorf("DNS server config of network %s: listen address: %w", network, err)
	}
	subnet, err := netip.ParsePrefix(sc.Subnet)
	if err != nil {
		return fmt.Errorf("DNS server config of network %s: subnet: %w", network, err)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	addr := net.JoinHostPort(listen.String(), "53")
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("DNS server of network %s: %w", network, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("DNS server of network %s: %w", network, err)
	}
	h := &dnsHandler{dir: dir, subnet: subnet, self: listen, resolv: sc.ResolvConf}
	if h.resolv == "" {
		h.resolv = hostResolvConf
	}
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- udp.ActivateAndServe() }()
	go func() { errc <- tcp.ActivateAndServe() }()

	// The pid file, written once the sockets are bound, is the starter's
	// signal that the server is ready.
	pid := strconv.Itoa(os.Getpid())
	if err := writeFileAtomic(filepath.Join(dir, pidFile), []byte(pid+"\n")); err != nil {
		udp.Shutdown()
		tcp.Shutdown()
		return fmt.Errorf("write DNS server pid of network %s: %w", network, err)
	}
	defer func() {
		if b, err := os.ReadFile(filepath.Join(dir, pidFile)); err == nil && strings.TrimSpace(string(b)) == pid {
			os.Remove(filepath.Join(dir, pidFile))
		}
	}()

	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case serveErr = <-errc:
			break loop
		case <-tick.C:
			// A removed network takes its directory with it.
			if _, err := os.Stat(filepath.Join(dir, serverFile)); errors.Is(err, fs.ErrNotExist) {
				break loop
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	udp.ShutdownContext(sctx)
	tcp.ShutdownContext(sctx)
	if serveErr != nil {
		return fmt.Errorf("DNS server of network %s: %w", network, serveErr)
	}
	return nil
}

func (h *dnsHandler) lookup(name string) ([]netip.Addr, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := filepath.Join(h.dir, recordsFile)
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		h.names, h.recStamp = nil, fileStamp{}
	case err == nil && stampOf(fi) != h.recStamp:
		if f, err := os.Open(p); err == nil {
			data, err := readLimited(f, maxRecordsSize)
			f.Close()
			if err == nil {
				if rs, err := parseRecords(data); err == nil {
					h.names, h.recStamp = index(rs), stampOf(fi)
				}
			}
		}
	}
	a, ok := h.names[name]
	return a, ok
}

func (h *dnsHandler) upstreamServers() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	fi, err := os.Stat(h.resolv)
	if err != nil {
		return h.upstreams
	}
	if st := stampOf(fi); st != h.rcStamp {
		var ups []string
		for _, s := range readResolvConf(h.resolv).Nameservers {
			// Never forward to ourselves.
			if a, err := netip.ParseAddr(s); err == nil && a != h.self {
				ups = append(ups, net.JoinHostPort(s, "53"))
			}
		}
		h.upstreams, h.rcStamp = ups, st
	}
	return h.upstreams
}

// clientAllowed keeps the records to the network's own members: another
// network's containers can route to this gateway address through the host.
func (h *dnsHandler) clientAllowed(a net.Addr) bool {
	var ip net.IP
	switch v := a.(type) {
	case *net.UDPAddr:
		ip = v.IP
	case *net.TCPAddr:
		ip = v.IP
	}
	addr, ok := netip.AddrFromSlice(ip)
	return ok && h.subnet.Contains(addr.Unmap())
}

func (h *dnsHandler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	if !h.clientAllowed(w.RemoteAddr()) {
		resp.SetRcode(req, dns.RcodeRefused)
		w.WriteMsg(resp)
		return
	}
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeNotImplemented)
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	if addrs, ok := h.lookup(name); ok && q.Qclass == dns.ClassINET {
		resp.SetReply(req)
		resp.Authoritative = true
		resp.RecursionAvailable = true
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
			for _, a := range addrs {
				resp.Answer = append(resp.Answer, &dns.A{
					// TTL 0: a container that leaves stops resolving at once.
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A:   a.AsSlice(),
				})
			}
		}
		// Other types of a known name: no data (NOERROR, empty), so
		// resolvers asking AAAA first fall back to A.
		w.WriteMsg(resp)
		return
	}
	w.WriteMsg(h.forward(req, w.RemoteAddr().Network()))
}

func (h *dnsHandler) forward(req *dns.Msg, network string) *dns.Msg {
	deadline := time.Now().Add(forwardBudget)
	for _, up := range h.upstreamServers() {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		c := &dns.Client{Net: network, Timeout: min(forwardTimeout, left)}
		r, _, err := c.Exchange(req, up)
		if err == nil && r.Truncated && network == "udp" {
			c.Net = "tcp"
			r, _, err = c.Exchange(req, up)
		}
		if err == nil && r != nil {
			return r
		}
	}
	resp := new(dns.Msg)
	resp.SetRcode(req, dns.RcodeServerFailure)
	return resp
}
