package attestation

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// NewSelfSignedCertificate returns a DER certificate for key, signed by key
// itself, carrying ev in an OIDEvidence extension as NewCSR does: what a Keep
// presents when no attestation service certified it. Nothing vouches for it,
// so a client cannot trust it by its chain; it may verify the embedded
// evidence itself (`enarx verify`). ev must bind key's public key.
func NewSelfSignedCertificate(key crypto.Signer, ev *Evidence, cn string, validFor time.Duration) ([]byte, error) {
	ext, err := evidenceExtension(key, ev)
	if err != nil {
		return nil, fmt.Errorf("attestation: self-signed certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("attestation: self-signed certificate: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{CommonName: cn},
		NotBefore:       now.Add(-time.Minute),
		NotAfter:        now.Add(validFor),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{ext},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("attestation: self-signed certificate: %w", err)
	}
	return der, nil
}

// CertificateEvidence returns the evidence a self-signed Keep certificate
// (NewSelfSignedCertificate) carries, checked to bind the certificate's key.
// The evidence itself is not verified: pass it to a verifier.
func CertificateEvidence(cert *x509.Certificate) (*Evidence, error) {
	return extensionEvidence("certificate "+cert.Subject.String(), cert.Extensions, cert.PublicKey)
}
