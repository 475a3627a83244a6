package sockets

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// Defaults of Options.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 10 * time.Second
	DefaultBacklog          = 128
)

// NewNetNS is the Options.NetNS that asks for a new network namespace with
// only loopback, up: what a runc container gets without host networking.
const NewNetNS = "new"

// Options are the Keep's side of the declared sockets: its TLS identity and
// trust, limits, and the network namespace the sockets live in. The zero
// value opens TCP sockets in the calling process's namespace; a TLS listen
// socket needs ServerTLS.
type Options struct {
	// ServerTLS is the Keep's TLS server configuration for listen sockets
	// with prot "tls": Certificates (or CertFile/KeyFile) must hold the
	// Keep's certificate, e.g. from tlssock.FromKeyAndChain. Algorithms
	// left empty are tlssock's defaults (TLS 1.3, X25519MLKEM768 first).
	// Required when such a socket is declared.
	ServerTLS *tlssock.Config
	// ClientTLS is the TLS client configuration for connect sockets with
	// prot "tls": RootCAs (or RootCAFile) are the CAs the servers must be
	// certified by. nil means tlssock's zero Config: the system roots. An
	// empty ServerName means, for each socket, the host of its Addr.
	ClientTLS *tlssock.Config
	// HandshakeTimeout bounds each TLS handshake, server and client side;
	// 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// DialTimeout bounds the TCP connection of each connect socket,
	// including name resolution; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// Backlog bounds, per listen socket, the connections the kernel holds
	// for accept and, with prot "tls", both the connections in handshake
	// and those handshaken but not yet accepted by the workload (further
	// ones are closed); 0 means DefaultBacklog.
	Backlog int
	// NetNS is the network namespace the sockets are opened in: "" for the
	// calling process's, NewNetNS for a new one with only loopback, or the
	// path of a namespace, e.g. "/var/run/netns/cni-1234" or
	// "/proc/PID/ns/net". A socket stays in the namespace it was created
	// in; host names of connect sockets are resolved from inside it too.
	// Anything but "" needs CAP_SYS_ADMIN.
	NetNS string
}

// withDefaults returns o with zero fields set to their defaults, or an
// error naming the field that is out of range.
func (o Options) withDefaults() (Options, error) {
	if o.HandshakeTimeout < 0 || o.DialTimeout < 0 {
		return o, fmt.Errorf("sockets: negative HandshakeTimeout %s or DialTimeout %s: use 0 for the default or a positive duration", o.HandshakeTimeout, o.DialTimeout)
	}
	if o.Backlog < 0 {
		return o, fmt.Errorf("sockets: negative Backlog %d: use 0 for the default (%d) or a positive number", o.Backlog, DefaultBacklog)
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Backlog == 0 {
		o.Backlog = DefaultBacklog
	}
	if o.NetNS != "" && o.NetNS != NewNetNS && !filepath.IsAbs(o.NetNS) {
		return o, fmt.Errorf("sockets: NetNS %q is neither a path nor %q: use \"\" for the Keep's own namespace, %q for a new one, or an absolute path such as /var/run/netns/NAME", o.NetNS, NewNetNS, NewNetNS)
	}
	return o, nil
}
