package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// ReferenceValues map runtime digests to runtime versions: the build
// writes one entry per Keep binary it produces, and the verifier turns the
// runtime digest the evidence binds into a runtime version with it (the
// runtime's integrity is established when the digest is known). Its JSON
// form is
//
//	{"runtimes": [{"name": "enarx-keep", "version": "v0.1.0", "digest": "sha256:<64 hex>"}]}
type ReferenceValues struct {
	Runtimes []Runtime `json:"runtimes"`

	source string
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
	out := ReferenceValues{Runtimes: slices.Clone(r.Runtimes)}
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
