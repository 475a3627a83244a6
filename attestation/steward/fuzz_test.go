package steward

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
)

// FuzzParseCSR feeds requests to attestation.ParseCSR and to the steward's
// CSR endpoint: neither may panic, and the endpoint answers 200 only for a
// request ParseCSR accepts.
func FuzzParseCSR(f *testing.F) {
	// Small seeds: when fuzzing finds new coverage it minimizes the input,
	// which for a 10 KiB CSR (SEV-SNP evidence with its certificate table)
	// takes longer than a short fuzzing run. TestCSR covers that one.
	fx := newFixture(f, fixtureConfig{allowInsecure: true, edit: []Option{WithConfig(func(c *Config) { c.RequireNonce = false })}})
	k := newKeep(f)
	valid, err := attestation.NewCSR(k.key, k.evidence(f, attestation.None{}, []byte("n")), "keep")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	ev := k.evidence(f, nil, nil)
	ev.Certificates = nil // rejected: no VCEK, and fetching is off
	snpCSR, err := attestation.NewCSR(k.key, ev, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(snpCSR)
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	h := fx.server.Handler()
	f.Fuzz(func(t *testing.T, der []byte) {
		_, _, perr := attestation.ParseCSR(der)
		req := httptest.NewRequest(http.MethodPost, stewardclient.PathCSR, bytes.NewReader(der))
		req.Header.Set("Content-Type", stewardclient.ContentTypeCSR)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code == http.StatusOK && perr != nil {
			t.Fatalf("the endpoint issued a certificate for a request ParseCSR rejects: %v", perr)
		}
		if bytes.Equal(der, valid) && w.Code != http.StatusOK {
			t.Fatalf("the valid seed was answered %d: %s", w.Code, w.Body)
		}
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("500: %s", w.Body)
		}
	})
}

// FuzzCSREvidence signs the input, as a Keep's evidence, into a CSR of a
// fixed key, so that mutations reach what FuzzParseCSR's rarely do (a
// mutated request fails its signature check first): the evidence parser,
// the key binding and the verifier behind the CSR endpoint.
func FuzzCSREvidence(f *testing.F) {
	fx := newFixture(f, fixtureConfig{allowInsecure: true, edit: []Option{WithConfig(func(c *Config) { c.RequireNonce = false })}})
	k := newKeep(f)
	for _, p := range []attestation.Provider{attestation.None{}, nil} {
		ev := k.evidence(f, p, []byte("n"))
		ev.Certificates = nil // keeps the seed small; rejected without a VCEK
		b, err := ev.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	h := fx.server.Handler()
	f.Fuzz(func(t *testing.T, evidence []byte) {
		value, err := asn1.Marshal(evidence)
		if err != nil {
			return
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			ExtraExtensions: []pkix.Extension{{Id: attestation.OIDEvidence, Value: value}},
		}, k.key)
		if err != nil {
			t.Fatal(err)
		}
		_, _, perr := attestation.ParseCSR(der)
		req := httptest.NewRequest(http.MethodPost, stewardclient.PathCSR, bytes.NewReader(der))
		req.Header.Set("Content-Type", stewardclient.ContentTypeCSR)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code == http.StatusOK && perr != nil {
			t.Fatalf("the endpoint issued a certificate for a request ParseCSR rejects: %v", perr)
		}
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("500: %s", w.Body)
		}
	})
}

// FuzzStewardConfig parses steward.toml files: an accepted one validates
// and names an issuer; a refused one gets an error naming the file.
func FuzzStewardConfig(f *testing.F) {
	f.Add(defaultConfig)
	for _, s := range []string{
		"listen = \"[::]:443\"\nname = \"https://steward.example\"\npolicy = \"/etc/enarx/policy.toml\"\nreference_values = \"ref.json\"\n" +
			"nonce_ttl = \"30s\"\ntoken_ttl = \"15m\"\ncertificate_ttl = \"720h\"\ntls_certificate = \"tls.crt\"\ntls_key = \"tls.key\"\nrequire_nonce = false\nmax_nonces = 1\n",
		"listen = \"localhost\"\n",
		"nonce_ttl = \"5\"\n",
		"token_ttl = \"-1h\"\n",
		"tls_certificate = \"tls.crt\"\n",
		"max_nonces = 0\n",
		"max_nonce = 1\n",
		"listen = 3443\n",
		"[listen]\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data, ConfigFile)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "steward: "+ConfigFile) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("a parsed configuration does not validate: %v", err)
		}
		if c.issuer() == "" {
			t.Fatal("no issuer")
		}
		_ = loopback(c.Listen)
	})
}
