package steward

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
)

const cryptoSHA256 = crypto.SHA256

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func pemCertificate(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// token returns a signed token (compact JWS) for verified assertions.
func (s *Server) token(a *attestation.Assertions) (string, error) {
	pub, err := x509.ParsePKIXPublicKey(a.KeepPublicKey)
	if err != nil {
		return "", fmt.Errorf("keep public key of verified assertions: %w", err)
	}
	keepKey := &jose.JSONWebKey{Key: pub}
	if !keepKey.Valid() {
		// A key type JWK cannot express (x509 parses a few more).
		return "", errorf(http.StatusBadRequest, "the Keep's public key (%T) cannot be expressed as a JWK: use an ECDSA, Ed25519 or RSA key", pub)
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("random token ID: %w", err)
	}
	now := s.now()
	c := &stewardclient.Claims{
		Issuer:     *s.issuer.Load(),
		ID:         base64URL(jti),
		IssuedAt:   now,
		NotBefore:  now,
		Expiry:     now.Add(s.cfg.TokenTTL),
		EATProfile: stewardclient.EATProfile,
		EATNonce:   a.Nonce,
		Assertions: *a,
		KeepKey:    keepKey,
	}
	token, err := jwt.Signed(s.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return token, nil
}

// issueCertificate certifies req's key, which verified assertions a are
// about.
func (s *Server) issueCertificate(req *x509.CertificateRequest, a *attestation.Assertions) (*x509.Certificate, error) {
	ext, err := attestation.AssertionsExtension(a)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := s.now()
	notAfter := now.Add(s.cfg.CertificateTTL)
	if notAfter.After(s.caCert.NotAfter) {
		notAfter = s.caCert.NotAfter
	}
	if !now.Before(notAfter) {
		return nil, fmt.Errorf("the CA certificate expired at %s: remove %s from the data directory and restart to make a new CA", s.caCert.NotAfter.Format(time.RFC3339), CACertFile)
	}
	// The subject is the Steward's own, from what it verified: the
	// workload and the key. Nothing of the CSR but its key is copied, so no
	// Keep gets a certificate that names a host (or anything else) it
	// chose; the name has spaces, so it is no host name either.
	spki, err := x509.MarshalPKIXPublicKey(req.PublicKey)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "cannot certify the CSR's key (%T): %v", req.PublicKey, err)
	}
	keySum := sha256.Sum256(spki)
	workload, _ := strings.CutPrefix(a.WorkloadDigest, "sha256:")
	workload = workload[:min(len(workload), 12)]
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("enarx keep %s key %s", workload, hex.EncodeToString(keySum[:6]))},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{ext},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, req.PublicKey, s.caKey)
	if err != nil {
		if errors.Is(err, x509.ErrUnsupportedAlgorithm) {
			return nil, errorf(http.StatusBadRequest, "cannot certify the CSR's key (%T): %v", req.PublicKey, err)
		}
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}
