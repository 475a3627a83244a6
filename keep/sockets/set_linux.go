package sockets

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/log"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"golang.org/x/sys/unix"
)

// Set is the open sockets of a Keep, with the goroutines that serve its TLS
// sockets. Close it when the workload has ended.
type Set struct {
	sockets []engine.Socket
	addrs   map[string]net.Addr
	ns      *os.File

	// ctx carries the caller's logger to the goroutines; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	listeners []net.Listener
	queues    []*queue

	mu     sync.Mutex
	files  []*os.File        // the Sockets' Files, until released
	conns  map[conn]struct{} // pipes and streams, for Close
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// Open opens specs in their order, in the namespace opts.NetNS names:
// listen sockets are bound and listening, connect sockets connected (and,
// with prot "tls", handshaken), so a Keep fails at start, naming the
// socket, rather than when its workload first uses one. ctx bounds the
// opening; its values (the logger) also serve the goroutines that run
// until Close, which its cancellation does not stop.
func Open(ctx context.Context, specs []socketspec.Spec, opts Options) (*Set, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	eps := make([]socketspec.Endpoint, len(specs))
	seen := make(map[string]bool, len(specs))
	var firstServer, firstClient *socketspec.Spec
	for i := range specs {
		sp := &specs[i]
		if err := sp.Validate(); err != nil {
			return nil, err
		}
		if seen[sp.Name] {
			return nil, fmt.Errorf("sockets: two sockets are named %q: give each a name of its own, names label FD_NAMES", sp.Name)
		}
		seen[sp.Name] = true
		eps[i], _ = sp.Endpoint()
		if sp.Prot == socketspec.TLS && sp.Kind == socketspec.Listen && firstServer == nil {
			firstServer = sp
		}
		if sp.Prot == socketspec.TLS && sp.Kind == socketspec.Connect && firstClient == nil {
			firstClient = sp
		}
	}
	var serverTLS, clientTLS *tls.Config
	if firstServer != nil {
		if opts.ServerTLS == nil {
			return nil, fmt.Errorf("sockets: %s: no TLS server configuration: set Options.ServerTLS with the Keep's certificate, or declare prot \"tcp\"", firstServer)
		}
		if serverTLS, err = opts.ServerTLS.TLSConfig(); err != nil {
			return nil, fmt.Errorf("sockets: %s: server TLS configuration: %w", firstServer, err)
		}
		if len(serverTLS.Certificates) == 0 {
			return nil, fmt.Errorf("sockets: %s: the server TLS configuration has no certificate: put the Keep's certificate in Options.ServerTLS.Certificates (tlssock.FromKeyAndChain), or declare prot \"tcp\"", firstServer)
		}
	}
	if firstClient != nil {
		if clientTLS, err = opts.ClientTLS.TLSConfig(); err != nil {
			return nil, fmt.Errorf("sockets: %s: client TLS configuration: %w", firstClient, err)
		}
	}

	s := &Set{addrs: make(map[string]net.Addr, len(specs)), conns: make(map[conn]struct{})}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	var t *nsThread
	if opts.NetNS != "" {
		if t, err = enterNetNS(opts.NetNS); err != nil {
			s.cancel()
			return nil, err
		}
		defer t.stop()
		s.ns = t.ns
	}
	for i, sp := range specs {
		if sp.Kind == socketspec.Listen {
			err = s.listen(t, sp, eps[i], opts, serverTLS)
		} else {
			err = s.dial(ctx, t, sp, eps[i], opts, clientTLS)
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		log.G(ctx).WithFields(log.Fields{"socket": sp.Name, "kind": sp.Kind, "prot": sp.Prot, "addr": s.addrs[sp.Name].String()}).Debug("sockets: opened")
	}
	return s, nil
}

// Sockets are the open sockets in the order of the specs, for the engine.
// Their Files stay the Set's (see ReleaseFiles).
func (s *Set) Sockets() []engine.Socket {
	return slices.Clone(s.sockets)
}

// Addr is where the socket called name is: for a listen socket the bound
// address (with the port the kernel chose for port 0), for a connect
// socket the server's address it connected to. It is nil for an unknown
// name.
func (s *Set) Addr(name string) net.Addr {
	return s.addrs[name]
}

// NetNS is the network namespace the sockets are in, open until Close, or
// nil when they are in the process's own. Setns(2) on it lets a caller
// open further sockets (or, in tests, clients) next to them.
func (s *Set) NetNS() *os.File {
	return s.ns
}

// ReleaseFiles closes the Set's descriptors of the Sockets' Files once the
// engine holds duplicates of them. Until then the Set keeps every such
// socket open, so a workload closing a connected socket would not end the
// connection: the peer would see no FIN (tcp) or no close_notify (tls)
// before Close. Listen sockets with prot "tls" are not Files and stay
// served.
func (s *Set) ReleaseFiles() error {
	s.mu.Lock()
	files := s.files
	s.files = nil
	s.mu.Unlock()
	var errs []error
	for _, f := range files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// Close stops serving the TLS listen sockets, closes every socket and
// connection the Set holds (the ones the workload has accepted are the
// workload's), and returns once its goroutines have ended.
func (s *Set) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		s.cancel()
		var errs []error
		for _, l := range s.listeners {
			errs = append(errs, l.Close())
		}
		for _, q := range s.queues {
			q.close()
		}
		for _, c := range conns {
			c.close()
		}
		s.wg.Wait()
		errs = append(errs, s.ReleaseFiles())
		if s.ns != nil {
			errs = append(errs, s.ns.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// conn is a connection the Set serves, a pipe or a stream: close ends it
// at once.
type conn interface{ close() }

// track registers c for Close; false means the Set is closing.
func (s *Set) track(c conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Set) untrack(c conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// keepFile records a Socket's File, owned by the Set.
func (s *Set) keepFile(name string, f *os.File) {
	s.mu.Lock()
	s.files = append(s.files, f)
	s.mu.Unlock()
	s.sockets = append(s.sockets, engine.Socket{Name: name, File: f})
}

// listen opens a listen socket.
func (s *Set) listen(t *nsThread, sp socketspec.Spec, ep socketspec.Endpoint, opts Options, serverTLS *tls.Config) error {
	fd, addr, err := t.listenTCP(ep, opts.Backlog)
	if err != nil {
		return openError(sp, err, opts.NetNS)
	}
	s.addrs[sp.Name] = addr
	f := os.NewFile(uintptr(fd), sp.Name)
	if sp.Prot == socketspec.TCP {
		s.keepFile(sp.Name, f)
		return nil
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("sockets: %s: %w", sp, err)
	}
	q, err := newQueue(s, sp.Name, opts.Backlog)
	if err != nil {
		ln.Close()
		return fmt.Errorf("sockets: %s: %w", sp, err)
	}
	s.listeners = append(s.listeners, ln)
	s.queues = append(s.queues, q)
	s.sockets = append(s.sockets, engine.Socket{Name: sp.Name, Acceptor: q})
	l := &tlsListener{spec: sp, ln: ln, q: q, cfg: serverTLS, timeout: opts.HandshakeTimeout, slots: make(chan struct{}, opts.Backlog)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serve(l)
	}()
	return nil
}

// listenTCP creates, binds and listens on a TCP socket for ep. An empty or
// "::" host listens on every IPv4 and IPv6 address (IPv4 only where the
// namespace has no IPv6).
func (t *nsThread) listenTCP(ep socketspec.Endpoint, backlog int) (int, *net.TCPAddr, error) {
	ip := ep.IP
	wildcard := !ip.IsValid() || ip == netip.IPv6Unspecified()
	if !ip.IsValid() {
		ip = netip.IPv6Unspecified()
	}
	family, sa, err := t.sockaddr(netip.AddrPortFrom(ip, ep.Port))
	if err != nil {
		return -1, nil, err
	}
	fd, err := t.socket(family, unix.SOCK_STREAM)
	if wildcard && errors.Is(err, unix.EAFNOSUPPORT) {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ep.Port)}
		fd, err = t.socket(family, unix.SOCK_STREAM)
	}
	if err != nil {
		return -1, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	// Like Go's net.Listen: a restarted Keep can rebind a port that still
	// has connections in TIME_WAIT.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return -1, nil, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if family == unix.AF_INET6 && wildcard {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return -1, nil, fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return -1, nil, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return -1, nil, fmt.Errorf("listen: %w", err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return -1, nil, fmt.Errorf("getsockname: %w", err)
	}
	ok = true
	return fd, tcpAddr(bound), nil
}

// tcpAddr converts a socket address of the inet families.
func tcpAddr(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		addr := &net.TCPAddr{IP: net.IP(slices.Clone(a.Addr[:])), Port: a.Port}
		if a.ZoneId != 0 {
			// The index, not a name: names are the namespace's.
			addr.Zone = strconv.Itoa(int(a.ZoneId))
		}
		return addr
	}
	return nil
}

// dial opens a connect socket: the TCP connection, and for prot "tls" the
// handshake and the pipe to the workload's end.
func (s *Set) dial(ctx context.Context, t *nsThread, sp socketspec.Spec, ep socketspec.Endpoint, opts Options, clientTLS *tls.Config) error {
	dctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	addrs := []netip.AddrPort{netip.AddrPortFrom(ep.IP, ep.Port)}
	if !ep.IP.IsValid() {
		ips, err := t.resolver().LookupNetIP(dctx, "ip", ep.Host)
		if err != nil {
			return fmt.Errorf("sockets: %s: resolving %q: %w: check the host name, or write an IP address", sp, ep.Host, err)
		}
		addrs = addrs[:0]
		for _, ip := range ips {
			addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), ep.Port))
		}
	}
	fd := -1
	var errs []error
	for i, ap := range addrs {
		actx, acancel := context.WithDeadline(dctx, attemptDeadline(dctx, len(addrs)-i))
		c, err := t.connect(actx, ap, unix.SOCK_STREAM)
		acancel()
		if err == nil {
			fd = c
			s.addrs[sp.Name] = net.TCPAddrFromAddrPort(ap)
			break
		}
		if len(addrs) > 1 {
			err = fmt.Errorf("%s: %w", ap, err)
		}
		errs = append(errs, err)
	}
	if fd < 0 {
		return openError(sp, errors.Join(errs...), opts.NetNS)
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if sp.Prot == socketspec.TCP {
		// The workload's engine sets the mode it wants on its duplicate.
		if err := unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
			return fmt.Errorf("sockets: %s: %w", sp, err)
		}
		s.keepFile(sp.Name, os.NewFile(uintptr(fd), sp.Name))
		return nil
	}

	f := os.NewFile(uintptr(fd), sp.Name)
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("sockets: %s: %w", sp, err)
	}
	cfg := clientTLS.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = ep.Host
		if ep.IP.IsValid() {
			cfg.ServerName = ep.IP.WithZone("").String()
		}
	}
	tc := tls.Client(conn, cfg)
	hctx, hcancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
	err = tc.HandshakeContext(hctx)
	hcancel()
	if err != nil {
		conn.Close()
		return tlsError(sp, err, cfg.ServerName)
	}
	workload, pair, err := newPair()
	if err != nil {
		conn.Close()
		return fmt.Errorf("sockets: %s: %w", sp, err)
	}
	p := &pipe{tls: tc, pair: pair}
	s.track(p)
	s.keepFile(sp.Name, workload)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		p.run()
		s.untrack(p)
	}()
	return nil
}

// attemptDeadline shares the time left in ctx among the addresses left to
// try, as Go's dialer does, so that one address that does not answer
// leaves time for the next; each gets at least 2 s of what is left.
func attemptDeadline(ctx context.Context, left int) time.Time {
	deadline, _ := ctx.Deadline()
	remaining := time.Until(deadline)
	share := remaining / time.Duration(left)
	if share < 2*time.Second {
		share = min(2*time.Second, remaining)
	}
	return time.Now().Add(share)
}
