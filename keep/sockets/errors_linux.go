package sockets

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"golang.org/x/sys/unix"
)

// openError is the error of a socket that could not be bound or
// connected: the socket, what failed, and how to fix it.
func openError(sp socketspec.Spec, err error, netns string) error {
	if h := openHint(sp, err, netns); h != "" {
		return fmt.Errorf("sockets: %s: %w: %s", sp, err, h)
	}
	return fmt.Errorf("sockets: %s: %w", sp, err)
}

func openHint(sp socketspec.Spec, err error, netns string) string {
	where := "the Keep's network namespace"
	if netns == NewNetNS {
		where = "the Keep's new network namespace, which has only loopback"
	} else if netns != "" {
		where = fmt.Sprintf("network namespace %s", netns)
	}
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return "address already in use: choose another port in Enarx.toml, or stop what listens there"
	case errors.Is(err, unix.EADDRNOTAVAIL) && sp.Kind == socketspec.Listen:
		return fmt.Sprintf("no interface of %s has this address: listen on one it has, or on \"[::]\" for every address", where)
	case errors.Is(err, unix.EACCES) && sp.Kind == socketspec.Listen:
		return "a port below 1024 needs CAP_NET_BIND_SERVICE: choose a port from 1024 up, or grant the capability"
	case errors.Is(err, unix.ECONNREFUSED):
		return fmt.Sprintf("nothing listens there as seen from %s: start the server first, or correct the address in Enarx.toml", where)
	case errors.Is(err, unix.ENETUNREACH), errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.EADDRNOTAVAIL):
		return fmt.Sprintf("no route to it from %s: check the address, or run the Keep in a namespace with a route there", where)
	case errors.Is(err, unix.ETIMEDOUT), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer in time from %s: check that the server is up and reachable, or raise Options.DialTimeout", where)
	case errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Sprintf("%s has no such address family (IPv6 disabled?): use an IPv4 address", where)
	}
	return ""
}

// tlsError is the error of a failed client handshake, with what to change
// in the client TLS configuration.
func tlsError(sp socketspec.Spec, err error, serverName string) error {
	var unknownCA x509.UnknownAuthorityError
	var name x509.HostnameError
	var invalid x509.CertificateInvalidError
	var hint string
	switch {
	case errors.As(err, &unknownCA):
		hint = "the server's certificate is not from a CA the Keep trusts: add its CA to the client TLS configuration (RootCAs or root_ca_file)"
	case errors.As(err, &name):
		hint = fmt.Sprintf("the server's certificate is not valid for %q: set server_name in the client TLS configuration to a name it holds, or connect by such a name", serverName)
	case errors.As(err, &invalid):
		hint = "the server's certificate is not valid (expired, or not for server use): have it reissued"
	case errors.Is(err, context.DeadlineExceeded):
		hint = "the handshake did not finish in time: check that the server speaks TLS on this port, or raise Options.HandshakeTimeout"
	default:
		hint = "check that the server speaks TLS on this port and shares a version and group with the client TLS configuration"
	}
	return fmt.Errorf("sockets: %s: TLS handshake: %w: %s", sp, err, hint)
}
