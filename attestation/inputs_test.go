package attestation_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/attestationtest"
)

func TestReportDataVector(t *testing.T) {
	rd, err := attestationtest.Inputs().ReportData()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(rd[:]); got != attestationtest.ReportDataHex {
		t.Fatalf("ReportData = %s\nwant          %s", got, attestationtest.ReportDataHex)
	}
	in := attestationtest.Inputs()
	in.Nonce = nil
	rd, err = in.ReportData()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(rd[:]); got != attestationtest.ReportDataNoNonceHex {
		t.Fatalf("ReportData without nonce = %s\nwant %s", got, attestationtest.ReportDataNoNonceHex)
	}
}

// Every single input change must change REPORT_DATA.
func TestReportDataChangesWithEachInput(t *testing.T) {
	base, err := attestationtest.Inputs().ReportData()
	if err != nil {
		t.Fatal(err)
	}
	flipHex := func(d string) string { // change the last hex digit
		last := d[len(d)-1]
		if last == '0' {
			last = '1'
		} else {
			last = '0'
		}
		return d[:len(d)-1] + string(last)
	}
	cases := map[string]func(*attestation.Inputs){
		"key byte":             func(in *attestation.Inputs) { in.KeepPublicKey[len(in.KeepPublicKey)-1] ^= 1 },
		"workload digest char": func(in *attestation.Inputs) { in.WorkloadDigest = flipHex(in.WorkloadDigest) },
		"runtime digest char":  func(in *attestation.Inputs) { in.RuntimeDigest = flipHex(in.RuntimeDigest) },
		"runtime version":      func(in *attestation.Inputs) { in.RuntimeVersion = "v0.1.1" },
		"config digest char":   func(in *attestation.Inputs) { in.ConfigDigest = flipHex(in.ConfigDigest) },
		"nonce byte":           func(in *attestation.Inputs) { in.Nonce[0] ^= 1 },
		"nonce absent":         func(in *attestation.Inputs) { in.Nonce = nil },
		"nonce longer":         func(in *attestation.Inputs) { in.Nonce = append(in.Nonce, 0) },
		// Moving bytes between fields must not collide (length prefixes).
		"digests swapped": func(in *attestation.Inputs) {
			in.WorkloadDigest, in.RuntimeDigest = in.RuntimeDigest, in.WorkloadDigest
		},
	}
	seen := map[[64]byte]string{base: "base"}
	for name, change := range cases {
		in := attestationtest.Inputs()
		change(&in)
		rd, err := in.ReportData()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if other, ok := seen[rd]; ok {
			t.Errorf("%s: REPORT_DATA equals that of %s", name, other)
		}
		seen[rd] = name
	}
}

func TestReportDataNilAndEmptyNonceAreTheSame(t *testing.T) {
	a, b := attestationtest.Inputs(), attestationtest.Inputs()
	a.Nonce, b.Nonce = nil, []byte{}
	ra, _ := a.ReportData()
	rb, _ := b.ReportData()
	if ra != rb {
		t.Fatal("nil and empty nonce give different REPORT_DATA")
	}
}

func TestInputsValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(*attestation.Inputs)
		want   string
	}{
		{"no key", func(in *attestation.Inputs) { in.KeepPublicKey = nil }, "keep_public_key: missing"},
		{"key not DER", func(in *attestation.Inputs) { in.KeepPublicKey = []byte("-----BEGIN") }, "not a PKIX DER public key"},
		{"no workload", func(in *attestation.Inputs) { in.WorkloadDigest = "" }, "workload_digest: missing"},
		{"workload uppercase", func(in *attestation.Inputs) { in.WorkloadDigest = strings.ToUpper(in.WorkloadDigest) }, "workload_digest"},
		{"workload sha512", func(in *attestation.Inputs) { in.WorkloadDigest = "sha512:" + strings.Repeat("0", 128) }, "workload_digest"},
		{"runtime short", func(in *attestation.Inputs) { in.RuntimeDigest = in.RuntimeDigest[:70] }, "runtime_digest"},
		{"config not hex", func(in *attestation.Inputs) { in.ConfigDigest = "sha256:" + strings.Repeat("g", 64) }, "config_digest"},
		{"no version", func(in *attestation.Inputs) { in.RuntimeVersion = "" }, "runtime_version: missing"},
		{"version with space", func(in *attestation.Inputs) { in.RuntimeVersion = "v1 beta" }, "runtime_version"},
		{"version too long", func(in *attestation.Inputs) { in.RuntimeVersion = strings.Repeat("v", 257) }, "runtime_version"},
		{"nonce too long", func(in *attestation.Inputs) { in.Nonce = make([]byte, 65) }, "nonce is 65 bytes"},
	}
	for _, c := range cases {
		in := attestationtest.Inputs()
		c.change(&in)
		_, err := in.ReportData()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	in := attestationtest.Inputs()
	in.Nonce = make([]byte, 64)
	if err := in.Validate(); err != nil {
		t.Errorf("64-byte nonce: %v", err)
	}
	in.WorkloadDigest = ""
	if err := in.Validate(); !errors.Is(err, attestation.ErrMissingField) {
		t.Errorf("missing workload: %v is not ErrMissingField", err)
	}
}

func TestReportDataDoesNotAliasInputs(t *testing.T) {
	in := attestationtest.Inputs()
	rd1, _ := in.ReportData()
	key := bytes.Clone(in.KeepPublicKey)
	rd2, _ := in.ReportData()
	if rd1 != rd2 || !bytes.Equal(key, in.KeepPublicKey) {
		t.Fatal("ReportData is not a pure function of its inputs")
	}
}
