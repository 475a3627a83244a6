package tlssock

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// FromKeyAndChain returns a certificate for Config.Certificates from a key
// that may never leave its holder (a Keep's crypto.Signer) and the PEM chain
// issued for it, leaf first. The leaf must certify key's public key.
func FromKeyAndChain(key crypto.Signer, chainPEM []byte) (tls.Certificate, error) {
	var cert tls.Certificate
	for rest := chainPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			cert.Certificate = append(cert.Certificate, block.Bytes)
		}
	}
	if len(cert.Certificate) == 0 {
		return tls.Certificate{}, errors.New("tlssock: certificate chain holds no PEM CERTIFICATE block")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlssock: leaf certificate: %w", err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := leaf.PublicKey.(equaler)
	if !ok || !pub.Equal(key.Public()) {
		return tls.Certificate{}, fmt.Errorf("tlssock: leaf certificate %s does not certify the given key", leaf.Subject)
	}
	cert.PrivateKey = key
	cert.Leaf = leaf
	return cert, nil
}

// PeerAssertions returns the attestation assertions in the peer's leaf
// certificate (attestation.OIDAssertions), completing the handshake if
// needed. The peer's chain must have been verified: a client verifies the
// server always; a server verifies clients with client_auth set. It wraps
// attestation.ErrNoAssertions when the leaf carries none.
func PeerAssertions(conn net.Conn) (*attestation.Assertions, error) {
	s, err := ConnectionState(conn)
	if err != nil {
		return nil, err
	}
	if len(s.PeerCertificates) == 0 {
		return nil, fmt.Errorf("tlssock: peer %s sent no certificate (a server must set client_auth = \"require\" to get one)", conn.RemoteAddr())
	}
	if !s.Verified {
		return nil, fmt.Errorf("tlssock: peer %s certificate was not verified: assertions in it are not trustworthy", conn.RemoteAddr())
	}
	a, err := attestation.CertificateAssertions(s.PeerCertificates[0])
	if err != nil {
		return nil, fmt.Errorf("tlssock: peer %s: %w", conn.RemoteAddr(), err)
	}
	return a, nil
}
