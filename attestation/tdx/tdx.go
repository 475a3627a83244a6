// Package tdx is the Intel TDX attestation.Provider: it obtains a TD quote
// (version 4) whose REPORT_DATA is the Keep's through configfs-tsm, with
// go-configfs-tsm's report package behind the method set of go-tdx-guest's
// QuoteProvider. The quote carries its PCK certificate chain.
package tdx

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// QuoteProvider has the method set of go-tdx-guest's client.QuoteProvider,
// so that its providers, ConfigfsQuoteProvider and tdxtest.Signer all fit.
// It is declared here rather than imported because importing go-tdx-guest's
// client package points the process-wide github.com/google/logger at
// standard output (its init function) and registers a global flag.
type QuoteProvider interface {
	// IsSupported returns nil when quotes can be requested.
	IsSupported() error
	// GetRawQuote returns a quote whose REPORT_DATA is reportData.
	GetRawQuote(reportData [64]byte) ([]uint8, error)
}

// Provider obtains TDX evidence from a QuoteProvider.
type Provider struct {
	qp       QuoteProvider
	measurer *Measurer
}

// New returns a Provider over qp: a ConfigfsQuoteProvider on a real guest,
// or tdxtest.Signer in tests. With a Measurer it measures the runtime into
// RTMR3 before each quote (attestation.RuntimeMeasurer); without one its
// evidence rests on the launch measurement alone.
func New(qp QuoteProvider, m *Measurer) (*Provider, error) {
	if qp == nil {
		return nil, errors.New("tdx: no quote provider")
	}
	return &Provider{qp: qp, measurer: m}, nil
}

// MeasureRuntime implements attestation.RuntimeMeasurer: nil, nil when
// the node cannot measure at run time.
func (p *Provider) MeasureRuntime(ctx context.Context, runtimeDigest string) ([]attestation.RuntimeEvent, error) {
	if p.measurer == nil {
		return nil, nil
	}
	return p.measurer.MeasureRuntime(ctx, runtimeDigest)
}

// Open returns the Provider of this node, through configfs-tsm. It fails,
// saying why, on a node that is not a TDX guest.
func Open() (*Provider, error) {
	b := attestation.Detect().Backend(attestation.TEETDX)
	if !b.Available {
		return nil, fmt.Errorf("tdx: TDX evidence is unavailable: %s", b.Reason)
	}
	c, err := linuxtsm.MakeClient()
	if err != nil {
		return nil, fmt.Errorf("tdx: configfs-tsm at %s: %w", attestation.ConfigfsTSMReport, err)
	}
	var m *Measurer
	if rtmrsAvailable() {
		m = &Measurer{Client: c, Log: DefaultEventLog}
	}
	return New(&ConfigfsQuoteProvider{Client: c}, m)
}

// ConfigfsQuoteProvider implements QuoteProvider with
// a configfs-tsm report entry, and refuses a report whose provider is not
// tdx_guest (go-tdx-guest's own LinuxConfigFsQuoteProvider does not check,
// and would return an SEV-SNP report on an SNP guest).
type ConfigfsQuoteProvider struct {
	// Client reaches configfs: linuxtsm.MakeClient() on a node, a faketsm
	// client in tests.
	Client configfsi.Client
}

// IsSupported implements QuoteProvider.
func (p *ConfigfsQuoteProvider) IsSupported() error {
	if p.Client == nil {
		return fmt.Errorf("tdx: no configfs-tsm client (is %s present?)", attestation.ConfigfsTSMReport)
	}
	return nil
}

// GetRawQuote implements QuoteProvider.
func (p *ConfigfsQuoteProvider) GetRawQuote(reportData [64]byte) ([]uint8, error) {
	if err := p.IsSupported(); err != nil {
		return nil, err
	}
	resp, err := report.Get(p.Client, &report.Request{InBlob: reportData[:]})
	if err != nil {
		return nil, fmt.Errorf("tdx: configfs-tsm report: %w", err)
	}
	if got := strings.TrimSpace(resp.Provider); got != attestation.ProviderTDXGuest {
		return nil, fmt.Errorf("tdx: configfs-tsm report provider is %q, not %q: this node is not a TDX guest", got, attestation.ProviderTDXGuest)
	}
	return resp.OutBlob, nil
}

// TEE returns attestation.TEETDX.
func (*Provider) TEE() string { return attestation.TEETDX }

// Attest returns the quote for reportData and its TEE_TCB_SVN.
//
// The configfs call cannot be interrupted: if ctx ends first, Attest
// returns ctx's error and the call finishes in the background.
func (p *Provider) Attest(ctx context.Context, reportData [64]byte) (attestation.Quote, error) {
	if err := p.qp.IsSupported(); err != nil {
		return attestation.Quote{}, fmt.Errorf("tdx: quote provider: %w", err)
	}
	raw, err := attestation.RawQuote(ctx, reportData, p.qp.GetRawQuote)
	if err != nil {
		return attestation.Quote{}, fmt.Errorf("tdx: quote: %w", err)
	}
	v, err := attestation.TEEVersionOf(attestation.TEETDX, raw)
	if err != nil {
		return attestation.Quote{}, fmt.Errorf("tdx: %w", err)
	}
	return attestation.Quote{Report: append([]byte(nil), raw...), TEEVersion: v}, nil
}
