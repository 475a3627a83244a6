package steward

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/log"

	"github.com/enarx/containerd-shim-enarx/attestation/verify"
)

// newVerifier builds the verifier of cfg: its policy (or verify's default)
// and reference values (or the policy's).
// Without reference values every runtime is unknown: it says so in the log.
func newVerifier(ctx context.Context, cfg Config, dir string, now func() time.Time) (Verifier, error) {
	var (
		pol *verify.Policy
		err error
	)
	if cfg.Policy == "" {
		pol = verify.DefaultPolicy()
	} else if pol, err = verify.LoadPolicy(resolve(dir, cfg.Policy)); err != nil {
		return nil, fmt.Errorf("steward: policy in %s: %w", ConfigFile, err)
	}
	refPath := resolve(dir, cfg.ReferenceValues)
	if refPath == "" {
		refPath = pol.ReferenceValues
	}
	var ref *verify.ReferenceValues
	if refPath != "" {
		if ref, err = verify.LoadReferenceValues(refPath); err != nil {
			return nil, fmt.Errorf("steward: reference values: %w", err)
		}
	} else {
		log.G(ctx).Warnf("steward: no reference values (reference_values in %s or in the policy): every runtime is unknown and all evidence will be rejected (check %q)", ConfigFile, verify.CheckRuntime)
	}
	v, err := verify.New(verify.Options{Policy: pol, Reference: ref, Now: now})
	if err != nil {
		return nil, fmt.Errorf("steward: verifier: %w", err)
	}
	return v, nil
}

// checkOf returns the name of the check that rejected evidence, and false
// if err is not a rejection but a failure to verify.
func checkOf(err error) (string, bool) {
	var ce *verify.CheckError
	if errors.As(err, &ce) {
		return ce.Check, true
	}
	return "", false
}
