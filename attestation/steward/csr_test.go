package steward

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// csrFor returns a Keep's CSR with fresh evidence from f.
func (f *fixture) csrFor(t *testing.T, k *keep, cn string) []byte {
	t.Helper()
	nonce, _, err := f.client.Challenge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	der, err := attestation.NewCSR(k.key, k.evidence(t, nil, nonce), cn)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCSR(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	ctx := context.Background()
	k := newKeep(t)

	// A CSR naming a host (or anything) gets the Steward's own subject:
	// the workload and the key, never a name the Keep chose.
	chain, err := f.client.SubmitCSR(ctx, f.csrFor(t, k, "bank.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || !chain[1].Equal(f.server.CA()) {
		t.Fatalf("chain of %d certificates, want leaf and the steward's CA", len(chain))
	}
	leaf := chain[0]
	keySum := sha256.Sum256(k.pubDER)
	wantCN := "enarx keep " + digestOf("workload")[7:19] + " key " + hex.EncodeToString(keySum[:6])
	if leaf.Subject.String() != "CN="+wantCN || len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 {
		t.Errorf("subject %s, names %v %v; want CN=%s only", leaf.Subject, leaf.DNSNames, leaf.IPAddresses, wantCN)
	}
	if err := leaf.VerifyHostname("bank.example.com"); err == nil {
		t.Error("the Keep's certificate is valid for bank.example.com")
	}
	if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, k.pubDER) {
		t.Error("the leaf does not certify the Keep's key")
	}
	if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature || len(leaf.ExtKeyUsage) != 2 {
		t.Errorf("leaf IsCA %v, key usage %v, ext key usage %v", leaf.IsCA, leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	if got := leaf.NotAfter.Sub(f.clock.Now()); got < 24*time.Hour-2*time.Second || got > 24*time.Hour {
		t.Errorf("leaf valid for %s more, want 24h", got)
	}
	if leaf.SerialNumber.BitLen() < 120 {
		t.Errorf("serial %x is not 128 random bits", leaf.SerialNumber)
	}
	a, err := attestation.CertificateAssertions(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if a.TEE != attestation.TEESEVSNP || a.RuntimeVersion != testRuntimeVersion || !bytes.Equal(a.KeepPublicKey, k.pubDER) {
		t.Errorf("assertions %+v", a)
	}
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(attestation.OIDAssertions) && ext.Critical {
			t.Error("the assertions extension is critical")
		}
	}

	// Without a CN, the same.
	chain, err = f.client.SubmitCSR(ctx, f.csrFor(t, k, ""))
	if err != nil {
		t.Fatal(err)
	}
	if cn := chain[0].Subject.CommonName; cn != wantCN {
		t.Errorf("CN %q, want %q", cn, wantCN)
	}

	// The certificate never outlives the CA.
	long := newFixture(t, fixtureConfig{edit: []Option{WithConfig(func(c *Config) { c.CertificateTTL = 2 * caLifetime })}})
	chain, err = long.client.SubmitCSR(ctx, long.csrFor(t, k, "long"))
	if err != nil {
		t.Fatal(err)
	}
	if !chain[0].NotAfter.Equal(long.server.CA().NotAfter) {
		t.Errorf("leaf expires %s, CA %s", chain[0].NotAfter, long.server.CA().NotAfter)
	}
}

func TestCSRRejections(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	ctx := context.Background()
	k, other := newKeep(t), newKeep(t)

	t.Run("evidence binds another key", func(t *testing.T) {
		nonce, _, err := f.client.Challenge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// NewCSR refuses this, so sign the request by hand.
		der := csrWithEvidence(t, other, k.evidence(t, nil, nonce))
		_, err = f.client.SubmitCSR(ctx, der)
		rejection(t, err, http.StatusForbidden, CheckCSRKey)
	})
	t.Run("tampered signature", func(t *testing.T) {
		der := f.csrFor(t, k, "x")
		der[len(der)-3] ^= 0x55 // inside the signature
		_, err := f.client.SubmitCSR(ctx, der)
		rejection(t, err, http.StatusBadRequest, "")
	})
	t.Run("not DER", func(t *testing.T) {
		_, err := f.client.SubmitCSR(ctx, []byte("-----BEGIN CERTIFICATE REQUEST-----"))
		rejection(t, err, http.StatusBadRequest, "")
	})
	t.Run("replayed nonce", func(t *testing.T) {
		der := f.csrFor(t, k, "x")
		if _, err := f.client.SubmitCSR(ctx, der); err != nil {
			t.Fatal(err)
		}
		_, err := f.client.SubmitCSR(ctx, der)
		rejection(t, err, http.StatusForbidden, CheckNonce)
	})
}

// csrWithEvidence is attestation.NewCSR without its key check: a request
// signed by signer carrying evidence that may bind another key.
func csrWithEvidence(t *testing.T, signer *keep, ev *attestation.Evidence) []byte {
	t.Helper()
	blob, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	value, err := asn1.Marshal(blob)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: "mismatch"},
		ExtraExtensions: []pkix.Extension{{Id: attestation.OIDEvidence, Value: value}},
	}, signer.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestKeepCertificateTLS serves TLS with a Keep's key and issued chain; a
// client that trusts only the steward's CA connects and reads the
// assertions; a client with the system roots does not.
func TestKeepCertificateTLS(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	k := newKeep(t)
	chain, err := f.client.SubmitCSR(context.Background(), f.csrFor(t, k, "keep"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{chain[0].Raw, chain[1].Raw}, PrivateKey: k.key, Leaf: chain[0]}},
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Write([]byte("hello from the keep"))
			}()
		}
	}()

	// The certificate names the Keep by its assertions, not a DNS name: the
	// client checks the chain to the steward's CA itself.
	stewardCA := x509.NewCertPool()
	stewardCA.AddCert(f.server.CA())
	dial := func(roots *x509.CertPool) (*attestation.Assertions, error) {
		var assertions *attestation.Assertions
		conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{
			MinVersion:         tls.VersionTLS13,
			InsecureSkipVerify: true, // replaced by VerifyConnection, without the host name check
			VerifyConnection: func(cs tls.ConnectionState) error {
				opts := x509.VerifyOptions{
					Roots:         roots,
					Intermediates: x509.NewCertPool(),
					KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
					CurrentTime:   f.clock.Now(),
				}
				for _, c := range cs.PeerCertificates[1:] {
					opts.Intermediates.AddCert(c)
				}
				if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
					return err
				}
				a, err := attestation.CertificateAssertions(cs.PeerCertificates[0])
				assertions = a
				return err
			},
		})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		b, err := io.ReadAll(conn)
		if err != nil {
			return nil, err
		}
		if string(b) != "hello from the keep" {
			return nil, errors.New("unexpected greeting " + string(b))
		}
		return assertions, nil
	}

	a, err := dial(stewardCA)
	if err != nil {
		t.Fatalf("client trusting the steward CA: %v", err)
	}
	if a.TEE != attestation.TEESEVSNP || a.WorkloadDigest != digestOf("workload") || !bytes.Equal(a.KeepPublicKey, k.pubDER) {
		t.Errorf("assertions %+v", a)
	}

	system, err := x509.SystemCertPool()
	if err != nil {
		system = x509.NewCertPool()
	}
	if _, err := dial(system); err == nil {
		t.Fatal("a client trusting the system roots accepted the Keep")
	}
	// Nor does a client of the standard verification (host name) with the system roots.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), &tls.Config{ServerName: "keep"})
	if err == nil {
		conn.Close()
		t.Fatal("a default TLS client accepted the Keep")
	}
}
