package keep

import (
	"context"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// BackendNil is the backend of a Keep without a TEE.
const BackendNil = "nil"

// Backend provides the isolation and the evidence of a Keep.
type Backend interface {
	// Name is the backend's name as used in configuration ("nil", ...).
	Name() string
	// TEE is the kind of TEE the backend runs on (attestation.TEENone for nil).
	TEE() string
}

// nilBackend is a Keep without a TEE. It runs the workload with the same
// process isolation as every Keep, and never claims to be confidential.
type nilBackend struct{}

func (nilBackend) Name() string { return BackendNil }
func (nilBackend) TEE() string  { return attestation.TEENone }

// selectBackend returns the backend a Config asks for.
func selectBackend(_ context.Context, _ string) (Backend, error) {
	// Config.Validate has already rejected any name but nil.
	return nilBackend{}, nil
}
