package attestation_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/attestationtest"
)

// keepEvidence returns a fresh P-256 key and nil evidence binding it.
func keepEvidence(t testing.TB) (*ecdsa.PrivateKey, *attestation.Evidence) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	in := attestationtest.Inputs()
	if in.KeepPublicKey, err = x509.MarshalPKIXPublicKey(&key.PublicKey); err != nil {
		t.Fatal(err)
	}
	ev, err := attestation.Collect(context.Background(), attestation.None{}, in)
	if err != nil {
		t.Fatal(err)
	}
	return key, ev
}

func TestCSRRoundTrip(t *testing.T) {
	key, ev := keepEvidence(t)
	der, err := attestation.NewCSR(key, ev, "enarx keep web")
	if err != nil {
		t.Fatal(err)
	}
	csr, got, err := attestation.ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "enarx keep web" {
		t.Errorf("subject %q", csr.Subject)
	}
	if got.Digest() != ev.Digest() {
		t.Errorf("evidence digest %s after the round trip, want %s", got.Digest(), ev.Digest())
	}
}

func TestCSRRejections(t *testing.T) {
	key, ev := keepEvidence(t)
	other, _ := keepEvidence(t)
	if _, err := attestation.NewCSR(other, ev, "x"); !errors.Is(err, attestation.ErrKeyMismatch) {
		t.Errorf("NewCSR with a key the evidence does not bind: %v, want ErrKeyMismatch", err)
	}
	blob, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	request := func(signer *ecdsa.PrivateKey, exts ...pkix.Extension) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{ExtraExtensions: exts}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	octets := func(b []byte) []byte {
		// DER OCTET STRING with a long-form length.
		out := []byte{0x04, 0x82, byte(len(b) >> 8), byte(len(b))}
		return append(out, b...)
	}
	ext := pkix.Extension{Id: attestation.OIDEvidence, Value: octets(blob)}
	good, err := attestation.NewCSR(key, ev, "x")
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-5] ^= 1 // in the signature
	for _, c := range []struct {
		name string
		der  []byte
		want string
		is   error
	}{
		{"garbage", []byte("not a CSR"), "not a DER PKCS#10 request", nil},
		{"truncated", good[:len(good)/2], "not a DER PKCS#10 request", nil},
		{"signature", flipped, "CSR signature", nil},
		{"no evidence", request(key), "no evidence extension", attestation.ErrMissingField},
		{"two evidence extensions", request(key, ext, ext), "", nil},
		{"not an octet string", request(key, pkix.Extension{Id: attestation.OIDEvidence, Value: []byte{0x05, 0x00}}), "not an OCTET STRING", nil},
		{"garbage evidence", request(key, pkix.Extension{Id: attestation.OIDEvidence, Value: octets([]byte("{}"))}), "CSR evidence", nil},
		{"key is not the evidence's", request(other, ext), "", attestation.ErrKeyMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := attestation.ParseCSR(c.der)
			if err == nil {
				t.Fatal("ParseCSR accepted it")
			}
			if c.want != "" && !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", err, c.is)
			}
		})
	}
}

func TestCertificateAssertions(t *testing.T) {
	key, ev := keepEvidence(t)
	a := &attestation.Assertions{
		TEE: ev.TEE, RuntimeVersion: ev.Inputs.RuntimeVersion, RuntimeDigest: ev.Inputs.RuntimeDigest,
		WorkloadDigest: ev.Inputs.WorkloadDigest, ConfigDigest: ev.Inputs.ConfigDigest,
		KeepPublicKey: ev.Inputs.KeepPublicKey, EvidenceDigest: ev.Digest(), Insecure: true,
		InsecureReason: "tee none", VerifiedAt: time.Unix(1800000000, 0).UTC(),
	}
	ext, err := attestation.AssertionsExtension(a)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour), ExtraExtensions: []pkix.Extension{ext}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	got, err := attestation.CertificateAssertions(cert)
	if err != nil {
		t.Fatal(err)
	}
	if got.WorkloadDigest != a.WorkloadDigest || !got.VerifiedAt.Equal(a.VerifiedAt) || !got.Insecure {
		t.Errorf("assertions %+v, want %+v", got, a)
	}
	tmpl.ExtraExtensions = nil
	der, _ = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ = x509.ParseCertificate(der)
	if _, err := attestation.CertificateAssertions(cert); !errors.Is(err, attestation.ErrNoAssertions) {
		t.Errorf("a certificate without assertions: %v, want ErrNoAssertions", err)
	}
}
