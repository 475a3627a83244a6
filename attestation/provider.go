package attestation

import (
	"context"
	"fmt"

	"github.com/containerd/log"
)

// Provider obtains hardware evidence from one kind of TEE. Implementations
// live in the subpackages snp and tdx; None is the provider of a node
// without a TEE.
type Provider interface {
	// TEE names the kind of TEE: TEENone, TEESEVSNP or TEETDX.
	TEE() string
	// Attest asks the TEE for a report or quote whose REPORT_DATA is
	// reportData.
	Attest(ctx context.Context, reportData [64]byte) (Quote, error)
}

// Quote is what a Provider returns: the raw report or quote, its
// certificates, and the TEE version it states (see Evidence).
type Quote struct {
	Report       []byte
	Certificates []byte
	TEEVersion   string
}

// Collect computes REPORT_DATA from in, asks p for a report bound to it,
// and returns the evidence after checking that the report carries that
// REPORT_DATA (so a provider that drops it fails here, not at a verifier).
func Collect(ctx context.Context, p Provider, in Inputs) (*Evidence, error) {
	if p == nil {
		return nil, fmt.Errorf("attestation: collect: no provider")
	}
	rd, err := in.ReportData()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("attestation: collect %s evidence: %w", p.TEE(), err)
	}
	var events []RuntimeEvent
	if m, ok := p.(RuntimeMeasurer); ok {
		// Measuring at run time strengthens the evidence where the
		// platform offers it; without it the launch measurement is what
		// verifiers hold the runtime to, so a failure costs no Keep.
		events, err = m.MeasureRuntime(ctx, in.RuntimeDigest)
		if err != nil {
			log.G(ctx).WithError(err).Warnf("attestation: the runtime is not measured at run time (%s evidence without an event log)", p.TEE())
			events = nil
		}
	}
	q, err := p.Attest(ctx, rd)
	if err != nil {
		return nil, fmt.Errorf("attestation: collect %s evidence: %w", p.TEE(), err)
	}
	e := &Evidence{
		Version:      EvidenceVersion,
		TEE:          p.TEE(),
		Inputs:       in,
		ReportData:   rd[:],
		Report:       q.Report,
		Certificates: q.Certificates,
		TEEVersion:   q.TEEVersion,
		EventLog:     events,
	}
	if len(e.Certificates) == 0 {
		e.Certificates = nil
	}
	if _, err := e.RuntimeEvents(); err != nil {
		// Something extended the register between the measurement and
		// the quote: evidence without the log still verifies against
		// the launch measurement.
		log.G(ctx).WithError(err).Warnf("attestation: %s evidence without its event log", p.TEE())
		e.EventLog = nil
	}
	if err := e.CheckBinding(); err != nil {
		return nil, fmt.Errorf("attestation: %s provider returned evidence that fails its own check: %w", p.TEE(), err)
	}
	return e, nil
}

// None is the provider of a Keep without a TEE: it returns an empty report,
// and its evidence says TEE "none". Such evidence is never confidential.
type None struct{}

// TEE returns TEENone.
func (None) TEE() string { return TEENone }

// Attest returns an empty Quote.
func (None) Attest(ctx context.Context, _ [64]byte) (Quote, error) {
	return Quote{}, ctx.Err()
}

// RawQuote calls get, a device or configfs request that cannot be
// interrupted, for reportData. If ctx ends first it returns ctx's error and
// the request finishes in the background.
func RawQuote(ctx context.Context, reportData [64]byte, get func([64]byte) ([]byte, error)) ([]byte, error) {
	type result struct {
		raw []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		raw, err := get(reportData)
		done <- result{raw, err}
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-done:
		return r.raw, r.err
	}
}
