//go:build enarx_simulate

package snp

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-sev-guest/verify"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/attestationtest"
)

func TestNewSimulated(t *testing.T) {
	p, err := NewSimulated()
	if err != nil {
		t.Fatal(err)
	}
	e, err := attestation.Collect(context.Background(), p, attestationtest.Inputs())
	if err != nil {
		t.Fatal(err)
	}
	if e.TEE != attestation.TEESEVSNP {
		t.Fatalf("tee %q", e.TEE)
	}
	if err := e.CheckBinding(); err != nil {
		t.Fatal(err)
	}
	// Only the test roots could accept it; AMD's do not.
	if err := verify.SnpAttestation(attestationOf(t, e), &verify.Options{DisableCertFetching: true, Now: time.Now()}); err == nil {
		t.Fatal("AMD's roots accepted simulated evidence")
	}
}
