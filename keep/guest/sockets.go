package guest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/sockets"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// selfSignedValidity is how long a self-signed Keep certificate is valid.
const selfSignedValidity = 30 * 24 * time.Hour

// openSockets opens cfg.Sockets in the container's network namespace (the
// Keep's own when it was made in it: inNetNS); nil when the Keep has none.
//
// TLS listen sockets present the Keep's identity: the chain its Steward
// issued or, without one, a self-signed certificate that carries the Keep's
// evidence (see identity.tlsIdentity). TLS connect sockets trust the
// system's roots and the Steward's CA the node policy pins, so that Keeps
// certified by one Steward trust each other.
func openSockets(ctx context.Context, cfg keep.Config, id *identity, inNetNS bool) (*sockets.Set, error) {
	if len(cfg.Sockets) == 0 {
		return nil, nil
	}
	opts := sockets.Options{NetNS: netNS(cfg)}
	if inNetNS {
		// The Keep was made in the container's new network namespace.
		opts.NetNS = ""
	}
	if hasTLS(cfg.Sockets) {
		cert, err := id.tlsCertificate(cfg.ID)
		if err != nil {
			return nil, err
		}
		opts.ServerTLS = &tlssock.Config{Certificates: []tls.Certificate{cert}}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		// The CAs of the Keep's chain: certify built it of its certificate
		// and the steward's CA as the node policy pins it, never of what
		// the steward answered, which could add any root.
		for _, ca := range cert.Certificate[1:] {
			if c, err := x509.ParseCertificate(ca); err == nil {
				roots.AddCert(c)
			}
		}
		opts.ClientTLS = &tlssock.Config{RootCAs: roots}
	}
	return sockets.Open(ctx, cfg.Sockets, opts)
}

// containerNetNS is the network namespace a confined Keep enters: the one
// its sockets were opened in, else the one its container has (at a path,
// or new), or nil for the host's, where it did what needed the host.
func containerNetNS(cfg keep.Config, socks *sockets.Set) (*os.File, error) {
	if socks != nil && socks.NetNS() != nil {
		return socks.NetNS(), nil
	}
	if ns := netNS(cfg); ns != "" {
		return sockets.OpenNetNS(ns)
	}
	return nil, nil
}

// netNS is the container's network namespace as sockets.Options.NetNS
// names it: "" for the host's, sockets.NewNetNS for a new one, or a path.
func netNS(c keep.Config) string {
	if c.NewNetNS {
		return sockets.NewNetNS
	}
	return c.NetNS
}

// hasTLS reports whether a socket of specs terminates TLS in the Keep.
func hasTLS(specs []socketspec.Spec) bool {
	return slices.ContainsFunc(specs, func(s socketspec.Spec) bool { return s.Prot == socketspec.TLS })
}

// describeSockets is what Ready.Sockets reports of the open set:
// "NAME KIND PROT ADDRESS", with the port a listen socket really got.
func describeSockets(specs []socketspec.Spec, set *sockets.Set) []string {
	var described []string
	for _, s := range specs {
		addr := s.Addr
		if a := set.Addr(s.Name); a != nil {
			addr = a.String()
		}
		described = append(described, fmt.Sprintf("%s %s %s %s", s.Name, s.Kind, s.Prot, addr))
	}
	return described
}

// tlsIdentityName is what Ready.TLSIdentity reports of the certificate
// tlsCertificate returns.
func (id *identity) tlsIdentityName() string {
	if len(id.chain) > 0 {
		return keep.TLSIdentitySteward
	}
	return keep.TLSIdentitySelfSigned
}

// tlsCertificate returns the certificate of the Keep's TLS sockets: the
// Steward's chain, else a self-signed certificate carrying the evidence.
func (id *identity) tlsCertificate(keepID string) (tls.Certificate, error) {
	if len(id.chain) > 0 {
		cert, err := tlssock.FromKeyAndChain(id.key, id.chain)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("TLS sockets: the Steward's certificate: %w", err)
		}
		return cert, nil
	}
	der, err := attestation.NewSelfSignedCertificate(id.key, id.evidence, "enarx keep "+keepID+" (self-signed: no attestation service)", selfSignedValidity)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("TLS sockets: %w", err)
	}
	cert, err := tlssock.FromKeyAndChain(id.key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("TLS sockets: %w", err)
	}
	return cert, nil
}
