package attestation_test

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

func TestSelfSignedCertificate(t *testing.T) {
	key, ev := keepEvidence(t)
	der, err := attestation.NewSelfSignedCertificate(key, ev, "enarx keep web (self-signed)", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	got, err := attestation.CertificateEvidence(cert)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest() != ev.Digest() {
		t.Errorf("evidence %s, want %s", got.Digest(), ev.Digest())
	}
	if _, err := attestation.CertificateAssertions(cert); !errors.Is(err, attestation.ErrNoAssertions) {
		t.Errorf("assertions of a self-signed certificate: %v, want ErrNoAssertions (nobody verified it)", err)
	}

	other, _ := keepEvidence(t)
	if _, err := attestation.NewSelfSignedCertificate(other, ev, "x", time.Hour); !errors.Is(err, attestation.ErrKeyMismatch) {
		t.Errorf("evidence of another key: %v, want ErrKeyMismatch", err)
	}
}
