package attestation

import (
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Object identifiers of this project's X.509 extensions, under the private
// enterprise arc Enarx's Steward used (1.3.6.1.4.1.58270). They are part of
// the format described in docs/attestation.md.
var (
	// OIDEvidence marks a PKCS#10 extension whose value is an OCTET STRING
	// holding a Keep's evidence (Evidence.Marshal, format v1).
	OIDEvidence = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 58270, 2, 1}
	// OIDAssertions marks a certificate extension whose value is an OCTET
	// STRING holding the verified Assertions as JSON (Assertions.Marshal).
	OIDAssertions = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 58270, 2, 2}
)

// Assertions are what a verifier established from a Keep's evidence: the two
// assertions a relying party needs, (1) the TEE type and version and (2) the
// runtime version and integrity, plus the workload the Keep runs and the key
// it holds. JSON field names are part of the format.
type Assertions struct {
	// TEE is TEESEVSNP, TEETDX, or TEENone (accepted only by explicit
	// opt-in; Insecure is then set).
	TEE string `json:"tee"`
	// TEEVersion is the verified TEE version (see Evidence.TEEVersion).
	TEEVersion string `json:"tee_version,omitempty"`
	// Measurement is the launch measurement, hex: SEV-SNP MEASUREMENT or
	// TDX MRTD. Empty for TEENone.
	Measurement string `json:"measurement,omitempty"`
	// MeasuredBy says which hardware measurement the reference values
	// hold the runtime to: "launch measurement", or for TDX "launch
	// measurement and RTMR3 event log"; empty when none does (TEENone, or
	// allow_unmeasured_runtime, which makes the assertions Insecure).
	MeasuredBy string `json:"measured_by,omitempty"`
	// RuntimeVersion is the runtime version the reference values give for
	// RuntimeDigest: the runtime's integrity is established.
	RuntimeVersion string `json:"runtime_version"`
	// RuntimeDigest is "sha256:<hex>" of the Keep binary.
	RuntimeDigest string `json:"runtime_digest"`
	// WorkloadDigest is "sha256:<hex>" of the WebAssembly module.
	WorkloadDigest string `json:"workload_digest"`
	// ConfigDigest is "sha256:<hex>" of the Keep configuration.
	ConfigDigest string `json:"config_digest"`
	// KeepPublicKey is the Keep's public key, PKIX DER.
	KeepPublicKey []byte `json:"keep_public_key"`
	// Nonce is the caller's nonce the evidence binds, if any.
	Nonce []byte `json:"nonce,omitempty"`
	// EvidenceDigest is Evidence.Digest of the verified evidence.
	EvidenceDigest string `json:"evidence_digest"`
	// Insecure is set when the evidence is not confidential or not rooted in
	// the vendor's keys: TEENone, or test roots accepted by explicit opt-in.
	Insecure bool `json:"insecure,omitempty"`
	// InsecureReason says why Insecure is set.
	InsecureReason string `json:"insecure_reason,omitempty"`
	// VerifiedAt is when the verifier checked the evidence (UTC).
	VerifiedAt time.Time `json:"verified_at"`
}

// Marshal returns the JSON encoding of a (the OIDAssertions value).
func (a *Assertions) Marshal() ([]byte, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("attestation: encode assertions: %w", err)
	}
	return b, nil
}

// ErrNoAssertions: a certificate carries no OIDAssertions extension.
var ErrNoAssertions = errors.New("no assertions extension")

// ParseAssertions decodes the JSON of an OIDAssertions extension value.
func ParseAssertions(data []byte) (*Assertions, error) {
	var a Assertions
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("attestation: assertions are not valid JSON: %w", err)
	}
	if a.TEE == "" || a.RuntimeDigest == "" || a.WorkloadDigest == "" {
		return nil, fmt.Errorf("attestation: assertions lack tee, runtime_digest or workload_digest: %w", ErrMissingField)
	}
	return &a, nil
}
