package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// MaxReferenceValuesSize bounds a reference values file.
const MaxReferenceValuesSize = 4 << 20

// ReferenceValues map runtime digests to runtime versions, and launch
// measurements to the runtimes they contain: the build writes one runtime
// entry per Keep binary it produces, and whoever builds a node image adds
// the image's launch measurement with the runtimes it holds. The verifier
// turns the runtime digest the evidence binds into a runtime version with
// them, and establishes the runtime's integrity only when the hardware's
// launch measurement is one listed for that runtime: the digest alone is
// what the guest says of itself. Its JSON form is
//
//	{"runtimes": [{"name": "enarx-keep", "version": "v0.1.0", "digest": "sha256:<64 hex>"}],
//	 "measurements": [{"tee": "sev-snp", "measurement": "<96 hex>", "runtimes": ["sha256:<64 hex>"], "name": "node image"}]}
type ReferenceValues struct {
	Runtimes     []Runtime     `json:"runtimes"`
	Measurements []Measurement `json:"measurements,omitempty"`

	source string
}

// Measurement is the launch measurement of a node image, and the runtimes
// it contains: a guest launched with it runs one of them.
type Measurement struct {
	// Name describes the image, informative.
	Name string `json:"name,omitempty"`
	// TEE is attestation.TEESEVSNP or attestation.TEETDX.
	TEE string `json:"tee"`
	// Measurement is the launch measurement, lowercase hex: SEV-SNP's
	// MEASUREMENT, TDX's MRTD (48 bytes each).
	Measurement string `json:"measurement"`
	// RTMRs are, for TDX, the expected RTMR0 to RTMR3 (hex, 48 bytes each;
	// "" for one not checked); empty to check none.
	RTMRs []string `json:"rtmrs,omitempty"`
	// Runtimes are the digests of the runtimes the image holds.
	Runtimes []string `json:"runtimes"`
	// RuntimeRTMR is, for TDX, attestation.RuntimeRTMR (3) when the
	// image measures the runtimes it starts into that register at run
	// time: a runtime is then also covered when the quote's register,
	// replayed from the evidence's event log, holds it and every runtime
	// in that log is in the reference values. Its rtmrs entry is "".
	RuntimeRTMR int `json:"runtime_rtmr,omitempty"`
}

func (m Measurement) check() error {
	switch m.TEE {
	case attestation.TEESEVSNP, attestation.TEETDX:
	default:
		return fmt.Errorf("tee %q: a launch measurement is of tee %q or %q", truncate(m.TEE), attestation.TEESEVSNP, attestation.TEETDX)
	}
	if !measurementHex(m.Measurement) {
		return fmt.Errorf("measurement %q is not 96 lowercase hex digits (48 bytes)", truncate(m.Measurement))
	}
	if len(m.RTMRs) > 0 {
		if m.TEE != attestation.TEETDX || len(m.RTMRs) > 4 {
			return fmt.Errorf("rtmrs: at most four, for tee %q only", attestation.TEETDX)
		}
		for i, r := range m.RTMRs {
			if r != "" && !measurementHex(r) {
				return fmt.Errorf("rtmrs[%d] %q is not 96 lowercase hex digits, nor \"\"", i, truncate(r))
			}
		}
	}
	if m.RuntimeRTMR != 0 {
		if m.TEE != attestation.TEETDX || m.RuntimeRTMR != attestation.RuntimeRTMR {
			return fmt.Errorf("runtime_rtmr %d: runtimes are measured at run time into RTMR%d, for tee %q only", m.RuntimeRTMR, attestation.RuntimeRTMR, attestation.TEETDX)
		}
		if len(m.RTMRs) > m.RuntimeRTMR && m.RTMRs[m.RuntimeRTMR] != "" {
			return fmt.Errorf("rtmrs[%d] is set, but runtime_rtmr = %d: the register changes as runtimes start; leave it \"\"", m.RuntimeRTMR, m.RuntimeRTMR)
		}
	}
	if len(m.Runtimes) == 0 && m.RuntimeRTMR == 0 {
		return errors.New("runtimes is empty: list the digests of the runtimes the image holds (or, for tdx, runtime_rtmr = 3 where it measures them at run time)")
	}
	for i, d := range m.Runtimes {
		if err := checkDigest(d); err != nil {
			return fmt.Errorf("runtimes[%d] %w", i, err)
		}
	}
	return nil
}

// measurementHex reports whether s is a 48-byte measurement in lowercase
// hex, as the verifier compares them.
func measurementHex(s string) bool {
	_, err := hexValue(s, 48)
	return err == nil && s == strings.ToLower(s)
}

// ParseMeasurement parses "TEE:HEX[:RTMR0,RTMR1,...[:rtmr3]]" (enarx
// reference-values --measurement) into a Measurement for runtimes. A final
// ":rtmr3" (TDX) says that the image measures the runtimes it starts into
// RTMR3 (Measurement.RuntimeRTMR).
func ParseMeasurement(s string, runtimes []string) (Measurement, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 4 {
		return Measurement{}, fmt.Errorf("verify: measurement %q: write TEE:HEX, e.g. sev-snp:<96 hex>, or tdx:<MRTD>:<RTMR0>,<RTMR1>,<RTMR2>,[:rtmr3]", truncate(s))
	}
	m := Measurement{TEE: parts[0], Measurement: strings.ToLower(parts[1]), Runtimes: runtimes}
	if len(parts) == 4 {
		if parts[3] != fmt.Sprintf("rtmr%d", attestation.RuntimeRTMR) {
			return Measurement{}, fmt.Errorf("verify: measurement %q: the fourth part is rtmr%d (the image measures its runtimes into RTMR%d), not %q", truncate(s), attestation.RuntimeRTMR, attestation.RuntimeRTMR, truncate(parts[3]))
		}
		m.RuntimeRTMR = attestation.RuntimeRTMR
	}
	if len(parts) >= 3 && parts[2] != "" {
		m.RTMRs = strings.Split(strings.ToLower(parts[2]), ",")
	}
	if err := m.check(); err != nil {
		return Measurement{}, fmt.Errorf("verify: measurement %q: %w", truncate(s), err)
	}
	return m, nil
}

// measured reports how the hardware measured a guest that runs the runtime
// digest, "" when it did not: a Measurement of tee lists measurement (and,
// for TDX, rtmrs where it lists them) and either lists the runtime (it is
// in the launched image) or measures runtimes at run time and logged holds
// it (logged: the runtimes of the evidence's event log, replayed against
// the quote, every one of them in the reference values).
func (r *ReferenceValues) measured(tee, measurement string, rtmrs []string, digest string, logged []string) string {
	if r == nil {
		return ""
	}
	for _, m := range r.Measurements {
		if m.TEE != tee || m.Measurement != measurement {
			continue
		}
		ok := true
		for i, want := range m.RTMRs {
			if want != "" && (i >= len(rtmrs) || rtmrs[i] != want) {
				ok = false
			}
		}
		switch {
		case !ok:
		case slices.Contains(m.Runtimes, digest):
			return "launch measurement"
		case m.RuntimeRTMR != 0 && slices.Contains(logged, digest):
			return fmt.Sprintf("launch measurement and RTMR%d event log", m.RuntimeRTMR)
		}
	}
	return ""
}

// AddMeasurement records m, replacing one of the same tee and measurement.
func (r *ReferenceValues) AddMeasurement(m Measurement) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("verify: reference measurement: %w", err)
	}
	for i := range r.Measurements {
		if r.Measurements[i].TEE == m.TEE && r.Measurements[i].Measurement == m.Measurement {
			r.Measurements[i] = m
			return nil
		}
	}
	r.Measurements = append(r.Measurements, m)
	return nil
}

// Runtime is one runtime build.
type Runtime struct {
	// Name is the binary's name, informative.
	Name string `json:"name,omitempty"`
	// Version is the runtime version the binary reports.
	Version string `json:"version"`
	// Digest is "sha256:<64 lowercase hex>" of the binary.
	Digest string `json:"digest"`
}

// LoadReferenceValues reads and parses the reference values file at path.
func LoadReferenceValues(path string) (*ReferenceValues, error) {
	data, err := readFile(path, MaxReferenceValuesSize, "reference values")
	if err != nil {
		return nil, err
	}
	return ParseReferenceValues(data, path)
}

// ParseReferenceValues parses the JSON form; source names the file in
// errors. Unknown fields, malformed digests or versions and a digest listed
// twice are errors.
func ParseReferenceValues(data []byte, source string) (*ReferenceValues, error) {
	if len(data) > MaxReferenceValuesSize {
		return nil, fmt.Errorf("verify: reference values %s are larger than %d bytes", source, MaxReferenceValuesSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r ReferenceValues
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("verify: reference values %s are not valid JSON of the form {\"runtimes\": [{\"version\": ..., \"digest\": ...}]}: %w", source, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("verify: reference values %s have data after their JSON object", source)
	}
	seen := map[string]string{}
	for i, rt := range r.Runtimes {
		if err := rt.check(); err != nil {
			return nil, fmt.Errorf("verify: reference values %s: runtimes[%d]: %w", source, i, err)
		}
		if v, dup := seen[rt.Digest]; dup {
			return nil, fmt.Errorf("verify: reference values %s: runtimes[%d]: digest %s is listed twice (versions %q and %q)", source, i, rt.Digest, v, rt.Version)
		}
		seen[rt.Digest] = rt.Version
	}
	for i, m := range r.Measurements {
		if err := m.check(); err != nil {
			return nil, fmt.Errorf("verify: reference values %s: measurements[%d]: %w", source, i, err)
		}
	}
	r.source = source
	return &r, nil
}

func (rt Runtime) check() error {
	if err := checkDigest(rt.Digest); err != nil {
		return fmt.Errorf("digest %w", err)
	}
	if rt.Version == "" {
		return fmt.Errorf("version is empty")
	}
	if len(rt.Version) > attestation.MaxRuntimeVersionSize || !utf8.ValidString(rt.Version) || strings.ContainsFunc(rt.Version, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("version %q must be printable UTF-8 without spaces, at most %d bytes", truncate(rt.Version), attestation.MaxRuntimeVersionSize)
	}
	return nil
}

// Add records that the runtime binary with digest is version version,
// replacing an entry with the same digest.
func (r *ReferenceValues) Add(name, version, digest string) error {
	rt := Runtime{Name: name, Version: version, Digest: digest}
	if err := rt.check(); err != nil {
		return fmt.Errorf("verify: reference value: %w", err)
	}
	for i := range r.Runtimes {
		if r.Runtimes[i].Digest == digest {
			r.Runtimes[i] = rt
			return nil
		}
	}
	r.Runtimes = append(r.Runtimes, rt)
	return nil
}

// Lookup returns the runtime whose digest is digest.
func (r *ReferenceValues) Lookup(digest string) (Runtime, bool) {
	if r == nil {
		return Runtime{}, false
	}
	for _, rt := range r.Runtimes {
		if rt.Digest == digest {
			return rt, true
		}
	}
	return Runtime{}, false
}

// Marshal returns the JSON form, indented, its entries sorted by name,
// version and digest, with a final newline: the same values give the same
// bytes.
func (r *ReferenceValues) Marshal() ([]byte, error) {
	out := ReferenceValues{Runtimes: slices.Clone(r.Runtimes), Measurements: slices.Clone(r.Measurements)}
	slices.SortFunc(out.Measurements, func(a, b Measurement) int {
		if c := strings.Compare(a.TEE, b.TEE); c != 0 {
			return c
		}
		return strings.Compare(a.Measurement, b.Measurement)
	})
	if out.Runtimes == nil {
		out.Runtimes = []Runtime{}
	}
	slices.SortFunc(out.Runtimes, func(a, b Runtime) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := strings.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Digest, b.Digest)
	})
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("verify: encode reference values: %w", err)
	}
	return append(b, '\n'), nil
}

// where names the reference values in messages.
func (r *ReferenceValues) where() string {
	switch {
	case r == nil:
		return "(none were given to the verifier: pass the reference values the build wrote)"
	case r.source == "":
		return "given to the verifier"
	}
	return r.source
}

// FileDigest returns "sha256:<hex>" of the file at path, as a runtime
// digest is computed.
func FileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("verify: digest: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("verify: digest %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
