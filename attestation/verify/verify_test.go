package verify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/attestationtest"
	"github.com/enarx/containerd-shim-enarx/attestation/tdx/tdxtest"
)

// Offsets in an SEV-SNP ATTESTATION_REPORT.
const (
	snpPolicyOff      = 0x08
	snpVMPLOff        = 0x30
	snpMeasurementOff = 0x90
	snpSignatureOff   = 0x2A0
)

// expectFailure asserts err is a *CheckError of check wrapping each of want.
func expectFailure(t *testing.T, err error, check string, want ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want check %s to fail", check)
	}
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *CheckError", err, err)
	}
	if ce.Check != check {
		t.Errorf("check %q failed (%v), want %q", ce.Check, err, check)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("error %q does not wrap %q", err, w)
		}
	}
	if !strings.HasPrefix(err.Error(), "verify: check "+check+" failed: ") {
		t.Errorf("message %q", err)
	}
}

func newVerifier(t testing.TB, p *Policy, opts Options) *Verifier {
	t.Helper()
	opts.Policy = p
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow.Add(time.Minute) }
	}
	v, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func policy(mutate func(*Policy)) *Policy {
	p := DefaultPolicy()
	p.Source = "/etc/enarx/verify.toml"
	if mutate != nil {
		mutate(p)
	}
	return p
}

func allowTestRoots(p *Policy) { p.AllowTestRoots = true }

func TestSNPAcceptedWithTestRoots(t *testing.T) {
	f := getFixture(t)
	v := newVerifier(t, policy(allowTestRoots), Options{Reference: reference(t)})
	in := attestationtest.Inputs()
	a, err := v.Verify(context.Background(), f.snp, in.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	want := &attestation.Assertions{
		TEE:            attestation.TEESEVSNP,
		TEEVersion:     "bl=3 tee=0 snp=8 ucode=115 fw=1.55.21",
		Measurement:    hex.EncodeToString(f.snp.Report[snpMeasurementOff : snpMeasurementOff+48]),
		MeasuredBy:     "launch measurement",
		RuntimeVersion: "v0.1.0",
		RuntimeDigest:  in.RuntimeDigest,
		WorkloadDigest: in.WorkloadDigest,
		ConfigDigest:   in.ConfigDigest,
		KeepPublicKey:  in.KeepPublicKey,
		Nonce:          in.Nonce,
		EvidenceDigest: f.snp.Digest(),
		Insecure:       true,
		InsecureReason: a.InsecureReason,
		VerifiedAt:     testNow.Add(time.Minute).UTC(),
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("assertions\n got %+v\nwant %+v", a, want)
	}
	if !strings.Contains(a.InsecureReason, "test-only") || !strings.Contains(a.InsecureReason, "allow_test_roots = true in /etc/enarx/verify.toml") {
		t.Errorf("insecure reason %q", a.InsecureReason)
	}
	if len(a.Measurement) != 96 {
		t.Errorf("measurement %q", a.Measurement)
	}
	// The same evidence through VerifyBlob, and without a caller nonce.
	blob, _ := f.snp.Marshal()
	if _, err := v.VerifyBlob(context.Background(), blob, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSNPAcceptedWithPrivateRoots(t *testing.T) {
	f := getFixture(t)
	v := newVerifier(t, policy(nil), Options{Reference: reference(t), SNPRoots: rootsOf(f.signerA)})
	a, err := v.Verify(context.Background(), f.snpA, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Insecure || a.InsecureReason != "" || a.TEE != attestation.TEESEVSNP {
		t.Errorf("assertions %+v", a)
	}
}

func TestSNPTamperingMatrix(t *testing.T) {
	f := getFixture(t)
	in := attestationtest.Inputs()

	withReport := func(mutate func(r []byte)) func(t *testing.T) *attestation.Evidence {
		return func(t *testing.T) *attestation.Evidence {
			ev := clone(f.snp)
			r := bytes.Clone(ev.Report)
			mutate(r)
			ev.Report = resign(t, f.fake.Signer, r)
			return ev
		}
	}
	setPolicy := func(bits uint64) func(r []byte) {
		return func(r []byte) {
			binary.LittleEndian.PutUint64(r[snpPolicyOff:], binary.LittleEndian.Uint64(r[snpPolicyOff:])|bits)
		}
	}
	const debugBit, migrateMABit = 1 << 19, 1 << 18
	withInputs := func(mutate func(in *attestation.Inputs)) func(t *testing.T) *attestation.Evidence {
		return func(t *testing.T) *attestation.Evidence {
			ev := clone(f.snp)
			mutate(&ev.Inputs)
			return ev
		}
	}
	otherKey, _, _ := ed25519.GenerateKey(rand.Reader)
	otherKeyDER, _ := x509.MarshalPKIXPublicKey(otherKey)
	otherDigest := "sha256:" + strings.Repeat("ab", 32)

	tests := []struct {
		name   string
		ev     func(t *testing.T) *attestation.Evidence
		policy func(*Policy)
		opts   Options
		nonce  []byte
		check  string
		want   []error
	}{
		{
			name: "measurement byte flipped",
			ev: func(t *testing.T) *attestation.Evidence {
				ev := clone(f.snp)
				ev.Report[snpMeasurementOff] ^= 1
				return ev
			},
			policy: allowTestRoots, check: CheckSNPSignature, want: []error{ErrSignature},
		},
		{
			name: "signature byte flipped",
			ev: func(t *testing.T) *attestation.Evidence {
				ev := clone(f.snp)
				ev.Report[snpSignatureOff] ^= 1
				return ev
			},
			policy: allowTestRoots, check: CheckSNPSignature, want: []error{ErrSignature},
		},
		{
			name:  "chain to a foreign root",
			ev:    func(t *testing.T) *attestation.Evidence { return resignedBy(f.signerB, f.snp, f.snp.Report) },
			opts:  Options{SNPRoots: rootsOf(f.signerA)},
			check: CheckSNPChain, want: []error{ErrChain},
		},
		{
			name:   "chain to a foreign root, test roots allowed",
			ev:     func(t *testing.T) *attestation.Evidence { return resignedBy(f.signerB, f.snp, f.snp.Report) },
			opts:   Options{SNPRoots: rootsOf(f.signerA)},
			policy: allowTestRoots, check: CheckSNPChain, want: []error{ErrChain},
		},
		{
			name:  "test roots without opt-in",
			ev:    func(t *testing.T) *attestation.Evidence { return f.snp },
			check: CheckSNPChain, want: []error{ErrChain, ErrTestRoots},
		},
		{
			name:  "test roots passed as SNPRoots without opt-in",
			ev:    func(t *testing.T) *attestation.Evidence { return f.snp },
			opts:  Options{SNPRoots: f.fake.Roots()},
			check: CheckSNPChain, want: []error{ErrChain, ErrTestRoots},
		},
		{
			name: "no VCEK in the certificate table, offline",
			ev: func(t *testing.T) *attestation.Evidence {
				ev := clone(f.snp)
				var table abi.CertTable
				if err := table.Unmarshal(ev.Certificates); err != nil {
					t.Fatal(err)
				}
				var kept abi.CertTable
				for _, e := range table.Entries {
					if e.GUID.String() != abi.VcekGUID {
						kept.Entries = append(kept.Entries, e)
					}
				}
				ev.Certificates = kept.Marshal()
				return ev
			},
			policy: allowTestRoots, check: CheckSNPChain, want: []error{ErrChain},
		},
		{
			name:   "certificates expired",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: allowTestRoots,
			opts:   Options{Now: func() time.Time { return testNow.AddDate(100, 0, 0) }},
			check:  CheckSNPChain, want: []error{ErrChain},
		},
		{
			name:   "TCB below the policy",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.SNP.MinimumTCB.SNP = 9 },
			check:  CheckSNPTCB, want: []error{ErrTCB},
		},
		{
			name:   "launch TCB below the policy",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.SNP.MinimumLaunchTCB.Microcode = 200 },
			check:  CheckSNPTCB, want: []error{ErrTCB},
		},
		{
			name:   "firmware below the policy",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.SNP.MinimumVersion = "1.56" },
			check:  CheckSNPTCB, want: []error{ErrTCB},
		},
		{
			name:   "guest SVN below the policy",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.SNP.MinimumGuestSVN = 1 },
			check:  CheckSNPGuestSVN, want: []error{ErrTCB},
		},
		{
			name:   "debug policy bit set",
			ev:     withReport(setPolicy(debugBit)),
			policy: allowTestRoots, check: CheckSNPDebug, want: []error{ErrDebug},
		},
		{
			name:   "migration agent policy bit set",
			ev:     withReport(setPolicy(migrateMABit)),
			policy: allowTestRoots, check: CheckSNPPolicy, want: []error{ErrGuestPolicy},
		},
		{
			name:   "SMT forbidden by the policy",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.SNP.AllowSMT = false },
			check:  CheckSNPPolicy, want: []error{ErrGuestPolicy},
		},
		{
			name:   "single socket required",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.SNP.RequireSingleSocket = true },
			check:  CheckSNPPolicy, want: []error{ErrGuestPolicy},
		},
		{
			name:   "guest ABI below the policy",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.SNP.MinimumABI = "1.52" },
			check:  CheckSNPPolicy, want: []error{ErrGuestPolicy},
		},
		{
			name:   "report at VMPL 1",
			ev:     withReport(func(r []byte) { binary.LittleEndian.PutUint32(r[snpVMPLOff:], 1) }),
			policy: allowTestRoots, check: CheckSNPVMPL, want: []error{ErrVMPL},
		},
		{
			name:   "measurement not allowed",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.SNP.Measurements = []string{strings.Repeat("00", 48)} },
			check:  CheckSNPMeasurement, want: []error{ErrMeasurement},
		},
		{
			name:   "host data not the policy's",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.SNP.HostData = strings.Repeat("11", 32) },
			check:  CheckSNPHostData, want: []error{ErrMeasurement},
		},
		{
			name:   "author key required",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.SNP.AuthorKeyDigests = []string{strings.Repeat("22", 48)} },
			check:  CheckSNPIDBlock, want: []error{ErrMeasurement},
		},
		{
			name:   "REPORT_DATA does not bind the key",
			ev:     withInputs(func(in *attestation.Inputs) { in.KeepPublicKey = otherKeyDER }),
			policy: allowTestRoots, check: CheckBinding, want: []error{attestation.ErrBindingMismatch},
		},
		{
			name:   "REPORT_DATA does not bind the workload",
			ev:     withInputs(func(in *attestation.Inputs) { in.WorkloadDigest = otherDigest }),
			policy: allowTestRoots, check: CheckBinding, want: []error{attestation.ErrBindingMismatch},
		},
		{
			name:   "REPORT_DATA does not bind the runtime",
			ev:     withInputs(func(in *attestation.Inputs) { in.RuntimeDigest = otherDigest }),
			policy: allowTestRoots, check: CheckBinding, want: []error{attestation.ErrBindingMismatch},
		},
		{
			name:   "REPORT_DATA does not bind the runtime version",
			ev:     withInputs(func(in *attestation.Inputs) { in.RuntimeVersion = "v9.9.9" }),
			policy: allowTestRoots, check: CheckBinding, want: []error{attestation.ErrBindingMismatch},
		},
		{
			name:   "REPORT_DATA does not bind the nonce",
			ev:     withInputs(func(in *attestation.Inputs) { in.Nonce = []byte("another nonce") }),
			policy: allowTestRoots, check: CheckBinding, want: []error{attestation.ErrBindingMismatch},
		},
		{
			name: "report_data recomputed for other inputs, report unchanged",
			ev: func(t *testing.T) *attestation.Evidence {
				ev := clone(f.snp)
				ev.Inputs.Nonce = nil
				rd, _ := ev.Inputs.ReportData()
				ev.ReportData = rd[:]
				return ev
			},
			policy: allowTestRoots, check: CheckBinding, want: []error{attestation.ErrBindingMismatch},
		},
		{
			name: "tee_version not the report's",
			ev: func(t *testing.T) *attestation.Evidence {
				ev := clone(f.snp)
				ev.TEEVersion = "bl=9 tee=9 snp=99 ucode=255 fw=9.99.99"
				return ev
			},
			policy: allowTestRoots, check: CheckBinding, want: []error{attestation.ErrTEEVersionMismatch},
		},
		{
			name:   "caller nonce differs",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: allowTestRoots, nonce: []byte("not the nonce"),
			check: CheckNonce, want: []error{ErrNonceMismatch},
		},
		{
			name: "caller nonce given, evidence has none",
			ev: func(t *testing.T) *attestation.Evidence {
				return collectSNP(t, func(in *attestation.Inputs) { in.Nonce = nil })
			},
			policy: allowTestRoots, nonce: in.Nonce,
			check: CheckNonce, want: []error{ErrNonceMismatch},
		},
		{
			name: "unknown runtime digest",
			ev: func(t *testing.T) *attestation.Evidence {
				return collectSNP(t, func(in *attestation.Inputs) { in.RuntimeDigest = otherDigest })
			},
			policy: allowTestRoots, check: CheckRuntime, want: []error{ErrUnknownRuntime},
		},
		{
			name: "runtime version not the reference values'",
			ev: func(t *testing.T) *attestation.Evidence {
				return collectSNP(t, func(in *attestation.Inputs) { in.RuntimeVersion = "v0.2.0" })
			},
			policy: allowTestRoots, check: CheckRuntime, want: []error{ErrUnknownRuntime},
		},
		{
			name:   "runtime version not allowed",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.RuntimeVersions = []string{"v0.2.0"} },
			check:  CheckRuntimeVersion, want: []error{ErrRuntimeNotAllowed},
		},
		{
			name:   "workload not allowed",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.WorkloadDigests = []string{otherDigest} },
			check:  CheckWorkload, want: []error{ErrWorkloadNotAllowed},
		},
		{
			name:   "SEV-SNP not among the policy's TEEs",
			ev:     func(t *testing.T) *attestation.Evidence { return f.snp },
			policy: func(p *Policy) { p.AllowTestRoots = true; p.TEEs = []string{attestation.TEETDX} },
			check:  CheckTEE, want: []error{ErrTEENotAllowed},
		},
		{
			name: "report truncated",
			ev: func(t *testing.T) *attestation.Evidence {
				ev := clone(f.snp)
				ev.Report = ev.Report[:100]
				return ev
			},
			policy: allowTestRoots, check: CheckBinding,
		},
		{
			name: "certificate table garbage",
			ev: func(t *testing.T) *attestation.Evidence {
				ev := clone(f.snp)
				ev.Certificates = []byte("not a certificate table")
				return ev
			},
			policy: allowTestRoots, check: CheckSNPReport, want: []error{ErrMalformed},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if opts.Reference == nil {
				opts.Reference = reference(t)
			}
			v := newVerifier(t, policy(tc.policy), opts)
			_, err := v.Verify(context.Background(), tc.ev(t), tc.nonce)
			expectFailure(t, err, tc.check, tc.want...)
			t.Log(err)
		})
	}
}

// collectSNP returns fresh evidence from the fake firmware for inputs
// changed by mutate.
func collectSNP(t *testing.T, mutate func(in *attestation.Inputs)) *attestation.Evidence {
	t.Helper()
	f := getFixture(t)
	in := attestationtest.Inputs()
	mutate(&in)
	rd, err := in.ReportData()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.fake.GetRawQuote(rd)
	if err != nil {
		t.Fatal(err)
	}
	ev := &attestation.Evidence{
		Version: attestation.EvidenceVersion, TEE: attestation.TEESEVSNP, Inputs: in, ReportData: rd[:],
		Report: raw[:abi.ReportSize], Certificates: raw[abi.ReportSize:],
	}
	if ev.TEEVersion, err = attestation.TEEVersionOf(ev.TEE, ev.Report); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestUnknownRuntimeMessage(t *testing.T) {
	f := getFixture(t)
	ref, err := ParseReferenceValues([]byte(`{"runtimes":[]}`), "/usr/share/enarx/reference-values.json")
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, policy(allowTestRoots), Options{Reference: ref})
	_, err = v.Verify(context.Background(), f.snp, nil)
	expectFailure(t, err, CheckRuntime, ErrUnknownRuntime)
	want := "verify: check runtime failed: runtime integrity not established: runtime digest " + attestationtest.Inputs().RuntimeDigest +
		" is not in the reference values /usr/share/enarx/reference-values.json"
	if err.Error() != want {
		t.Errorf("message\n got %q\nwant %q", err, want)
	}
	// No reference values at all: every runtime is unknown.
	v = newVerifier(t, policy(allowTestRoots), Options{})
	_, err = v.Verify(context.Background(), f.snp, nil)
	expectFailure(t, err, CheckRuntime, ErrUnknownRuntime)
}

func TestTestRootsMessage(t *testing.T) {
	f := getFixture(t)
	v := newVerifier(t, policy(nil), Options{Reference: reference(t)})
	_, err := v.Verify(context.Background(), f.snp, nil)
	expectFailure(t, err, CheckSNPChain, ErrChain, ErrTestRoots)
	if !strings.Contains(err.Error(), "evidence is signed by test-only roots; set allow_test_roots = true in /etc/enarx/verify.toml only for development") {
		t.Errorf("message %q", err)
	}
}

func TestNilEvidence(t *testing.T) {
	f := getFixture(t)
	v := newVerifier(t, policy(nil), Options{Reference: reference(t)})
	_, err := v.Verify(context.Background(), f.none, nil)
	expectFailure(t, err, CheckTEE, ErrInsecure)
	if want := "nil evidence is not confidential; set allow_insecure = true in /etc/enarx/verify.toml only for development"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q lacks %q", err, want)
	}

	v = newVerifier(t, policy(func(p *Policy) { p.AllowInsecure = true }), Options{Reference: reference(t)})
	a, err := v.Verify(context.Background(), f.none, attestationtest.Inputs().Nonce)
	if err != nil {
		t.Fatal(err)
	}
	if a.TEE != attestation.TEENone || !a.Insecure || !strings.Contains(a.InsecureReason, "allow_insecure = true") || a.Measurement != "" || a.TEEVersion != "" {
		t.Errorf("assertions %+v", a)
	}
	// Binding is checked for nil evidence too.
	bad := clone(f.none)
	bad.Inputs.WorkloadDigest = "sha256:" + strings.Repeat("cd", 32)
	_, err = v.Verify(context.Background(), bad, nil)
	expectFailure(t, err, CheckBinding, attestation.ErrBindingMismatch)
}

func TestBlobs(t *testing.T) {
	f := getFixture(t)
	v := newVerifier(t, policy(allowTestRoots), Options{Reference: reference(t)})
	blob, err := f.snp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"empty":        nil,
		"truncated":    blob[:len(blob)/2],
		"garbage":      []byte("\x00\xffgarbage{"),
		"not evidence": []byte(`{"hello":"world"}`),
		"trailing":     append(bytes.Clone(blob), []byte(` {}`)...),
		"too large":    bytes.Repeat([]byte(" "), attestation.MaxEvidenceSize+1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.VerifyBlob(context.Background(), data, nil)
			expectFailure(t, err, CheckEvidence, ErrMalformed)
		})
	}
	_, err = v.Verify(context.Background(), nil, nil)
	expectFailure(t, err, CheckEvidence, ErrMalformed)
	bad := clone(f.snp)
	bad.Version = 2
	_, err = v.Verify(context.Background(), bad, nil)
	expectFailure(t, err, CheckEvidence, ErrMalformed, attestation.ErrUnknownVersion)
}

func TestContextCanceled(t *testing.T) {
	f := getFixture(t)
	v := newVerifier(t, policy(allowTestRoots), Options{Reference: reference(t)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, f.snp, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestConcurrentVerify(t *testing.T) {
	f := getFixture(t)
	v := newVerifier(t, policy(allowTestRoots), Options{Reference: reference(t), TDXRoots: f.tdx.Roots()})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := f.snp
			if i%2 == 1 {
				ev = f.tdxEv
			}
			_, err := v.Verify(context.Background(), ev, nil)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestTestARKConstant(t *testing.T) {
	der, err := x509.MarshalPKIXPublicKey(sevtest.DefaultAmdKeys().Ark.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	if got := hex.EncodeToString(sum[:]); got != testARKSPKISHA256 {
		t.Fatalf("go-sev-guest's test ARK SPKI SHA-256 is %s, the constant says %s", got, testARKSPKISHA256)
	}
	f := getFixture(t)
	if !isTestARK(f.fake.Signer.Ark) || isTestARK(f.signerA.Ark) || isTestARK(nil) {
		t.Error("isTestARK")
	}
	for line, r := range trust.DefaultRootCerts {
		if isTestARK(r.ProductCerts.Ark) {
			t.Errorf("AMD's %s ARK taken for the test ARK", line)
		}
	}
}

// The production build of this package links neither go-sev-guest's
// testing package nor the module's fakes.
func TestProductionBuildLinksNoFake(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "testing" || strings.HasSuffix(dep, "/snptest") || strings.HasSuffix(dep, "/tdxtest") || strings.HasSuffix(dep, "/attestationtest") || dep == "github.com/google/go-sev-guest/testing" {
			t.Errorf("production build of verify imports %s", dep)
		}
	}
}

// TDX

// tdxQuoteResigned returns a copy of quote with mutate applied to its TD
// quote body, re-signed with s's attestation key (read from tdxtest's
// unexported field: tdxtest offers no hook for other TD attributes).
func tdxQuoteResigned(t *testing.T, s *tdxtest.Signer, quote []byte, mutate func(body []byte)) []byte {
	t.Helper()
	field := reflect.ValueOf(s).Elem().FieldByName("attestKey")
	if !field.IsValid() {
		t.Fatal("tdxtest.Signer has no attestKey field any more: update this test")
	}
	key := reflect.NewAt(field.Type(), unsafe.Pointer(field.UnsafeAddr())).Elem().Interface().(*ecdsa.PrivateKey)
	const headerSize, bodySize = 0x30, 0x248
	out := bytes.Clone(quote)
	mutate(out[headerSize : headerSize+bodySize])
	digest := sha256.Sum256(out[:headerSize+bodySize])
	r, sig, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sigOff := headerSize + bodySize + 4
	r.FillBytes(out[sigOff : sigOff+32])
	sig.FillBytes(out[sigOff+32 : sigOff+64])
	return out
}

func TestTDX(t *testing.T) {
	f := getFixture(t)
	in := attestationtest.Inputs()
	v := newVerifier(t, policy(nil), Options{Reference: reference(t), TDXRoots: f.tdx.Roots()})
	a, err := v.Verify(context.Background(), f.tdxEv, in.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	if a.TEE != attestation.TEETDX || a.Insecure || a.Measurement != strings.Repeat("d7", 48) ||
		a.TEEVersion != "tee_tcb_svn=03000400000000000000000000000000" || a.RuntimeVersion != "v0.1.0" {
		t.Errorf("assertions %+v", a)
	}

	withQuote := func(mutate func(q []byte)) func(t *testing.T) *attestation.Evidence {
		return func(t *testing.T) *attestation.Evidence {
			ev := clone(f.tdxEv)
			mutate(ev.Report)
			return ev
		}
	}
	tests := []struct {
		name   string
		ev     func(t *testing.T) *attestation.Evidence
		policy func(*Policy)
		roots  *x509.CertPool
		check  string
		want   []error
	}{
		{
			name:  "signature byte flipped",
			ev:    withQuote(func(q []byte) { q[0x30+0x248+4] ^= 1 }),
			check: CheckTDXSignature, want: []error{ErrSignature},
		},
		{
			name:  "MRTD byte flipped",
			ev:    withQuote(func(q []byte) { q[0x30+0x88] ^= 1 }),
			check: CheckTDXSignature, want: []error{ErrSignature},
		},
		{
			name:  "foreign root",
			ev:    func(t *testing.T) *attestation.Evidence { return f.tdxEv },
			roots: f.otherTDX.Roots(),
			check: CheckTDXChain, want: []error{ErrChain},
		},
		{
			name:  "Intel's root rejects the test chain",
			ev:    func(t *testing.T) *attestation.Evidence { return f.tdxEv },
			roots: intelRoots(),
			check: CheckTDXChain, want: []error{ErrChain},
		},
		{
			name: "debug attribute",
			ev: func(t *testing.T) *attestation.Evidence {
				ev := clone(f.tdxEv)
				ev.Report = tdxQuoteResigned(t, f.tdx, ev.Report, func(body []byte) { body[0x78] |= 1 })
				return ev
			},
			check: CheckTDXDebug, want: []error{ErrDebug},
		},
		{
			name: "unknown attribute",
			ev: func(t *testing.T) *attestation.Evidence {
				ev := clone(f.tdxEv)
				ev.Report = tdxQuoteResigned(t, f.tdx, ev.Report, func(body []byte) { body[0x78+1] |= 1 })
				return ev
			},
			check: CheckTDXAttributes, want: []error{ErrGuestPolicy},
		},
		{
			name:   "TEE_TCB_SVN below the policy",
			ev:     func(t *testing.T) *attestation.Evidence { return f.tdxEv },
			policy: func(p *Policy) { p.TDX.MinimumTEETCBSVN = "04000000000000000000000000000000" },
			check:  CheckTDXTCB, want: []error{ErrTCB},
		},
		{
			name:   "QE SVN below the policy",
			ev:     func(t *testing.T) *attestation.Evidence { return f.tdxEv },
			policy: func(p *Policy) { p.TDX.MinimumQESVN = 1 },
			check:  CheckTDXTCB, want: []error{ErrTCB},
		},
		{
			name:   "MRTD not allowed",
			ev:     func(t *testing.T) *attestation.Evidence { return f.tdxEv },
			policy: func(p *Policy) { p.TDX.MRTD = []string{strings.Repeat("00", 48)} },
			check:  CheckTDXMeasurement, want: []error{ErrMeasurement},
		},
		{
			name: "REPORT_DATA does not bind the workload",
			ev: func(t *testing.T) *attestation.Evidence {
				ev := clone(f.tdxEv)
				ev.Inputs.WorkloadDigest = "sha256:" + strings.Repeat("ef", 32)
				return ev
			},
			check: CheckBinding, want: []error{attestation.ErrBindingMismatch},
		},
		{
			name:   "TDX not among the policy's TEEs",
			ev:     func(t *testing.T) *attestation.Evidence { return f.tdxEv },
			policy: func(p *Policy) { p.TEEs = []string{attestation.TEESEVSNP} },
			check:  CheckTEE, want: []error{ErrTEENotAllowed},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			roots := tc.roots
			if roots == nil {
				roots = f.tdx.Roots()
			}
			v := newVerifier(t, policy(tc.policy), Options{Reference: reference(t), TDXRoots: roots})
			_, err := v.Verify(context.Background(), tc.ev(t), nil)
			expectFailure(t, err, tc.check, tc.want...)
			t.Log(err)
		})
	}
}

func TestDebugAllowedByPolicy(t *testing.T) {
	f := getFixture(t)
	// SEV-SNP: a debuggable guest passes with allow_debug.
	r := bytes.Clone(f.snp.Report)
	binary.LittleEndian.PutUint64(r[snpPolicyOff:], binary.LittleEndian.Uint64(r[snpPolicyOff:])|1<<19)
	ev := clone(f.snp)
	ev.Report = resign(t, f.fake.Signer, r)
	v := newVerifier(t, policy(func(p *Policy) { p.AllowTestRoots = true; p.SNP.AllowDebug = true }), Options{Reference: reference(t)})
	if _, err := v.Verify(context.Background(), ev, nil); err != nil {
		t.Errorf("SEV-SNP with allow_debug: %v", err)
	}
	// TDX likewise.
	tev := clone(f.tdxEv)
	tev.Report = tdxQuoteResigned(t, f.tdx, tev.Report, func(body []byte) { body[0x78] |= 1 })
	v = newVerifier(t, policy(func(p *Policy) { p.TDX.AllowDebug = true }), Options{Reference: reference(t), TDXRoots: f.tdx.Roots()})
	if _, err := v.Verify(context.Background(), tev, nil); err != nil {
		t.Errorf("TDX with allow_debug: %v", err)
	}
}

// withoutTableEntries returns ev whose certificate table lacks the GUIDs.
func withoutTableEntries(t *testing.T, ev *attestation.Evidence, guids ...string) *attestation.Evidence {
	t.Helper()
	out := clone(ev)
	var table, kept abi.CertTable
	if err := table.Unmarshal(out.Certificates); err != nil {
		t.Fatal(err)
	}
	for _, e := range table.Entries {
		drop := false
		for _, g := range guids {
			drop = drop || e.GUID.String() == g
		}
		if !drop {
			kept.Entries = append(kept.Entries, e)
		}
	}
	out.Certificates = kept.Marshal()
	return out
}

// The test ARK given as Options.SNPRoots (the host supplied only the VCEK)
// is trusted only with allow_test_roots, and then reported as Insecure.
func TestTestRootsThroughOptions(t *testing.T) {
	f := getFixture(t)
	ev := withoutTableEntries(t, f.snp, abi.ArkGUID, abi.AskGUID)
	v := newVerifier(t, policy(nil), Options{Reference: reference(t), SNPRoots: f.fake.Roots()})
	_, err := v.Verify(context.Background(), ev, nil)
	expectFailure(t, err, CheckSNPChain, ErrChain, ErrTestRoots)

	v = newVerifier(t, policy(allowTestRoots), Options{Reference: reference(t), SNPRoots: f.fake.Roots()})
	a, err := v.Verify(context.Background(), ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Insecure {
		t.Errorf("test roots from Options accepted as secure: %+v", a)
	}
	// Without the ARK anywhere but AMD's roots, it is a plain chain failure.
	v = newVerifier(t, policy(allowTestRoots), Options{Reference: reference(t)})
	_, err = v.Verify(context.Background(), ev, nil)
	expectFailure(t, err, CheckSNPChain, ErrChain)
	if errors.Is(err, ErrTestRoots) {
		t.Errorf("%v blames test roots", err)
	}
	// A foreign chain whose table names the test ARK is not blamed on it.
	foreign := resignedBy(f.signerB, f.snp, f.snp.Report)
	var table abi.CertTable
	table.Unmarshal(foreign.Certificates)
	for i, e := range table.Entries {
		if e.GUID.String() == abi.ArkGUID {
			table.Entries[i].RawCert = f.fake.Signer.Ark.Raw
		}
	}
	foreign.Certificates = table.Marshal()
	v = newVerifier(t, policy(nil), Options{Reference: reference(t)})
	_, err = v.Verify(context.Background(), foreign, nil)
	expectFailure(t, err, CheckSNPChain, ErrChain)
	if errors.Is(err, ErrTestRoots) {
		t.Errorf("%v blames test roots", err)
	}
}

// TestRuntimeMeasurement: the runtime digest is what a guest says of
// itself; the verifier establishes the runtime's integrity only when the
// hardware's launch measurement is one the reference values list for that
// runtime. An attacker's guest (genuinely signed, a measurement of its
// own, the victim's runtime digest copied into REPORT_DATA) is refused
// under the default policy, with or without measurements in the reference
// values; allow_unmeasured_runtime accepts it as insecure; the right
// reference measurement accepts it.
func TestRuntimeMeasurement(t *testing.T) {
	f := getFixture(t)
	in := attestationtest.Inputs()
	report := bytes.Clone(f.snp.Report)
	copy(report[snpMeasurementOff:snpMeasurementOff+48], bytes.Repeat([]byte{0xaa}, 48))
	attacker := resignedBy(f.signerA, f.snp, report)
	opts := Options{Reference: reference(t), SNPRoots: rootsOf(f.signerA)}

	_, err := newVerifier(t, policy(nil), opts).Verify(context.Background(), attacker, nil)
	expectFailure(t, err, CheckRuntimeMeasurement, ErrUnmeasuredRuntime)
	if !strings.Contains(err.Error(), strings.Repeat("aa", 48)) || !strings.Contains(err.Error(), in.RuntimeDigest) {
		t.Errorf("%v does not name the measurement and the runtime", err)
	}
	bare := &ReferenceValues{Runtimes: reference(t).Runtimes}
	_, err = newVerifier(t, policy(nil), Options{Reference: bare, SNPRoots: rootsOf(f.signerA)}).Verify(context.Background(), f.snpA, nil)
	expectFailure(t, err, CheckRuntimeMeasurement, ErrUnmeasuredRuntime)

	a, err := newVerifier(t, policy(func(p *Policy) { p.AllowUnmeasuredRuntime = true }), opts).Verify(context.Background(), attacker, nil)
	if err != nil || !a.Insecure || !strings.Contains(a.InsecureReason, "allow_unmeasured_runtime = true") {
		t.Errorf("allow_unmeasured_runtime: %+v, %v; want accepted as insecure", a, err)
	}

	// The measurement listed for another runtime does not do.
	other := reference(t)
	if err := other.AddMeasurement(Measurement{TEE: attestation.TEESEVSNP, Measurement: strings.Repeat("aa", 48), Runtimes: []string{"sha256:" + strings.Repeat("0", 64)}}); err != nil {
		t.Fatal(err)
	}
	_, err = newVerifier(t, policy(nil), Options{Reference: other, SNPRoots: rootsOf(f.signerA)}).Verify(context.Background(), attacker, nil)
	expectFailure(t, err, CheckRuntimeMeasurement, ErrUnmeasuredRuntime)
	if err := other.AddMeasurement(Measurement{TEE: attestation.TEESEVSNP, Measurement: strings.Repeat("aa", 48), Runtimes: []string{in.RuntimeDigest}}); err != nil {
		t.Fatal(err)
	}
	if a, err := newVerifier(t, policy(nil), Options{Reference: other, SNPRoots: rootsOf(f.signerA)}).Verify(context.Background(), attacker, nil); err != nil || a.Insecure {
		t.Errorf("with its reference measurement: %+v, %v; want accepted", a, err)
	}

	// TDX: expected RTMRs must match where listed.
	rtmrs := reference(t)
	if err := rtmrs.AddMeasurement(Measurement{TEE: attestation.TEETDX, Measurement: hex.EncodeToString(f.tdx.MrTd[:]), RTMRs: []string{"", strings.Repeat("bb", 48)}, Runtimes: []string{in.RuntimeDigest}}); err != nil {
		t.Fatal(err)
	}
	_, err = newVerifier(t, policy(nil), Options{Reference: rtmrs, TDXRoots: f.tdx.Roots()}).Verify(context.Background(), f.tdxEv, nil)
	expectFailure(t, err, CheckRuntimeMeasurement, ErrUnmeasuredRuntime)
}

// TestReferenceMeasurements: the JSON form round-trips, and malformed
// measurements are refused by name.
func TestReferenceMeasurements(t *testing.T) {
	r := reference(t)
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseReferenceValues(b, "ref.json")
	if err != nil || len(back.Measurements) != 2 {
		t.Fatalf("round trip: %v, %+v", err, back)
	}
	for _, c := range []struct{ m, want string }{
		{`{"tee":"sgx","measurement":"` + strings.Repeat("a", 96) + `","runtimes":["sha256:` + strings.Repeat("0", 64) + `"]}`, `tee "sgx"`},
		{`{"tee":"sev-snp","measurement":"abc","runtimes":["sha256:` + strings.Repeat("0", 64) + `"]}`, "96 lowercase hex"},
		{`{"tee":"sev-snp","measurement":"` + strings.Repeat("a", 96) + `","runtimes":[]}`, "runtimes is empty"},
		{`{"tee":"sev-snp","measurement":"` + strings.Repeat("a", 96) + `","rtmrs":["` + strings.Repeat("a", 96) + `"],"runtimes":["sha256:` + strings.Repeat("0", 64) + `"]}`, "for tee \"tdx\" only"},
	} {
		_, err := ParseReferenceValues([]byte(`{"runtimes":[],"measurements":[`+c.m+`]}`), "ref.json")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "measurements[0]") {
			t.Errorf("%s: %v, want an error containing %q", c.m, err, c.want)
		}
	}
}
