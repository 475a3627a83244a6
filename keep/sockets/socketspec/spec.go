// Package socketspec declares the sockets a Keep gives its workload
// (Enarx.toml listen and connect entries, enarx.dev/listen.* and
// enarx.dev/connect.* annotations) and checks a declaration without touching
// the network. Package sockets opens them.
//
// It is a leaf of its own so that the packages that only read declarations
// (oci, the CLI's argument parsing) do not link what opening them needs
// (the TLS terminator and, through it, the attestation code).
package socketspec

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// Kinds and protocols of a Spec.
const (
	Listen  = "listen"
	Connect = "connect"
	TCP     = "tcp"
	TLS     = "tls"
)

// Spec is one declared socket.
type Spec struct {
	// Name labels the descriptor in FD_NAMES.
	Name string `json:"name"`
	// Kind is Listen or Connect.
	Kind string `json:"kind"`
	// Prot is TCP or TLS.
	Prot string `json:"prot"`
	// Addr is "host:port": the address to bind for Listen (host may be
	// empty or "::" for every address), the address to dial for Connect.
	Addr string `json:"addr"`
}

// String names the socket in errors and logs: kind, name, protocol and
// address, e.g. `listen socket "web" (tls, [::]:8443)`.
func (s Spec) String() string {
	kind := s.Kind
	if kind == "" {
		kind = "(no kind)"
	}
	return fmt.Sprintf("%s socket %q (%s, %s)", kind, s.Name, s.Prot, s.Addr)
}

// Validate checks s without touching the network: a name usable in
// FD_NAMES, a known kind and protocol, and an address of the form the kind
// needs. Errors name the field and say what to write instead.
func (s Spec) Validate() error {
	if s.Name == "" {
		return fmt.Errorf("sockets: %s: name is empty: give every socket a name, it labels the descriptor in FD_NAMES", s)
	}
	if strings.ContainsRune(s.Name, ':') {
		return fmt.Errorf("sockets: %s: name %q contains ':', which separates the entries of FD_NAMES: choose a name without ':'", s, s.Name)
	}
	if strings.IndexFunc(s.Name, unicode.IsControl) >= 0 {
		return fmt.Errorf("sockets: %s: name %q contains a control character: use printable characters only", s, s.Name)
	}
	switch s.Kind {
	case Listen, Connect:
	default:
		return fmt.Errorf("sockets: %s: kind %q is unknown: use %q or %q", s, s.Kind, Listen, Connect)
	}
	switch s.Prot {
	case TCP, TLS:
	default:
		return fmt.Errorf("sockets: %s: prot %q is unknown: use %q or %q", s, s.Prot, TCP, TLS)
	}
	_, err := s.Endpoint()
	return err
}

// Endpoint is the parsed Addr of a valid Spec.
type Endpoint struct {
	// Host is empty for a listen socket on every address, an IP address
	// (IP set) or, for a connect socket, a name to resolve.
	Host string
	// IP is Host parsed when it is an address, with its IPv6 zone if any.
	IP   netip.Addr
	Port uint16
}

// Endpoint parses s.Addr for s.Kind.
func (s Spec) Endpoint() (Endpoint, error) {
	example := "[::]:8080"
	if s.Kind == Connect {
		example = "db.example:5432"
	}
	host, portStr, err := net.SplitHostPort(s.Addr)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return Endpoint{}, fmt.Errorf("sockets: %s: addr %q has no port: write it as host:port, e.g. %q", s, s.Addr, example)
		}
		return Endpoint{}, fmt.Errorf("sockets: %s: addr %q is not host:port (%w): write it as e.g. %q, IPv6 addresses in brackets", s, s.Addr, err, example)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return Endpoint{}, fmt.Errorf("sockets: %s: addr %q: port %q is not a number from 0 to 65535: write the port number, e.g. %q", s, s.Addr, portStr, example)
	}
	e := Endpoint{Host: host, Port: uint16(port)}
	if host != "" {
		if ip, err := netip.ParseAddr(host); err == nil {
			e.IP = ip.Unmap()
		}
	}
	if z := e.IP.Zone(); z != "" && !isInterfaceName(z) {
		return Endpoint{}, fmt.Errorf("sockets: %s: addr %q: zone %q is not a network interface name: write the interface after %%, e.g. \"[fe80::1%%eth0]:%d\"", s, s.Addr, z, port)
	}
	switch s.Kind {
	case Listen:
		if host != "" && !e.IP.IsValid() {
			return Endpoint{}, fmt.Errorf("sockets: %s: addr %q: a listen address must be an IP address, not %q: use e.g. \"[::]:%d\" for every address or \"127.0.0.1:%d\" for loopback", s, s.Addr, host, port, port)
		}
	case Connect:
		if host == "" {
			return Endpoint{}, fmt.Errorf("sockets: %s: addr %q has no host: name the host to connect to, e.g. %q", s, s.Addr, example)
		}
		if port == 0 {
			return Endpoint{}, fmt.Errorf("sockets: %s: addr %q: port 0 cannot be connected to: write the server's port", s, s.Addr)
		}
		if e.IP.IsValid() && e.IP.IsUnspecified() {
			return Endpoint{}, fmt.Errorf("sockets: %s: addr %q: %s means every address, which can only be listened on: name the server's host", s, s.Addr, host)
		}
		if !e.IP.IsValid() && !isHostName(host) {
			return Endpoint{}, fmt.Errorf("sockets: %s: addr %q: host %q is neither an IP address nor a DNS name: write e.g. %q, IPv6 addresses in brackets", s, s.Addr, host, example)
		}
	}
	return e, nil
}

// isInterfaceName reports whether z can name a network interface, as an
// IPv6 zone does: what Linux takes as one (1 to 15 bytes, not "." or "..",
// no '/', ':' or white space), in printable ASCII and without '%', so that
// the address reads and is written back the same way (as in a URL).
func isInterfaceName(z string) bool {
	if len(z) == 0 || len(z) > 15 || z == "." || z == ".." {
		return false
	}
	for i := 0; i < len(z); i++ {
		if c := z[i]; c <= ' ' || c > '~' || c == '/' || c == ':' || c == '%' {
			return false
		}
	}
	return true
}

// isHostName reports whether h can be a DNS name to resolve: at most 253
// characters of letters, digits, '-', '_' and '.', in labels of at most 63.
func isHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
