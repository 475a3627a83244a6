package attestation

import (
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// DomainTag separates the REPORT_DATA hash of evidence format v1 from every
// other use of SHA-512 over similar inputs. It is the first item hashed.
const DomainTag = "enarx-keep-evidence/v1"

// Limits on the inputs bound into REPORT_DATA.
const (
	// MaxNonceSize is the largest caller nonce, in bytes.
	MaxNonceSize = 64
	// MaxPublicKeySize is the largest Keep public key (PKIX DER), in bytes.
	MaxPublicKeySize = 16 << 10
	// MaxRuntimeVersionSize is the longest runtime version string, in bytes.
	MaxRuntimeVersionSize = 256
)

// Inputs is what a Keep's evidence commits to. Every field but Nonce is
// required.
type Inputs struct {
	// KeepPublicKey is the Keep's fresh public key, PKIX DER encoded.
	KeepPublicKey []byte `json:"keep_public_key"`
	// WorkloadDigest is "sha256:<64 hex>" of the WebAssembly module.
	WorkloadDigest string `json:"workload_digest"`
	// RuntimeDigest is "sha256:<64 hex>" of the running Keep binary.
	RuntimeDigest string `json:"runtime_digest"`
	// RuntimeVersion is the runtime's version string, e.g. "v0.3.0".
	RuntimeVersion string `json:"runtime_version"`
	// ConfigDigest is "sha256:<64 hex>" of the Keep configuration.
	ConfigDigest string `json:"config_digest"`
	// Nonce is the caller's optional freshness nonce (at most 64 bytes).
	// A nil and an empty nonce are the same input: "no nonce".
	Nonce []byte `json:"nonce,omitempty"`
}

// Validate reports the first input that is missing or malformed.
func (in Inputs) Validate() error {
	if len(in.KeepPublicKey) == 0 {
		return fmt.Errorf("attestation: input keep_public_key: %w", ErrMissingField)
	}
	if len(in.KeepPublicKey) > MaxPublicKeySize {
		return fmt.Errorf("attestation: input keep_public_key is %d bytes, more than %d", len(in.KeepPublicKey), MaxPublicKeySize)
	}
	if _, err := x509.ParsePKIXPublicKey(in.KeepPublicKey); err != nil {
		return fmt.Errorf("attestation: input keep_public_key is not a PKIX DER public key: %w", err)
	}
	for _, d := range []struct{ name, value string }{
		{"workload_digest", in.WorkloadDigest},
		{"runtime_digest", in.RuntimeDigest},
		{"config_digest", in.ConfigDigest},
	} {
		if err := checkDigest(d.name, d.value); err != nil {
			return err
		}
	}
	if in.RuntimeVersion == "" {
		return fmt.Errorf("attestation: input runtime_version: %w", ErrMissingField)
	}
	if len(in.RuntimeVersion) > MaxRuntimeVersionSize {
		return fmt.Errorf("attestation: input runtime_version is %d bytes, more than %d", len(in.RuntimeVersion), MaxRuntimeVersionSize)
	}
	if !printable(in.RuntimeVersion) {
		return fmt.Errorf("attestation: input runtime_version %q must be printable UTF-8 without spaces", in.RuntimeVersion)
	}
	if len(in.Nonce) > MaxNonceSize {
		return fmt.Errorf("attestation: input nonce is %d bytes, more than %d", len(in.Nonce), MaxNonceSize)
	}
	return nil
}

// ReportData returns the 64 bytes a Keep asks its TEE to sign as
// REPORT_DATA:
//
//	SHA-512( lp(DomainTag) || lp(KeepPublicKey) || lp(WorkloadDigest) ||
//	         lp(RuntimeDigest) || lp(RuntimeVersion) || lp(ConfigDigest) || lp(Nonce) )
//
// where lp(x) is the length of x as a 4-byte big-endian integer followed by
// the bytes of x (the digests and the version as their UTF-8 strings). No
// nonce is lp of zero bytes. It fails if the inputs are not valid.
func (in Inputs) ReportData() ([64]byte, error) {
	if err := in.Validate(); err != nil {
		return [64]byte{}, err
	}
	h := sha512.New()
	var n [4]byte
	for _, item := range [][]byte{
		[]byte(DomainTag),
		in.KeepPublicKey,
		[]byte(in.WorkloadDigest),
		[]byte(in.RuntimeDigest),
		[]byte(in.RuntimeVersion),
		[]byte(in.ConfigDigest),
		in.Nonce,
	} {
		binary.BigEndian.PutUint32(n[:], uint32(len(item)))
		h.Write(n[:])
		h.Write(item)
	}
	var out [64]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

// checkDigest accepts "sha256:" followed by 64 lowercase hex digits.
func checkDigest(name, d string) error {
	if d == "" {
		return fmt.Errorf("attestation: input %s: %w", name, ErrMissingField)
	}
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return fmt.Errorf("attestation: input %s %q is not sha256:<64 lowercase hex digits>", name, truncate(d))
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// truncate keeps error messages short when quoting untrusted input.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
