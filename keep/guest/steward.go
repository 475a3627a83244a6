package guest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
)

// certifyTimeout bounds getting a certificate from the Steward: a challenge,
// fresh evidence and a CSR.
const certifyTimeout = 30 * time.Second

// certify gets the Keep a certificate for its key from cfg.Steward, one the
// node policy lists: it asks for a challenge, binds the nonce into fresh
// evidence, sends that evidence in a CSR signed by the Keep's key, checks
// that the certificate it gets is for its key and chains to the steward's
// CA as the node policy pins it, and stores that chain (the certificate,
// then the pinned CA: nothing else of the steward's answer) in
// cfg.StateDir. It returns the chain, PEM encoded.
func certify(ctx context.Context, cfg keep.Config, id *identity) ([]byte, error) {
	st := cfg.Steward
	ctx, cancel := context.WithTimeout(ctx, certifyTimeout)
	defer cancel()
	pinned, err := stewardCAs(st)
	if err != nil {
		return nil, err
	}
	tlsCA := st.TLSCA
	if tlsCA == "" {
		tlsCA = st.CA
	}
	hc, err := stewardclient.HTTPClient(tlsCA)
	if err != nil {
		return nil, fmt.Errorf("steward %s: %w", st.Name, err)
	}
	client, err := stewardclient.New(st.URL, hc)
	if err != nil {
		return nil, err
	}
	nonce, _, err := client.Challenge(ctx)
	if err != nil {
		return nil, stewardError(st, "challenge", err)
	}
	evidence, err := id.evidenceWith(ctx, nonce)
	if err != nil {
		return nil, err
	}
	csr, err := attestation.NewCSR(id.key, evidence, "")
	if err != nil {
		return nil, err
	}
	chain, err := client.SubmitCSR(ctx, csr)
	if err != nil {
		return nil, stewardError(st, "certificate", err)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("steward %s: certificate: the reply holds no certificate", st.Name)
	}
	leaf := chain[0]
	pub, err := x509.MarshalPKIXPublicKey(leaf.PublicKey)
	if err != nil || string(pub) != string(id.inputs.KeepPublicKey) {
		return nil, fmt.Errorf("steward %s: certificate: it is not for this Keep's key", st.Name)
	}
	roots := x509.NewCertPool()
	for _, c := range pinned {
		roots.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("steward %s: certificate: it does not chain to the steward's CA the node policy pins (%s): %w", st.Name, st.CA, err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	for _, c := range pinned {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	// Nobody reads it before the Keep reports ready (the shim) or runs
	// (the workload): a plain write is enough.
	if err := os.WriteFile(filepath.Join(cfg.StateDir, keep.CertificateFile), out, 0o644); err != nil {
		return nil, fmt.Errorf("store certificate: %w", err)
	}
	return out, nil
}

// stewardCAs reads the CA certificates the node policy pins for st.
func stewardCAs(st *nodepolicy.Steward) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(st.CA)
	if err != nil {
		return nil, fmt.Errorf("steward %s: its CA: %w", st.Name, err)
	}
	cas, err := stewardclient.ParseCertificatesPEM(b)
	if err != nil {
		return nil, fmt.Errorf("steward %s: its CA %s: %w", st.Name, st.CA, err)
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("steward %s: its CA %s holds no PEM certificate: give the steward's ca.crt (GET /v1/ca)", st.Name, st.CA)
	}
	return cas, nil
}

// isCheckName reports whether name looks like a steward's check name: 1
// to 40 of [a-z0-9._] (the regular expression ^[a-z0-9._]{1,40}$). It is
// a loop rather than a regexp.Regexp, whose compilation at package init
// (the {1,40} unrolls) cost every Keep 475 allocations and 37 KB before
// it did anything.
func isCheckName(name string) bool {
	if len(name) == 0 || len(name) > 40 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// stewardError is err, from asking st for step, as a container's creator
// may read it: for an answer that is not 200, its status and the name of
// the check that refused the evidence, never the answer's text.
func stewardError(st *nodepolicy.Steward, step string, err error) error {
	var re *stewardclient.RejectedError
	if !errors.As(err, &re) {
		return fmt.Errorf("steward %s: %s: %w", st.Name, step, err)
	}
	check := ""
	if isCheckName(re.Check) {
		check = ", check " + re.Check
	}
	return fmt.Errorf("steward %s: %s: refused with HTTP status %d%s (the steward's log says why)", st.Name, step, re.Status, check)
}
