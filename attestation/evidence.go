package attestation

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// EvidenceVersion is the evidence format this package writes and reads.
const EvidenceVersion = 1

// MaxEvidenceSize bounds an encoded evidence blob. A real one is a few KiB
// (an SNP report and its certificate table, or a TDX quote with its PCK chain).
const MaxEvidenceSize = 1 << 20

// Errors that callers may test with errors.Is.
var (
	// ErrMissingField: a required field of evidence or inputs is absent.
	ErrMissingField = errors.New("missing")
	// ErrUnknownVersion: the evidence format version is not one this package reads.
	ErrUnknownVersion = errors.New("unknown evidence version")
	// ErrUnknownTEE: the TEE kind is not one of TEENone, TEESEVSNP, TEETDX.
	ErrUnknownTEE = errors.New("unknown TEE")
	// ErrTooLarge: the evidence blob exceeds MaxEvidenceSize.
	ErrTooLarge = errors.New("evidence too large")
	// ErrBindingMismatch: REPORT_DATA does not match the inputs.
	ErrBindingMismatch = errors.New("REPORT_DATA does not match the inputs")
	// ErrNotCanonical: the evidence blob is not the canonical encoding of
	// what it decodes to.
	ErrNotCanonical = errors.New("not canonical")
	// ErrEventLogMismatch: the RTMR event log is malformed or does not
	// replay to the registers of the quote.
	ErrEventLogMismatch = errors.New("the event log does not match the quote")
	// ErrTEEVersionMismatch: tee_version is not what the hardware report says.
	ErrTEEVersionMismatch = errors.New("tee_version does not match the report")
)

// Evidence is a Keep's attestation, format version 1. Its JSON field names
// are part of the format (see docs/attestation.md). Binary fields are
// encoded as standard, padded base64 strings.
type Evidence struct {
	// Version is EvidenceVersion.
	Version int `json:"version"`
	// TEE is TEENone, TEESEVSNP or TEETDX.
	TEE string `json:"tee"`
	// Inputs are what ReportData commits to.
	Inputs Inputs `json:"inputs"`
	// ReportData is Inputs.ReportData(), 64 bytes.
	ReportData []byte `json:"report_data"`
	// Report is the raw hardware evidence: an SEV-SNP ATTESTATION_REPORT
	// (1184 bytes) or a TDX quote (version 4). Empty for TEENone.
	Report []byte `json:"report,omitempty"`
	// Certificates is, for SEV-SNP, the GHCB certificate table from the
	// extended report or configfs-tsm auxblob (VCEK, ASK, ARK, ...); empty when
	// the host supplies none. TDX carries its PCK chain inside the quote.
	Certificates []byte `json:"certificates,omitempty"`
	// TEEVersion is the TEE's version as read from Report: for SEV-SNP the
	// reported TCB and firmware ("bl=3 tee=0 snp=8 ucode=115 fw=1.55.21"),
	// for TDX the TEE TCB SVN ("tee_tcb_svn=<32 hex>"). Empty for TEENone.
	TEEVersion string `json:"tee_version,omitempty"`
	// EventLog is, for TDX, the log of the runtime measurement registers
	// the Keep's node extends at run time (RuntimeEvent): replayed, it
	// gives the RTMRs in Report. Empty where the platform measures at
	// launch only.
	EventLog []RuntimeEvent `json:"event_log,omitempty"`
}

// Marshal returns the canonical encoding of e: the JSON that Digest hashes
// and that should be written to an evidence file.
func (e *Evidence) Marshal() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("attestation: encode evidence: %w", err)
	}
	return b, nil
}

// Digest returns "sha256:<hex>" of e's canonical encoding (Marshal).
func (e *Evidence) Digest() string {
	b, err := e.Marshal()
	if err != nil {
		// Cannot happen: every field is a string, an int or a byte slice.
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseEvidence decodes and checks the structure of an evidence blob: its
// size, version, TEE, inputs and field sizes. Unknown fields are rejected,
// and so is any blob that is not the canonical encoding (Marshal) of what
// it decodes to, but for one final newline: Digest is then the sha256 of
// the blob's bytes.
// It does not check the binding (see CheckBinding) nor any signature.
func ParseEvidence(data []byte) (*Evidence, error) {
	if len(data) > MaxEvidenceSize {
		return nil, fmt.Errorf("attestation: evidence is %d bytes, more than %d: %w", len(data), MaxEvidenceSize, ErrTooLarge)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var e Evidence
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("attestation: evidence is not valid JSON of format v%d: %w", EvidenceVersion, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("attestation: evidence has data after its JSON object")
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	// Exactly one reading: the blob must be the canonical encoding that
	// Digest hashes (one final newline aside). Go's decoder matches keys
	// case-insensitively and keeps the last of duplicates, where other
	// decoders differ; a blob with "WORKLOAD_DIGEST" beside
	// "workload_digest", a key twice, or another layout is refused rather
	// than verified as one thing and read by another tool as another.
	canonical, err := e.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(bytes.TrimSuffix(data, []byte("\n")), canonical) {
		return nil, fmt.Errorf("attestation: evidence is not in its canonical encoding (the JSON a Keep writes: keys in lower case, each once, in order, no spaces): %w", ErrNotCanonical)
	}
	return &e, nil
}

// check verifies the structure of e (what ParseEvidence promises).
func (e *Evidence) check() error {
	switch e.Version {
	case EvidenceVersion:
	case 0:
		return fmt.Errorf("attestation: evidence field version: %w", ErrMissingField)
	default:
		return fmt.Errorf("attestation: evidence version %d (this build reads %d): %w", e.Version, EvidenceVersion, ErrUnknownVersion)
	}
	switch e.TEE {
	case TEENone:
		if len(e.Report) != 0 || len(e.Certificates) != 0 || e.TEEVersion != "" || len(e.EventLog) != 0 {
			return fmt.Errorf("attestation: evidence for tee %q carries a report, certificates, tee_version or an event log", TEENone)
		}
	case TEESEVSNP, TEETDX:
		if len(e.Report) == 0 {
			return fmt.Errorf("attestation: evidence field report (tee %q): %w", e.TEE, ErrMissingField)
		}
		if e.TEE == TEETDX && len(e.Certificates) != 0 {
			return fmt.Errorf("attestation: evidence for tee %q carries certificates outside the quote", TEETDX)
		}
		if e.TEE != TEETDX && len(e.EventLog) != 0 {
			return fmt.Errorf("attestation: evidence for tee %q carries an RTMR event log (tee %q only)", e.TEE, TEETDX)
		}
	case "":
		return fmt.Errorf("attestation: evidence field tee: %w", ErrMissingField)
	default:
		return fmt.Errorf("attestation: evidence tee %q: %w", truncate(e.TEE), ErrUnknownTEE)
	}
	if len(e.EventLog) > MaxRuntimeEvents {
		return fmt.Errorf("attestation: evidence event_log has %d events, more than %d", len(e.EventLog), MaxRuntimeEvents)
	}
	for i, ev := range e.EventLog {
		if err := ev.check(); err != nil {
			return fmt.Errorf("attestation: evidence event_log[%d]: %w", i, err)
		}
	}
	if err := e.Inputs.Validate(); err != nil {
		return fmt.Errorf("attestation: evidence inputs: %w", err)
	}
	switch len(e.ReportData) {
	case 64:
	case 0:
		return fmt.Errorf("attestation: evidence field report_data: %w", ErrMissingField)
	default:
		return fmt.Errorf("attestation: evidence report_data is %d bytes, want 64", len(e.ReportData))
	}
	return nil
}

// CheckBinding recomputes REPORT_DATA from e.Inputs and compares it with
// e.ReportData and with the REPORT_DATA field inside the hardware report or
// quote; it also checks that e.TEEVersion is what the report says. It proves
// that the report is about these inputs, not that the report is genuine:
// verifying the report's signature and certificate chain is the verifier's
// job. Evidence with TEE TEENone passes when its ReportData matches, and
// must still never be trusted as confidential.
func (e *Evidence) CheckBinding() error {
	if err := e.check(); err != nil {
		return err
	}
	want, err := e.Inputs.ReportData()
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(want[:], e.ReportData) != 1 {
		return fmt.Errorf("attestation: evidence field report_data %x, inputs give %x: %w", e.ReportData, want, ErrBindingMismatch)
	}
	if e.TEE == TEENone {
		return nil
	}
	got, err := HardwareReportData(e.TEE, e.Report)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
		return fmt.Errorf("attestation: REPORT_DATA in the %s report is %x, inputs give %x: %w", e.TEE, got, want, ErrBindingMismatch)
	}
	version, err := TEEVersionOf(e.TEE, e.Report)
	if err != nil {
		return err
	}
	if version != e.TEEVersion {
		return fmt.Errorf("attestation: evidence tee_version %q, the %s report says %q: %w", truncate(e.TEEVersion), e.TEE, version, ErrTEEVersionMismatch)
	}
	if len(e.EventLog) != 0 {
		if _, err := e.RuntimeEvents(); err != nil {
			return err
		}
	}
	return nil
}

// RuntimeEvents checks that e's event log replays to the RTMRs of its TDX
// quote, and returns the runtime digests the log measured into
// RuntimeRTMR (none without a log). It checks the log against the report
// only: whether the report is genuine is the verifier's job.
func (e *Evidence) RuntimeEvents() ([]string, error) {
	if len(e.EventLog) == 0 {
		return nil, nil
	}
	if e.TEE != TEETDX {
		return nil, fmt.Errorf("attestation: evidence for tee %q carries an RTMR event log (tee %q only)", e.TEE, TEETDX)
	}
	q, err := parseTDXQuote(e.Report)
	if err != nil {
		return nil, err
	}
	runtimes, err := CheckRuntimeEvents(e.EventLog, q.GetTdQuoteBody().GetRtmrs())
	if err != nil {
		return nil, fmt.Errorf("attestation: evidence event_log: %w: %w", err, ErrEventLogMismatch)
	}
	return runtimes, nil
}
