package attestation

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

// MaxCSRSize bounds a certificate signing request: its evidence and a few
// hundred bytes of structure.
const MaxCSRSize = MaxEvidenceSize + 16<<10

// ErrKeyMismatch: a CSR's key is not the Keep key its evidence binds.
var ErrKeyMismatch = errors.New("CSR key is not the evidence's keep_public_key")

// NewCSR returns a PKCS#10 certificate request (DER) signed by key, the Keep's
// key, carrying ev in an OIDEvidence extension. ev must bind key's public
// key (Inputs.KeepPublicKey); the subject's common name is cn.
func NewCSR(key crypto.Signer, ev *Evidence, cn string) ([]byte, error) {
	ext, err := evidenceExtension(key, ev)
	if err != nil {
		return nil, fmt.Errorf("attestation: CSR: %w", err)
	}
	tmpl := &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: cn},
		ExtraExtensions: []pkix.Extension{ext},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("attestation: CSR: %w", err)
	}
	return der, nil
}

// evidenceExtension returns the OIDEvidence extension carrying ev, which
// must bind key's public key.
func evidenceExtension(key crypto.Signer, ev *Evidence) (pkix.Extension, error) {
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("encode public key: %w", err)
	}
	if !bytes.Equal(pub, ev.Inputs.KeepPublicKey) {
		return pkix.Extension{}, ErrKeyMismatch
	}
	blob, err := ev.Marshal()
	if err != nil {
		return pkix.Extension{}, err
	}
	value, err := asn1.Marshal(blob)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("encode evidence extension: %w", err)
	}
	return pkix.Extension{Id: OIDEvidence, Value: value}, nil
}

// extensionEvidence parses the one OIDEvidence extension among exts and
// checks that the evidence binds pub, the holder's public key. what names
// the holder in errors ("CSR", "certificate").
func extensionEvidence(what string, exts []pkix.Extension, pub crypto.PublicKey) (*Evidence, error) {
	var value []byte
	found := 0
	for _, ext := range exts {
		if ext.Id.Equal(OIDEvidence) {
			value = ext.Value
			found++
		}
	}
	switch found {
	case 1:
	case 0:
		return nil, fmt.Errorf("attestation: %s has no evidence extension %s: %w", what, OIDEvidence, ErrMissingField)
	default:
		return nil, fmt.Errorf("attestation: %s has %d evidence extensions %s, want one", what, found, OIDEvidence)
	}
	var blob []byte
	rest, err := asn1.Unmarshal(value, &blob)
	if err != nil {
		return nil, fmt.Errorf("attestation: %s evidence extension is not an OCTET STRING: %w", what, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("attestation: %s evidence extension has %d trailing bytes", what, len(rest))
	}
	ev, err := ParseEvidence(blob)
	if err != nil {
		return nil, fmt.Errorf("attestation: %s evidence: %w", what, err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("attestation: %s public key: %w", what, err)
	}
	if !bytes.Equal(der, ev.Inputs.KeepPublicKey) {
		return nil, fmt.Errorf("attestation: %s: %w", what, ErrKeyMismatch)
	}
	return ev, nil
}

// ParseCSR parses a DER PKCS#10 request made by NewCSR: it checks the
// request's signature (the requester holds the key), parses the evidence in
// its OIDEvidence extension and checks that the evidence binds the request's
// key. The evidence's hardware report is not verified here.
func ParseCSR(der []byte) (*x509.CertificateRequest, *Evidence, error) {
	if len(der) > MaxCSRSize {
		return nil, nil, fmt.Errorf("attestation: CSR is %d bytes, more than %d: %w", len(der), MaxCSRSize, ErrTooLarge)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, nil, fmt.Errorf("attestation: CSR is not a DER PKCS#10 request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("attestation: CSR signature: %w", err)
	}
	ev, err := extensionEvidence("CSR", csr.Extensions, csr.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return csr, ev, nil
}

// AssertionsExtension returns the certificate extension carrying a.
func AssertionsExtension(a *Assertions) (pkix.Extension, error) {
	b, err := a.Marshal()
	if err != nil {
		return pkix.Extension{}, err
	}
	value, err := asn1.Marshal(b)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("attestation: encode assertions extension: %w", err)
	}
	return pkix.Extension{Id: OIDAssertions, Value: value}, nil
}

// CertificateAssertions returns the Assertions a Keep certificate carries in
// its OIDAssertions extension. It does not verify the certificate: callers
// verify its chain to the steward's CA first (as a TLS client does).
func CertificateAssertions(cert *x509.Certificate) (*Assertions, error) {
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(OIDAssertions) {
			continue
		}
		var b []byte
		rest, err := asn1.Unmarshal(ext.Value, &b)
		if err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("attestation: certificate assertions extension is not one OCTET STRING")
		}
		return ParseAssertions(b)
	}
	return nil, fmt.Errorf("attestation: certificate %s: %w", cert.Subject, ErrNoAssertions)
}
