// Package snp is the AMD SEV-SNP attestation.Provider: it asks the SEV-SNP
// firmware, through go-sev-guest, for an extended attestation report whose
// REPORT_DATA is the Keep's, with the certificate table (VCEK, ASK, ARK)
// the host supplies.
package snp

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// Provider obtains SEV-SNP evidence from a go-sev-guest QuoteProvider.
type Provider struct {
	qp client.QuoteProvider
}

// New returns a Provider over qp: go-sev-guest's configfs-tsm or
// /dev/sev-guest quote provider on a real guest, or its testing fakes
// (TcQuoteProvider) in tests.
func New(qp client.QuoteProvider) (*Provider, error) {
	if qp == nil {
		return nil, errors.New("snp: no quote provider")
	}
	return &Provider{qp: qp}, nil
}

// Open returns the Provider of this node: configfs-tsm when its report
// provider is sev_guest, else /dev/sev-guest. It fails, saying why, on a
// node that is not an SEV-SNP guest.
func Open() (*Provider, error) {
	return open(attestation.Detect())
}

// open chooses go-sev-guest's quote provider as client.GetQuoteProvider does
// (configfs-tsm first, then the ioctl device), but from a Platform, so that
// the choice is testable and no configfs entry is left behind
// (LinuxConfigFsQuoteProvider.IsSupported creates one and never removes it).
func open(p attestation.Platform) (*Provider, error) {
	b := p.Backend(attestation.TEESEVSNP)
	if !b.Available {
		return nil, fmt.Errorf("snp: SEV-SNP evidence is unavailable: %s", b.Reason)
	}
	switch b.Via {
	case attestation.ViaConfigfsTSM:
		return New(&client.LinuxConfigFsQuoteProvider{})
	case attestation.ViaSEVGuest:
		return New(&client.LinuxIoctlQuoteProvider{})
	}
	return nil, fmt.Errorf("snp: unknown way %q to SEV-SNP evidence", b.Via)
}

// TEE returns attestation.TEESEVSNP.
func (*Provider) TEE() string { return attestation.TEESEVSNP }

// Attest returns the attestation report for reportData, the certificate
// table that came with it (empty if the host supplies none: a verifier then
// fetches the VCEK from AMD's KDS) and the reported TCB.
//
// The device call cannot be interrupted: if ctx ends first, Attest returns
// ctx's error and the call finishes in the background.
func (p *Provider) Attest(ctx context.Context, reportData [64]byte) (attestation.Quote, error) {
	raw, err := attestation.RawQuote(ctx, reportData, p.qp.GetRawQuote)
	if err != nil {
		return attestation.Quote{}, fmt.Errorf("snp: attestation report: %w", err)
	}
	return split(raw)
}

// split separates go-sev-guest's "raw quote" (report || certificate table).
func split(raw []byte) (attestation.Quote, error) {
	if len(raw) < abi.ReportSize {
		return attestation.Quote{}, fmt.Errorf("snp: attestation report is %d bytes, want at least %d", len(raw), abi.ReportSize)
	}
	q := attestation.Quote{
		Report:       append([]byte(nil), raw[:abi.ReportSize]...),
		Certificates: append([]byte(nil), raw[abi.ReportSize:]...),
	}
	if len(q.Certificates) != 0 {
		if err := new(abi.CertTable).Unmarshal(q.Certificates); err != nil {
			return attestation.Quote{}, fmt.Errorf("snp: certificate table of %d bytes: %w", len(q.Certificates), err)
		}
	} else {
		q.Certificates = nil
	}
	v, err := attestation.TEEVersionOf(attestation.TEESEVSNP, q.Report)
	if err != nil {
		return attestation.Quote{}, fmt.Errorf("snp: %w", err)
	}
	q.TEEVersion = v
	return q, nil
}
