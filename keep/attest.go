package keep

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/version"
)

// attester is a Keep's identity: a key pair made fresh at start, and the
// provider that binds it, the workload and the runtime into TEE evidence.
// The private key never leaves the Keep and is never logged.
type attester struct {
	provider attestation.Provider
	key      *ecdsa.PrivateKey
	// inputs are the evidence inputs without a nonce.
	inputs attestation.Inputs
}

func newAttester(cfg Config, workloadDigest string, provider attestation.Provider) (*attester, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate keep key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode keep public key: %w", err)
	}
	runtimeDigest, err := executableDigest()
	if err != nil {
		return nil, err
	}
	configDigest, err := digestJSON(cfg)
	if err != nil {
		return nil, err
	}
	return &attester{
		provider: provider,
		key:      key,
		inputs: attestation.Inputs{
			KeepPublicKey:  pub,
			WorkloadDigest: workloadDigest,
			RuntimeDigest:  runtimeDigest,
			RuntimeVersion: version.Version,
			ConfigDigest:   configDigest,
		},
	}, nil
}

// evidence asks the TEE for fresh evidence, with nonce bound when given.
func (a *attester) evidence(ctx context.Context, nonce []byte) (*attestation.Evidence, error) {
	in := a.inputs
	in.Nonce = nonce
	return attestation.Collect(ctx, a.provider, in)
}

// executableDigest is the runtime digest: sha256 of the running binary, the
// one file that is both the shim and the Keep.
func executableDigest() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("runtime digest: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", fmt.Errorf("runtime digest: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("runtime digest of %s: %w", exe, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// digestJSON is "sha256:" of the JSON encoding of v (Go encodes struct
// fields in a fixed order, so the encoding is canonical for a Config).
func digestJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode keep config: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
