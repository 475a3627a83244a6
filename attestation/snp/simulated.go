//go:build enarx_simulate

package snp

import (
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/snp/snptest"
)

// NewSimulated returns an SEV-SNP provider backed by go-sev-guest's fake
// firmware and test-only certificate chain (package snptest). Its evidence
// has the same form as real evidence but chains to go-sev-guest's test ARK,
// which no verifier trusts unless told to. It exists only in binaries built
// with -tags enarx_simulate, for end-to-end tests without SEV-SNP hardware.
func NewSimulated() (attestation.Provider, error) {
	qp, err := snptest.New(time.Now())
	if err != nil {
		return nil, err
	}
	return New(qp)
}
