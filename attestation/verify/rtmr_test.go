package verify

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/fakertmr"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/attestationtest"
	"github.com/enarx/containerd-shim-enarx/attestation/tdx"
	"github.com/enarx/containerd-shim-enarx/attestation/tdx/tdxtest"
)

// TestRuntimeRTMR: a TDX node image that measures its runtimes into RTMR3
// at run time (go-configfs-tsm's fake RTMR behind the Keep's Measurer, the
// quotes stating that register) is held to its launch measurement and the
// event log: accepted with a reference measurement marked runtime_rtmr,
// refused without the mark, with a log that does not replay to the quote,
// and when the log shows a runtime the reference values do not know.
func TestRuntimeRTMR(t *testing.T) {
	ctx := context.Background()
	in := attestationtest.Inputs()
	signer, err := tdxtest.NewSigner(testNow)
	if err != nil {
		t.Fatal(err)
	}
	signer.RTMRs = fakertmr.CreateRtmrSubsystem(t.TempDir())
	m := &tdx.Measurer{Client: signer.RTMRs, Log: filepath.Join(t.TempDir(), "rtmr3.log")}
	p, err := tdx.New(signer, m)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := attestation.Collect(ctx, p, in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []attestation.RuntimeEvent{attestation.RuntimeEventFor(in.RuntimeDigest)}; len(ev.EventLog) != 1 || ev.EventLog[0] != want[0] {
		t.Fatalf("event log %+v, want %+v", ev.EventLog, want)
	}

	mrtd := hex.EncodeToString(signer.MrTd[:])
	ref := func(mark bool) *ReferenceValues {
		r := &ReferenceValues{Runtimes: reference(t).Runtimes}
		meas := Measurement{Name: "image measuring at run time", TEE: attestation.TEETDX, Measurement: mrtd}
		if mark {
			meas.RuntimeRTMR = attestation.RuntimeRTMR
		} else {
			meas.Runtimes = []string{"sha256:" + strings.Repeat("0", 64)}
		}
		if err := r.AddMeasurement(meas); err != nil {
			t.Fatal(err)
		}
		return r
	}
	verifier := func(r *ReferenceValues) *Verifier {
		return newVerifier(t, policy(nil), Options{Reference: r, TDXRoots: signer.Roots()})
	}

	a, err := verifier(ref(true)).Verify(ctx, ev, in.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	if a.Insecure || a.MeasuredBy != "launch measurement and RTMR3 event log" {
		t.Errorf("assertions %+v, want held to the launch measurement and RTMR3", a)
	}

	_, err = verifier(ref(false)).Verify(ctx, ev, in.Nonce)
	expectFailure(t, err, CheckRuntimeMeasurement, ErrUnmeasuredRuntime)

	// A log that claims another runtime does not replay to the quote.
	forged := clone(ev)
	forged.EventLog = []attestation.RuntimeEvent{attestation.RuntimeEventFor("sha256:" + strings.Repeat("1", 64))}
	_, err = verifier(ref(true)).Verify(ctx, forged, in.Nonce)
	expectFailure(t, err, CheckBinding, attestation.ErrEventLogMismatch)
	// Nor does a log with its last event dropped.
	dropped := clone(ev)
	dropped.EventLog = nil
	if _, err := verifier(ref(true)).Verify(ctx, dropped, in.Nonce); err == nil {
		t.Error("evidence without its event log verified against a runtime_rtmr reference with no runtimes")
	}

	// Another runtime ran on the node: every Keep's evidence shows it, and
	// a runtime unknown to the reference values is refused.
	other := in
	other.RuntimeDigest = "sha256:" + strings.Repeat("2", 64)
	if _, err := m.MeasureRuntime(ctx, other.RuntimeDigest); err != nil {
		t.Fatal(err)
	}
	ev2, err := attestation.Collect(ctx, p, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev2.EventLog) != 2 {
		t.Fatalf("event log %+v, want two runtimes", ev2.EventLog)
	}
	_, err = verifier(ref(true)).Verify(ctx, ev2, in.Nonce)
	expectFailure(t, err, CheckRuntimeMeasurement, ErrUnmeasuredRuntime)
	if !strings.Contains(err.Error(), other.RuntimeDigest) {
		t.Errorf("%v does not name the unknown runtime", err)
	}
	known := ref(true)
	if err := known.Add("containerd-shim-enarx-v1", "v0.1.1", other.RuntimeDigest); err != nil {
		t.Fatal(err)
	}
	if a, err := verifier(known).Verify(ctx, ev2, in.Nonce); err != nil || a.Insecure {
		t.Errorf("both runtimes known: %+v, %v; want accepted", a, err)
	}
}

// TestRuntimeRTMRReference: ParseMeasurement's ":rtmr3", and what a
// runtime_rtmr reference may not say.
func TestRuntimeRTMRReference(t *testing.T) {
	mrtd := strings.Repeat("d7", 48)
	m, err := ParseMeasurement("tdx:"+mrtd+"::rtmr3", nil)
	if err != nil || m.RuntimeRTMR != 3 || len(m.RTMRs) != 0 {
		t.Errorf("tdx:MRTD::rtmr3: %+v, %v", m, err)
	}
	m, err = ParseMeasurement("tdx:"+mrtd+":"+strings.Repeat("aa", 48)+",,,:rtmr3", nil)
	if err != nil || m.RuntimeRTMR != 3 || len(m.RTMRs) != 4 || m.RTMRs[0] != strings.Repeat("aa", 48) {
		t.Errorf("tdx:MRTD:RTMR0,,,:rtmr3: %+v, %v", m, err)
	}
	for _, c := range []struct{ s, want string }{
		{"tdx:" + mrtd + "::rtmr2", "fourth part is rtmr3"},
		{"sev-snp:" + mrtd + "::rtmr3", `for tee "tdx" only`},
		{"tdx:" + mrtd + ":,,," + strings.Repeat("aa", 48) + ":rtmr3", `leave it ""`},
		{"tdx:" + mrtd, "runtimes is empty"},
	} {
		if _, err := ParseMeasurement(c.s, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.s, err, c.want)
		}
	}
}
