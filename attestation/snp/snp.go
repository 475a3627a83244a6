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
	spb "github.com/google/go-sev-guest/proto/sevsnp"

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
		// Opened once, now: a Keep confines itself after it made its
		// first evidence, and no longer sees /dev/sev-guest then, but
		// keeps the open device for fresh evidence.
		d, err := client.OpenDevice()
		if err != nil {
			return nil, fmt.Errorf("snp: open %s: %w", attestation.SEVGuestDevice, err)
		}
		return New(DeviceQuoteProvider{Device: d})
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

// DeviceQuoteProvider is a client.QuoteProvider over a device the caller
// opened (client.OpenDevice, or go-sev-guest's testing.Device): the
// extended report and its certificate table, or the report alone when the
// host supplies no certificates, as client.LinuxIoctlQuoteProvider returns
// them. Unlike that provider, it does not open /dev/sev-guest for each
// report.
type DeviceQuoteProvider struct {
	Device client.Device
}

// IsSupported reports that the device is there: it is open.
func (DeviceQuoteProvider) IsSupported() bool { return true }

// GetRawQuote returns the report for reportData with the certificate table.
func (p DeviceQuoteProvider) GetRawQuote(reportData [64]byte) ([]byte, error) {
	report, certs, err := client.GetRawExtendedReport(p.Device, reportData)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return report, nil
	}
	table, err := abi.ExtendedPlatformCertTable(certs)
	if err != nil {
		return nil, fmt.Errorf("invalid certificate table: %w", err)
	}
	return append(report, table...), nil
}

// Product is the device's product.
//
// Deprecated: as client.QuoteProvider's, which it implements.
func (p DeviceQuoteProvider) Product() *spb.SevProduct { return p.Device.Product() }
