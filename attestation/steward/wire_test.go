package steward

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
)

// post sends body to path with ctype and returns the status and error body.
func (f *fixture) post(t *testing.T, method, path, ctype string, body io.Reader) (int, stewardclient.ErrorBody, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.http.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := f.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb stewardclient.ErrorBody
	if resp.StatusCode != http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != stewardclient.ContentTypeJSON {
			t.Errorf("error answer of type %q", ct)
		}
		if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
			t.Errorf("error answer is not JSON: %v", err)
		}
	}
	return resp.StatusCode, eb, resp.Header
}

func TestWireErrors(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	k := newKeep(t)
	evidence := k.evidenceJSON(t, nil, nil)
	for _, tc := range []struct {
		name         string
		method, path string
		ctype        string
		body         io.Reader
		status       int
		says         string
	}{
		{"attest without content type", "POST", stewardclient.PathAttest, "", bytes.NewReader(evidence), 415, stewardclient.ContentTypeEvidence},
		{"attest as text", "POST", stewardclient.PathAttest, "text/plain", bytes.NewReader(evidence), 415, stewardclient.ContentTypeEvidence},
		{"csr as evidence", "POST", stewardclient.PathCSR, stewardclient.ContentTypeEvidence, bytes.NewReader(evidence), 415, stewardclient.ContentTypeCSR},
		{"garbage evidence", "POST", stewardclient.PathAttest, stewardclient.ContentTypeEvidence, strings.NewReader("{\"version\":1,"), 400, "not valid JSON"},
		{"evidence of unknown version", "POST", stewardclient.PathAttest, stewardclient.ContentTypeEvidence, strings.NewReader(`{"version":2}`), 400, "unknown evidence version"},
		{"empty evidence", "POST", stewardclient.PathAttest, stewardclient.ContentTypeEvidence, strings.NewReader(""), 400, "no evidence"},
		{"oversized evidence", "POST", stewardclient.PathAttest, stewardclient.ContentTypeEvidence, bytes.NewReader(make([]byte, attestation.MaxEvidenceSize+1)), 413, "more than"},
		{"oversized evidence, unknown length", "POST", stewardclient.PathAttest, stewardclient.ContentTypeEvidence, io.MultiReader(bytes.NewReader(make([]byte, attestation.MaxEvidenceSize+1))), 413, "more than"},
		{"oversized CSR", "POST", stewardclient.PathCSR, stewardclient.ContentTypeCSR, bytes.NewReader(make([]byte, attestation.MaxCSRSize+1)), 413, "more than"},
		{"GET attest", "GET", stewardclient.PathAttest, "", nil, 405, "use POST"},
		{"GET challenge", "GET", stewardclient.PathChallenge, "", nil, 405, "use POST"},
		{"POST ca", "POST", stewardclient.PathCA, "", nil, 405, "use GET"},
		{"unknown path", "GET", "/v2/attest", "", nil, 404, "no endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, eb, h := f.post(t, tc.method, tc.path, tc.ctype, tc.body)
			if status != tc.status || !strings.Contains(eb.Error, tc.says) {
				t.Errorf("status %d %q, want %d saying %q", status, eb.Error, tc.status, tc.says)
			}
			if status == 405 && h.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

func TestPublicEndpoints(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	ctx := context.Background()
	ca, err := f.client.CA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Equal(f.server.CA()) {
		t.Error("GET /v1/ca is not the steward's CA")
	}
	caFile, err := os.ReadFile(filepath.Join(f.dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if certs, err := stewardclient.ParseCertificatesPEM(caFile); err != nil || !certs[0].Equal(ca) {
		t.Errorf("ca.crt is not the served CA: %v", err)
	}
	resp, err := f.http.Client().Get(f.http.URL + stewardclient.PathHealth)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "ok" {
		t.Errorf("healthz: %d %q", resp.StatusCode, b)
	}
	resp, err = f.http.Client().Get(f.http.URL + stewardclient.PathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), `"d"`) {
		t.Fatalf("the JWKS holds a private key: %s", b)
	}
}

// TestServe runs the steward on a listener, over TLS, and stops it.
func TestServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "steward")
	writeTestDataDir(t, dir, false)
	// A TLS certificate for the steward itself, from a throwaway steward's CA
	// issuing for 127.0.0.1.
	tlsDir := t.TempDir()
	certPEM, keyPEM := selfSignedServerCert(t)
	if err := os.WriteFile(filepath.Join(tlsDir, "tls.crt"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tlsDir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := append([]Option(nil), WithConfig(func(c *Config) {
		c.TLSCertificate = filepath.Join(tlsDir, "tls.crt")
		c.TLSKey = filepath.Join(tlsDir, "tls.key")
	}))
	s, err := Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if iss := *s.issuer.Load(); iss != "https://127.0.0.1:3443" {
		t.Errorf("issuer %q", iss)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, l) }()

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	c, err := stewardclient.New("https://"+l.Addr().String(), hc)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Challenge(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("the listener is still open")
	}
}

// selfSignedServerCert returns a self-signed certificate for 127.0.0.1 and
// its key, PEM.
func selfSignedServerCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "steward test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}
