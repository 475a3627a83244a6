package keep

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
)

// certifyTimeout bounds getting a certificate from the Steward: a challenge,
// fresh evidence and a CSR.
const certifyTimeout = 30 * time.Second

// certify gets the Keep a certificate for its key from cfg.Steward: it asks
// for a challenge, binds the nonce into fresh evidence, sends that evidence
// in a CSR signed by the Keep's key, and stores the chain the Steward
// returns in cfg.StateDir. It returns the chain, PEM encoded.
func certify(ctx context.Context, cfg Config, id *identity) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, certifyTimeout)
	defer cancel()
	hc, err := stewardclient.HTTPClient(cfg.StewardCA)
	if err != nil {
		return nil, err
	}
	client, err := stewardclient.New(cfg.Steward, hc)
	if err != nil {
		return nil, err
	}
	nonce, _, err := client.Challenge(ctx)
	if err != nil {
		return nil, fmt.Errorf("steward %s: challenge: %w", cfg.Steward, err)
	}
	evidence, err := id.evidenceWith(ctx, nonce)
	if err != nil {
		return nil, err
	}
	csr, err := attestation.NewCSR(id.key, evidence, "enarx keep "+cfg.ID)
	if err != nil {
		return nil, err
	}
	chain, err := client.SubmitCSR(ctx, csr)
	if err != nil {
		return nil, fmt.Errorf("steward %s: certificate: %w", cfg.Steward, err)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("steward %s: certificate: the reply holds no certificate", cfg.Steward)
	}
	pub, err := x509.MarshalPKIXPublicKey(chain[0].PublicKey)
	if err != nil || string(pub) != string(id.inputs.KeepPublicKey) {
		return nil, fmt.Errorf("steward %s: certificate: it is not for this Keep's key", cfg.Steward)
	}
	var out []byte
	for _, c := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	// Nobody reads it before the Keep reports ready (the shim) or runs
	// (the workload): a plain write is enough.
	if err := os.WriteFile(filepath.Join(cfg.StateDir, CertificateFile), out, 0o644); err != nil {
		return nil, fmt.Errorf("store certificate: %w", err)
	}
	return out, nil
}
