package attestation_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/kds"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/attestationtest"
	"github.com/enarx/containerd-shim-enarx/attestation/tdx/tdxtest"
)

// rawProvider returns a report made by a function of REPORT_DATA.
type rawProvider struct {
	tee   string
	make  func(rd [64]byte) ([]byte, error)
	certs []byte
}

func (p rawProvider) TEE() string { return p.tee }

func (p rawProvider) Attest(_ context.Context, rd [64]byte) (attestation.Quote, error) {
	r, err := p.make(rd)
	if err != nil {
		return attestation.Quote{}, err
	}
	v, err := attestation.TEEVersionOf(p.tee, r)
	return attestation.Quote{Report: r, Certificates: p.certs, TEEVersion: v}, err
}

// snpReport is an unsigned SEV-SNP report (go-sev-guest's test layout) with
// a realistic TCB and firmware version.
func snpReport(rd [64]byte) ([]byte, error) {
	raw := sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: rd[:]})
	tcb, err := kds.ComposeTCBParts(kds.TCBParts{BlSpl: 3, TeeSpl: 0, SnpSpl: 8, UcodeSpl: 115})
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint64(raw[0x180:], uint64(tcb))
	raw[0x1E8], raw[0x1E9], raw[0x1EA] = 21, 55, 1 // build, minor, major
	return raw[:0x4A0], nil
}

func snpProvider() attestation.Provider {
	return rawProvider{tee: attestation.TEESEVSNP, make: snpReport, certs: []byte("cert table")}
}

func tdxProvider(t testing.TB) attestation.Provider {
	s, err := tdxtest.NewSigner(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return rawProvider{tee: attestation.TEETDX, make: s.Quote}
}

func collect(t testing.TB, p attestation.Provider) *attestation.Evidence {
	t.Helper()
	e, err := attestation.Collect(context.Background(), p, attestationtest.Inputs())
	if err != nil {
		t.Fatalf("Collect(%s): %v", p.TEE(), err)
	}
	return e
}

func TestCollectAndRoundTrip(t *testing.T) {
	for _, p := range []attestation.Provider{attestation.None{}, snpProvider(), tdxProvider(t)} {
		e := collect(t, p)
		if e.Version != 1 || e.TEE != p.TEE() {
			t.Errorf("%s: version %d tee %q", p.TEE(), e.Version, e.TEE)
		}
		if hex.EncodeToString(e.ReportData) != attestationtest.ReportDataHex {
			t.Errorf("%s: report_data %x", p.TEE(), e.ReportData)
		}
		if err := e.CheckBinding(); err != nil {
			t.Errorf("%s: CheckBinding: %v", p.TEE(), err)
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := attestation.ParseEvidence(b)
		if err != nil {
			t.Fatalf("%s: ParseEvidence(Marshal()): %v", p.TEE(), err)
		}
		if back.Digest() != e.Digest() || !strings.HasPrefix(e.Digest(), "sha256:") || len(e.Digest()) != 71 {
			t.Errorf("%s: digest %s after round trip %s", p.TEE(), e.Digest(), back.Digest())
		}
		if err := back.CheckBinding(); err != nil {
			t.Errorf("%s: CheckBinding after round trip: %v", p.TEE(), err)
		}
	}
}

func TestTEEVersion(t *testing.T) {
	if v := collect(t, snpProvider()).TEEVersion; v != "bl=3 tee=0 snp=8 ucode=115 fw=1.55.21" {
		t.Errorf("SNP tee_version %q", v)
	}
	if v := collect(t, tdxProvider(t)).TEEVersion; v != "tee_tcb_svn=03000400000000000000000000000000" {
		t.Errorf("TDX tee_version %q", v)
	}
	if v := collect(t, attestation.None{}).TEEVersion; v != "" {
		t.Errorf("none tee_version %q", v)
	}
}

func TestEvidenceJSONFieldNames(t *testing.T) {
	b, err := collect(t, snpProvider()).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"certificates", "inputs", "report", "report_data", "tee", "tee_version", "version"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(m["inputs"], &in); err != nil {
		t.Fatal(err)
	}
	keys = keys[:0]
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want = []string{"config_digest", "keep_public_key", "nonce", "runtime_digest", "runtime_version", "workload_digest"}
	if !slices.Equal(keys, want) {
		t.Errorf("input keys %v, want %v", keys, want)
	}
	// The none evidence has no report, certificates nor tee_version.
	b, _ = collect(t, attestation.None{}).Marshal()
	for _, k := range []string{`"report"`, `"certificates"`, `"tee_version"`} {
		if bytes.Contains(b, []byte(k)) {
			t.Errorf("none evidence has %s: %s", k, b)
		}
	}
}

func TestDigestCoversEveryField(t *testing.T) {
	e := collect(t, snpProvider())
	base := e.Digest()
	for name, change := range map[string]func(*attestation.Evidence){
		"tee_version":  func(e *attestation.Evidence) { e.TEEVersion += " " },
		"certificates": func(e *attestation.Evidence) { e.Certificates = append(e.Certificates, 0) },
		"report":       func(e *attestation.Evidence) { e.Report[0x50] ^= 1 },
		"nonce":        func(e *attestation.Evidence) { e.Inputs.Nonce = nil },
	} {
		c := *e
		c.Report = bytes.Clone(e.Report)
		change(&c)
		if c.Digest() == base {
			t.Errorf("changing %s keeps the digest", name)
		}
	}
}

func TestCheckBindingMismatch(t *testing.T) {
	for _, p := range []attestation.Provider{snpProvider(), tdxProvider(t), attestation.None{}} {
		cases := map[string]func(*attestation.Evidence){
			"inputs changed":      func(e *attestation.Evidence) { e.Inputs.RuntimeVersion = "v9" },
			"nonce dropped":       func(e *attestation.Evidence) { e.Inputs.Nonce = nil },
			"report_data changed": func(e *attestation.Evidence) { e.ReportData[3] ^= 1 },
		}
		if p.TEE() != attestation.TEENone {
			// Evidence whose own report_data matches its inputs but whose
			// hardware report was made for other inputs.
			cases["hardware report for other inputs"] = func(e *attestation.Evidence) {
				in := e.Inputs
				in.Nonce = []byte("other")
				other, err := attestation.Collect(context.Background(), p, in)
				if err != nil {
					t.Fatal(err)
				}
				e.Report = other.Report
			}
		}
		for name, change := range cases {
			e := collect(t, p)
			e.ReportData = bytes.Clone(e.ReportData)
			change(e)
			if err := e.CheckBinding(); !errors.Is(err, attestation.ErrBindingMismatch) {
				t.Errorf("%s, %s: CheckBinding = %v, want ErrBindingMismatch", p.TEE(), name, err)
			}
		}
	}
	e := collect(t, snpProvider())
	e.TEEVersion = "bl=9 tee=9 snp=99 ucode=255 fw=9.9.9"
	if err := e.CheckBinding(); !errors.Is(err, attestation.ErrTEEVersionMismatch) {
		t.Errorf("forged tee_version: %v", err)
	}
}

// go-tdx-guest's recorded quote from real hardware parses; its REPORT_DATA
// is not ours, so the binding fails.
func TestRealTDXQuote(t *testing.T) {
	rd, err := attestation.HardwareReportData(attestation.TEETDX, testdata.RawQuote)
	if err != nil {
		t.Fatal(err)
	}
	const want = "6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113"
	if hex.EncodeToString(rd[:]) != want {
		t.Errorf("REPORT_DATA %x", rd)
	}
	v, err := attestation.TEEVersionOf(attestation.TEETDX, testdata.RawQuote)
	if err != nil || v != "tee_tcb_svn=03000400000000000000000000000000" {
		t.Errorf("TEEVersionOf = %q, %v", v, err)
	}
	in := attestationtest.Inputs()
	ours, _ := in.ReportData()
	e := &attestation.Evidence{Version: 1, TEE: attestation.TEETDX, Inputs: in, ReportData: ours[:], Report: testdata.RawQuote, TEEVersion: v}
	if err := e.CheckBinding(); !errors.Is(err, attestation.ErrBindingMismatch) {
		t.Errorf("CheckBinding of a foreign quote = %v", err)
	}
}

func TestMalformedHardwareReports(t *testing.T) {
	quote := testdata.RawQuote
	zeroSigned := bytes.Clone(quote)
	binary.LittleEndian.PutUint32(zeroSigned[0x278:], 0) // go-tdx-guest slices past the end
	cases := []struct {
		tee    string
		report []byte
	}{
		{attestation.TEETDX, nil},
		{attestation.TEETDX, quote[:100]},
		{attestation.TEETDX, quote[:0x3FC]},
		{attestation.TEETDX, zeroSigned},
		{attestation.TEESEVSNP, nil},
		{attestation.TEESEVSNP, make([]byte, 0x4A1)},
		{attestation.TEESEVSNP, bytes.Repeat([]byte{0xff}, 0x4A0)},
		{"sgx", make([]byte, 10)},
	}
	for i, c := range cases {
		if _, err := attestation.HardwareReportData(c.tee, c.report); err == nil {
			t.Errorf("case %d (%s, %d bytes): no error", i, c.tee, len(c.report))
		}
	}
}

func TestParseEvidenceErrors(t *testing.T) {
	good, err := collect(t, snpProvider()).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name string
		data []byte
		is   error
		want string
	}{
		{"too large", make([]byte, attestation.MaxEvidenceSize+1), attestation.ErrTooLarge, "more than"},
		{"empty", nil, nil, "not valid JSON"},
		{"not json", []byte("tee=sev-snp"), nil, "not valid JSON"},
		{"trailing", append(bytes.Clone(good), []byte(" {}")...), nil, "after its JSON object"},
		{"unknown field", edit(func(m map[string]any) { m["signature"] = "x" }), nil, `unknown field "signature"`},
		{"no version", edit(func(m map[string]any) { delete(m, "version") }), attestation.ErrMissingField, "field version"},
		{"version 2", edit(func(m map[string]any) { m["version"] = 2 }), attestation.ErrUnknownVersion, "version 2"},
		{"no tee", edit(func(m map[string]any) { delete(m, "tee") }), attestation.ErrMissingField, "field tee"},
		{"tee sgx", edit(func(m map[string]any) { m["tee"] = "sgx" }), attestation.ErrUnknownTEE, `"sgx"`},
		{"no report", edit(func(m map[string]any) { delete(m, "report") }), attestation.ErrMissingField, "field report"},
		{"none with report", edit(func(m map[string]any) { m["tee"] = "none" }), nil, "carries a report"},
		{"no report_data", edit(func(m map[string]any) { delete(m, "report_data") }), attestation.ErrMissingField, "report_data"},
		{"short report_data", edit(func(m map[string]any) { m["report_data"] = "AAAA" }), nil, "report_data is 3 bytes"},
		{"bad digest", edit(func(m map[string]any) { m["inputs"].(map[string]any)["workload_digest"] = "sha256:xyz" }), nil, "workload_digest"},
		{"no key", edit(func(m map[string]any) { delete(m["inputs"].(map[string]any), "keep_public_key") }), attestation.ErrMissingField, "keep_public_key"},
		{"report not base64", edit(func(m map[string]any) { m["report"] = "!!" }), nil, "not valid JSON"},
		// One reading only: what Go would verify must be what any other
		// JSON reader sees.
		{"key in upper case beside it", bytes.Replace(good, []byte(`"workload_digest":`), []byte(`"WORKLOAD_DIGEST":"sha256:`+strings.Repeat("0", 64)+`","workload_digest":`), 1), attestation.ErrNotCanonical, "canonical"},
		{"key in upper case", bytes.Replace(good, []byte(`"tee":`), []byte(`"TEE":`), 1), attestation.ErrNotCanonical, "canonical"},
		{"key twice", bytes.Replace(good, []byte(`{"version":1,`), []byte(`{"version":1,"version":1,`), 1), attestation.ErrNotCanonical, "canonical"},
		{"spaces", bytes.Replace(good, []byte(`"version":1`), []byte(`"version": 1`), 1), attestation.ErrNotCanonical, "canonical"},
		{"two newlines", append(bytes.Clone(good), '\n', '\n'), attestation.ErrNotCanonical, "canonical"},
	}
	for _, c := range cases {
		_, err := attestation.ParseEvidence(c.data)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v is not %v", c.name, err, c.is)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %q does not contain %q", c.name, err, c.want)
		}
	}
}

// TestParseEvidenceCanonical: the canonical encoding, with or without one
// final newline (as enarx attest prints it), is read, and its digest is
// the sha256 of those bytes.
func TestParseEvidenceCanonical(t *testing.T) {
	good, err := collect(t, snpProvider()).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{good, append(bytes.Clone(good), '\n')} {
		ev, err := attestation.ParseEvidence(data)
		if err != nil {
			t.Fatalf("ParseEvidence: %v", err)
		}
		if sum := sha256.Sum256(good); ev.Digest() != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Errorf("Digest %s is not the sha256 of the blob", ev.Digest())
		}
	}
}

func TestCollectErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := attestation.Collect(ctx, nil, attestationtest.Inputs()); err == nil {
		t.Error("nil provider: no error")
	}
	in := attestationtest.Inputs()
	in.ConfigDigest = ""
	if _, err := attestation.Collect(ctx, attestation.None{}, in); !errors.Is(err, attestation.ErrMissingField) {
		t.Errorf("invalid inputs: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := attestation.Collect(cancelled, attestation.None{}, attestationtest.Inputs()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	// A provider that ignores REPORT_DATA is caught by Collect itself.
	var zero [64]byte
	lying := rawProvider{tee: attestation.TEESEVSNP, make: func([64]byte) ([]byte, error) { return snpReport(zero) }}
	if _, err := attestation.Collect(ctx, lying, attestationtest.Inputs()); !errors.Is(err, attestation.ErrBindingMismatch) {
		t.Errorf("provider ignoring REPORT_DATA: %v", err)
	}
}

// docs/attestation.md shows this evidence and digest; keep them true.
func TestDocumentedNoneEvidence(t *testing.T) {
	e := collect(t, attestation.None{})
	const digest = "sha256:f5bd3171cac7fd6c203ddce58e30f0af56ee1cfb2cb8ecc1a32b7c12002bdfcc"
	if got := e.Digest(); got != digest {
		t.Errorf("digest %s, docs say %s", got, digest)
	}
}
