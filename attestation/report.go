package attestation

import (
	"encoding/hex"
	"fmt"

	sevabi "github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	sevpb "github.com/google/go-sev-guest/proto/sevsnp"
	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
)

// HardwareReportData returns the REPORT_DATA field of a raw SEV-SNP
// attestation report or TDX quote, parsed with go-sev-guest's or
// go-tdx-guest's abi package.
func HardwareReportData(tee string, report []byte) ([64]byte, error) {
	var out [64]byte
	switch tee {
	case TEESEVSNP:
		r, err := parseSNPReport(report)
		if err != nil {
			return out, err
		}
		copy(out[:], r.GetReportData())
	case TEETDX:
		q, err := parseTDXQuote(report)
		if err != nil {
			return out, err
		}
		copy(out[:], q.GetTdQuoteBody().GetReportData())
	default:
		return out, fmt.Errorf("attestation: no hardware report for tee %q: %w", truncate(tee), ErrUnknownTEE)
	}
	return out, nil
}

// TEEVersionOf returns the TEE version a raw report or quote states, in the
// form Evidence.TEEVersion uses:
//
//	sev-snp: "bl=<n> tee=<n> snp=<n> ucode=<n> fw=<major>.<minor>.<build>"
//	         (the REPORTED_TCB security patch levels and the current firmware)
//	tdx:     "tee_tcb_svn=<32 hex digits>" (the TD quote body's TEE_TCB_SVN)
func TEEVersionOf(tee string, report []byte) (string, error) {
	switch tee {
	case TEESEVSNP:
		r, err := parseSNPReport(report)
		if err != nil {
			return "", err
		}
		tcb := kds.DecomposeTCBVersion(kds.TCBVersion(r.GetReportedTcb()))
		return fmt.Sprintf("bl=%d tee=%d snp=%d ucode=%d fw=%d.%d.%d",
			tcb.BlSpl, tcb.TeeSpl, tcb.SnpSpl, tcb.UcodeSpl,
			r.GetCurrentMajor(), r.GetCurrentMinor(), r.GetCurrentBuild()), nil
	case TEETDX:
		q, err := parseTDXQuote(report)
		if err != nil {
			return "", err
		}
		return "tee_tcb_svn=" + hex.EncodeToString(q.GetTdQuoteBody().GetTeeTcbSvn()), nil
	case TEENone:
		return "", nil
	}
	return "", fmt.Errorf("attestation: tee %q: %w", truncate(tee), ErrUnknownTEE)
}

// parseSNPReport parses exactly one SEV-SNP ATTESTATION_REPORT.
func parseSNPReport(report []byte) (r *sevpb.Report, err error) {
	if len(report) != sevabi.ReportSize {
		return nil, fmt.Errorf("attestation: SEV-SNP report is %d bytes, want %d", len(report), sevabi.ReportSize)
	}
	defer func() {
		// The parsers index into attacker-supplied bytes; never let a bug
		// there turn bad evidence into a crash.
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("attestation: malformed SEV-SNP report: %v", p)
		}
	}()
	r, err = sevabi.ReportToProto(report)
	if err != nil {
		return nil, fmt.Errorf("attestation: malformed SEV-SNP report: %w", err)
	}
	return r, nil
}

// parseTDXQuote parses a TDX quote of version 4.
func parseTDXQuote(quote []byte) (q *tdxpb.QuoteV4, err error) {
	defer func() {
		// go-tdx-guest v0.3.1 slices past the end of short signed-data
		// sections (e.g. a signed data size of 0); turn that into an error.
		if p := recover(); p != nil {
			q, err = nil, fmt.Errorf("attestation: malformed TDX quote: %v", p)
		}
	}()
	parsed, err := tdxabi.QuoteToProto(quote)
	if err != nil {
		return nil, fmt.Errorf("attestation: malformed TDX quote: %w", err)
	}
	v4, ok := parsed.(*tdxpb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("attestation: TDX quote of type %T, want version 4", parsed)
	}
	return v4, nil
}
