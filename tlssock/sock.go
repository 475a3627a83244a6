package tlssock

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/pion/dtls/v3"
)

// isDatagram reports whether network is a UDP network (DTLS) or a TCP one
// (TLS); other networks are errors.
func isDatagram(network string) (bool, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return false, nil
	case "udp", "udp4", "udp6":
		return true, nil
	}
	return false, fmt.Errorf("tlssock: network %q: use tcp (TLS) or udp (DTLS)", network)
}

// Listen listens on addr: TLS for a "tcp" network, DTLS for "udp". A server
// needs a certificate (Certificates or CertFile/KeyFile). ctx bounds the
// setup only, as with net.ListenConfig. Accepted connections handshake on
// first use; ConnectionState completes the handshake.
func Listen(ctx context.Context, network, addr string, cfg *Config) (net.Listener, error) {
	dgram, err := isDatagram(network)
	if err != nil {
		return nil, err
	}
	if dgram {
		dc, err := cfg.DTLSConfig()
		if err != nil {
			return nil, err
		}
		if len(dc.Certificates) == 0 {
			return nil, errNoCertificate
		}
		laddr, err := net.ResolveUDPAddr(network, addr)
		if err != nil {
			return nil, fmt.Errorf("tlssock: listen %s %q: %w", network, addr, err)
		}
		l, err := dtls.Listen(network, laddr, dc)
		if err != nil {
			return nil, fmt.Errorf("tlssock: listen %s %q: %w", network, addr, err)
		}
		return l, nil
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	if len(tc.Certificates) == 0 {
		return nil, errNoCertificate
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("tlssock: listen %s %q: %w", network, addr, err)
	}
	return tls.NewListener(l, tc), nil
}

var errNoCertificate = errors.New("tlssock: a server needs a certificate: set cert_file and key_file, or Certificates (e.g. from FromKeyAndChain)")

// Dial connects to addr and completes the handshake within ctx: TLS for a
// "tcp" network, DTLS for "udp". The server's certificate is verified
// against RootCAs (or the system roots) and ServerName, by default the host
// of addr.
func Dial(ctx context.Context, network, addr string, cfg *Config) (net.Conn, error) {
	dgram, err := isDatagram(network)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tlssock: dial %s %q: %w", network, addr, err)
	}
	if dgram {
		dc, err := cfg.DTLSConfig()
		if err != nil {
			return nil, err
		}
		if dc.ServerName == "" {
			dc.ServerName = host
		}
		raddr, err := net.ResolveUDPAddr(network, addr)
		if err != nil {
			return nil, fmt.Errorf("tlssock: dial %s %q: %w", network, addr, err)
		}
		c, err := dtls.Dial(network, raddr, dc)
		if err != nil {
			return nil, fmt.Errorf("tlssock: dial %s %q: %w", network, addr, err)
		}
		if err := c.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("tlssock: DTLS handshake with %s: %w", addr, err)
		}
		return c, nil
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: tc}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("tlssock: dial %s %q: %w", network, addr, err)
	}
	return c, nil
}

// Server returns the server side of TLS over an existing stream connection.
// The handshake runs on first use (or HandshakeContext).
func Server(conn net.Conn, cfg *Config) (*tls.Conn, error) {
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	if len(tc.Certificates) == 0 {
		return nil, errNoCertificate
	}
	return tls.Server(conn, tc), nil
}

// Client returns the client side of TLS over an existing stream connection.
// Set ServerName: there is no dialed address to take it from.
func Client(conn net.Conn, cfg *Config) (*tls.Conn, error) {
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	return tls.Client(conn, tc), nil
}

// State is what a handshake negotiated, by name.
type State struct {
	// Protocol is "TLS" or "DTLS".
	Protocol string
	// Version is "1.3" or "1.2".
	Version string
	// Group is the key-exchange group, e.g. "X25519MLKEM768". Empty for
	// DTLS: pion/dtls does not report it.
	Group string
	// CipherSuite is the IANA name of the cipher suite.
	CipherSuite string
	// ServerName is the SNI the client sent (TLS).
	ServerName string
	// PeerCertificates is the peer's chain, leaf first.
	PeerCertificates []*x509.Certificate
	// Verified is set when the peer's chain was verified against this
	// endpoint's trusted CAs.
	Verified bool
}

// ConnectionState completes the handshake of a connection from this package
// if needed and reports what it negotiated.
func ConnectionState(conn net.Conn) (*State, error) {
	switch c := conn.(type) {
	case *tls.Conn:
		if err := c.Handshake(); err != nil {
			return nil, fmt.Errorf("tlssock: TLS handshake with %s: %w", c.RemoteAddr(), err)
		}
		cs := c.ConnectionState()
		return &State{
			Protocol:         "TLS",
			Version:          versionName(cs.Version),
			Group:            groupName(cs.CurveID),
			CipherSuite:      tls.CipherSuiteName(cs.CipherSuite),
			ServerName:       cs.ServerName,
			PeerCertificates: cs.PeerCertificates,
			Verified:         len(cs.VerifiedChains) > 0,
		}, nil
	case *dtls.Conn:
		if err := c.Handshake(); err != nil {
			return nil, fmt.Errorf("tlssock: DTLS handshake with %s: %w", c.RemoteAddr(), err)
		}
		ds, ok := c.ConnectionState()
		if !ok {
			return nil, fmt.Errorf("tlssock: DTLS connection with %s has no state", c.RemoteAddr())
		}
		s := &State{Protocol: "DTLS", Version: "1.2", CipherSuite: dtls.CipherSuiteName(ds.CipherSuiteID)}
		for _, raw := range ds.PeerCertificates {
			cert, err := x509.ParseCertificate(raw)
			if err != nil {
				return nil, fmt.Errorf("tlssock: DTLS peer certificate: %w", err)
			}
			s.PeerCertificates = append(s.PeerCertificates, cert)
		}
		// pion verifies every peer certificate it accepts under the client
		// auth modes this package allows (never InsecureSkipVerify).
		s.Verified = len(s.PeerCertificates) > 0
		return s, nil
	}
	return nil, fmt.Errorf("tlssock: %T is not a TLS or DTLS connection from this package", conn)
}
