package tlssock_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/internal/testpki"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// TestVerifyAttestation: a client that identifies the server by its
// attestation accepts a certificate of the trusted CA that carries
// assertions, whatever name it dialed, and hands the assertions to its
// check; it refuses another CA, a certificate without assertions, and
// assertions its check refuses; and it needs the CA to be named.
func TestVerifyAttestation(t *testing.T) {
	ca := testpki.NewCA(t, "steward")
	want := &attestation.Assertions{TEE: "sev-snp", RuntimeDigest: "sha256:aa", WorkloadDigest: "sha256:bb", RuntimeVersion: "v1", VerifiedAt: time.Unix(0, 0).UTC()}
	ext, err := attestation.AssertionsExtension(want)
	if err != nil {
		t.Fatal(err)
	}
	keepCert, _, _ := ca.Issue(t, "keep", nil, ext)
	plainCert, _, _ := ca.Issue(t, "plain", nil)
	keep := &tlssock.Config{Certificates: []tls.Certificate{keepCert}}

	var got *attestation.Assertions
	client := func(roots *testpki.CA, check func(*attestation.Assertions) error) *tlssock.Config {
		got = nil
		return &tlssock.Config{RootCAs: roots.Pool, ServerName: "not-a-name-of.the-keep", VerifyAttestation: func(a *attestation.Assertions) error {
			got = a
			return check(a)
		}}
	}
	accept := func(*attestation.Assertions) error { return nil }

	s, c := exchange(t, "tcp", keep, client(ca, accept))
	mustOK(t, s, c)
	if got == nil || got.WorkloadDigest != want.WorkloadDigest || got.TEE != want.TEE {
		t.Errorf("assertions %+v, want %+v", got, want)
	}
	if c.state.Group != "X25519MLKEM768" || c.state.Version != "1.3" {
		t.Errorf("negotiated %s %s, want TLS 1.3 with X25519MLKEM768", c.state.Version, c.state.Group)
	}

	for _, tc := range []struct {
		name   string
		server *tlssock.Config
		cli    *tlssock.Config
		want   string
	}{
		{"another CA", keep, client(testpki.NewCA(t, "other"), accept), "certificate"},
		{"no assertions", &tlssock.Config{Certificates: []tls.Certificate{plainCert}}, client(ca, accept), "assertions"},
		{"check refuses", keep, client(ca, func(a *attestation.Assertions) error {
			return errors.New("workload sha256:bb is not the expected one")
		}), "not the expected one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := exchange(t, "tcp", tc.server, tc.cli)
			if c.err == nil || !strings.Contains(c.err.Error(), tc.want) {
				t.Errorf("client: %v, want an error containing %q", c.err, tc.want)
			}
		})
	}

	if _, err := (&tlssock.Config{VerifyAttestation: accept}).TLSConfig(); err == nil || !strings.Contains(err.Error(), "root_ca_file") {
		t.Errorf("VerifyAttestation without a CA: %v, want an error naming root_ca_file", err)
	}
	// A server that verifies client certificates never does so against the
	// system roots: it needs the attestation service's CA as ClientCAs.
	for _, auth := range []string{"verify_if_given", "require"} {
		if _, err := (&tlssock.Config{RootCAs: ca.Pool, ClientAuth: auth, VerifyAttestation: accept}).TLSConfig(); err == nil || !strings.Contains(err.Error(), "client_ca_file") {
			t.Errorf("VerifyAttestation with client_auth %s and no ClientCAs: %v, want an error naming client_ca_file", auth, err)
		}
		if _, err := (&tlssock.Config{ClientCAs: ca.Pool, ClientAuth: auth, VerifyAttestation: accept}).TLSConfig(); err != nil {
			t.Errorf("VerifyAttestation with client_auth %s and ClientCAs: %v", auth, err)
		}
	}
	if _, err := (&tlssock.Config{RootCAs: ca.Pool, VerifyAttestation: accept}).DTLSConfig(); err == nil || !strings.Contains(err.Error(), "TLS only") {
		t.Errorf("VerifyAttestation for DTLS: %v, want a TLS-only error", err)
	}
}
