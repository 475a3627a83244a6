//go:build !enarx_simulate

package snp

import (
	"errors"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// NewSimulated is only available in binaries built with -tags
// enarx_simulate; here it always fails.
func NewSimulated() (attestation.Provider, error) {
	return nil, errors.New("simulated SEV-SNP is only in test builds (-tags enarx_simulate)")
}
