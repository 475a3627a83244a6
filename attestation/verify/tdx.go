package verify

import (
	"bytes"
	"crypto/x509"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
	tdxverify "github.com/google/go-tdx-guest/verify"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// intelRootPEM is Intel's SGX Root CA, the root of every PCK certificate
// chain: a copy of go-tdx-guest v0.3.1's verify/trusted_root.pem, which
// that package does not export. Passing it explicitly also keeps
// go-tdx-guest from logging that it falls back to its embedded copy.
//
//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// intelRoots returns a pool holding Intel's SGX Root CA (an empty pool,
// which trusts nothing, should the embedded PEM not parse).
var intelRoots = sync.OnceValue(func() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(intelRootPEM)
	return pool
})

// intelQEVendorID is the QE_VENDOR_ID of Intel's quoting enclave.
var intelQEVendorID = []byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// TD_ATTRIBUTES bits (Intel TDX module ABI): DEBUG, and those a production
// TD may set (SEPT_VE_DISABLE, PKS, PERFMON); any other bit is refused, as
// go-tdx-guest's validate does.
const (
	tdAttributeDebug  = uint64(1) << 0
	tdAttributesKnown = tdAttributeDebug | 1<<28 | 1<<30 | 1<<63
)

// verifyTDX checks a TDX quote: go-tdx-guest's verify for the PCK chain to
// Intel's root and the quote and QE report signatures (offline unless
// [tdx] fetch), then the [tdx] policy. The policy checks are stated here
// rather than through go-tdx-guest's validate.TdxQuote, which also demands
// XFAM's always-set x87/SSE bits: a check of what the TDX module enforces
// at TD creation, which tdxtest's quotes (XFAM zero) would fail.
func (v *Verifier) verifyTDX(ev *attestation.Evidence, now time.Time) (hardware, error) {
	p := v.pol.p
	t := &p.TDX
	var hw hardware
	q, err := parseTDX(ev.Report)
	if err != nil {
		return hw, fail(CheckTDXQuote, fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	if q.GetHeader().GetTeeType() != tdxabi.TeeTDX {
		return hw, failf(CheckTDXQuote, ErrMalformed, "quote TEE type 0x%x is not TDX", q.GetHeader().GetTeeType())
	}
	opts := &tdxverify.Options{
		CheckRevocations: t.CheckRevocations,
		GetCollateral:    t.Fetch,
		Now:              now,
		TrustedRoots:     v.tdxRoots,
	}
	if err := safely("go-tdx-guest verify", func() error { return tdxverify.TdxQuote(q, opts) }); err != nil {
		if tdxSignatureError(err) {
			return hw, failf(CheckTDXSignature, ErrSignature, "%v", err)
		}
		return hw, failf(CheckTDXChain, ErrChain, "%v", err)
	}
	if !bytes.Equal(q.GetHeader().GetQeVendorId(), intelQEVendorID) {
		return hw, failf(CheckTDXChain, ErrChain, "QE_VENDOR_ID %x is not Intel's quoting enclave's %x", q.GetHeader().GetQeVendorId(), intelQEVendorID)
	}

	body := q.GetTdQuoteBody()
	attrs := binary.LittleEndian.Uint64(body.GetTdAttributes())
	if attrs&tdAttributeDebug != 0 && !t.AllowDebug {
		return hw, failf(CheckTDXDebug, ErrDebug, "TD_ATTRIBUTES %016x has DEBUG set: the host can read and change the TD's memory; set [tdx] allow_debug = true in %s only for development", attrs, p.where())
	}
	if unknown := attrs &^ tdAttributesKnown; unknown != 0 {
		return hw, failf(CheckTDXAttributes, ErrGuestPolicy, "TD_ATTRIBUTES %016x has bits %016x this verifier does not accept", attrs, unknown)
	}
	if least := v.pol.tdxMinTEETCBSVN; least != nil {
		svn := body.GetTeeTcbSvn()
		for i := range least {
			if svn[i] < least[i] {
				return hw, failf(CheckTDXTCB, ErrTCB, "TEE_TCB_SVN %x is below minimum_tee_tcb_svn = %q of %s (component %d)", svn, t.MinimumTEETCBSVN, p.where(), i)
			}
		}
	}
	qeSVN := binary.LittleEndian.Uint16(q.GetHeader().GetQeSvn())
	pceSVN := binary.LittleEndian.Uint16(q.GetHeader().GetPceSvn())
	if qeSVN < t.MinimumQESVN {
		return hw, failf(CheckTDXTCB, ErrTCB, "QE SVN %d is below minimum_qe_svn = %d of %s", qeSVN, t.MinimumQESVN, p.where())
	}
	if pceSVN < t.MinimumPCESVN {
		return hw, failf(CheckTDXTCB, ErrTCB, "PCE SVN %d is below minimum_pce_svn = %d of %s", pceSVN, t.MinimumPCESVN, p.where())
	}
	if len(v.pol.tdxMRTD) > 0 && !containsBytes(v.pol.tdxMRTD, body.GetMrTd()) {
		return hw, failf(CheckTDXMeasurement, ErrMeasurement, "MRTD %x is not in [tdx] mr_td of %s", body.GetMrTd(), p.where())
	}
	// CheckBinding replayed the log against this quote already; this
	// replay, on the parsed quote, gives its runtimes.
	logged, err := attestation.CheckRuntimeEvents(ev.EventLog, body.GetRtmrs())
	if err != nil {
		return hw, fail(CheckBinding, fmt.Errorf("%w: %w", err, attestation.ErrEventLogMismatch))
	}
	hw.logged = logged
	hw.measurement = hex.EncodeToString(body.GetMrTd())
	for _, r := range body.GetRtmrs() {
		hw.rtmrs = append(hw.rtmrs, hex.EncodeToString(r))
	}
	return hw, nil
}

// tdxSignatureError reports whether a go-tdx-guest verify error is about a
// signature (the quote's, by the attestation key, or the QE report's, by
// the PCK key) rather than the PCK chain, which it checks first.
func tdxSignatureError(err error) bool {
	if errors.Is(err, tdxverify.ErrHashVerificationFail) {
		return true
	}
	msg := err.Error()
	for _, prefix := range []string{
		"attestation key in the quote is invalid",
		"unable to convert QuoteV4's signature",
		"error verifying QE report signature",
		"error verifying QE report data",
	} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// parseTDX parses a version 4 quote, never panicking.
func parseTDX(raw []byte) (q *tdxpb.QuoteV4, err error) {
	defer func() {
		if p := recover(); p != nil {
			q, err = nil, fmt.Errorf("malformed TDX quote: %v", p)
		}
	}()
	parsed, err := tdxabi.QuoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("TDX quote: %w", err)
	}
	v4, ok := parsed.(*tdxpb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("TDX quote of type %T, want version 4", parsed)
	}
	if err := tdxabi.CheckQuoteV4(v4); err != nil {
		return nil, fmt.Errorf("TDX quote: %w", err)
	}
	return v4, nil
}
