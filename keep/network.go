package keep

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/keep/sockets"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// Identities a Keep presents on its TLS sockets (Ready.TLSIdentity).
const (
	// TLSIdentitySteward: the certificate chain the Steward issued.
	TLSIdentitySteward = "steward"
	// TLSIdentitySelfSigned: no Steward certified the Keep; its
	// certificate is self-signed and carries its evidence.
	TLSIdentitySelfSigned = "self-signed"
)

// selfSignedValidity is how long a self-signed Keep certificate is valid.
const selfSignedValidity = 30 * 24 * time.Hour

// openSockets opens cfg.Sockets in the container's network namespace.
//
// TLS listen sockets present the Keep's identity: the chain its Steward
// issued (chainPEM) or, without one, a self-signed certificate that carries
// the Keep's evidence (reported as TLSIdentitySelfSigned). TLS connect
// sockets trust the system's roots and the CAs of the Keep's own chain, so
// that Keeps certified by one Steward trust each other.
func openSockets(ctx context.Context, cfg Config, att *attester, evidence *attestation.Evidence, chainPEM []byte) (*sockets.Set, []string, string, error) {
	if len(cfg.Sockets) == 0 {
		return nil, nil, "", nil
	}
	opts := sockets.Options{NetNS: cfg.NetNS}
	if cfg.NewNetNS {
		opts.NetNS = sockets.NewNetNS
	}
	identity := ""
	if slices.ContainsFunc(cfg.Sockets, func(s sockets.Spec) bool { return s.Prot == sockets.TLS }) {
		cert, id, err := tlsIdentity(cfg, att, evidence, chainPEM)
		if err != nil {
			return nil, nil, "", err
		}
		identity = id
		opts.ServerTLS = &tlssock.Config{Certificates: []tls.Certificate{cert}}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		for _, ca := range cert.Certificate[1:] {
			if c, err := x509.ParseCertificate(ca); err == nil {
				roots.AddCert(c)
			}
		}
		opts.ClientTLS = &tlssock.Config{RootCAs: roots}
	}
	set, err := sockets.Open(ctx, cfg.Sockets, opts)
	if err != nil {
		return nil, nil, "", err
	}
	// "NAME KIND PROT ADDRESS", with the port a listen socket really got.
	var described []string
	for _, s := range cfg.Sockets {
		addr := s.Addr
		if a := set.Addr(s.Name); a != nil {
			addr = a.String()
		}
		described = append(described, fmt.Sprintf("%s %s %s %s", s.Name, s.Kind, s.Prot, addr))
	}
	return set, described, identity, nil
}

// tlsIdentity returns the certificate of the Keep's TLS sockets.
func tlsIdentity(cfg Config, att *attester, evidence *attestation.Evidence, chainPEM []byte) (tls.Certificate, string, error) {
	if len(chainPEM) > 0 {
		cert, err := tlssock.FromKeyAndChain(att.key, chainPEM)
		if err != nil {
			return tls.Certificate{}, "", fmt.Errorf("TLS sockets: the Steward's certificate: %w", err)
		}
		return cert, TLSIdentitySteward, nil
	}
	der, err := attestation.NewSelfSignedCertificate(att.key, evidence, "enarx keep "+cfg.ID+" (self-signed: no attestation service)", selfSignedValidity)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("TLS sockets: %w", err)
	}
	cert, err := tlssock.FromKeyAndChain(att.key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("TLS sockets: %w", err)
	}
	return cert, TLSIdentitySelfSigned, nil
}
