package verify

import (
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevvalidate "github.com/google/go-sev-guest/validate"
	sevverify "github.com/google/go-sev-guest/verify"
)

// BenchmarkVerifySNPPeer is BenchmarkVerifySNP's peer, measured in the same
// run: go-sev-guest alone (parse report and certificate table, verify, and
// validate with a debug-forbidding policy) on the same evidence, with none of
// our checks (structure, binding, reference values). The ratio of the two
// is what the verifier adds to the library.
func BenchmarkVerifySNPPeer(b *testing.B) {
	fx := getFixture(b)
	raw := append(append([]byte(nil), fx.snpA.Report...), fx.snpA.Certificates...)
	opts := &sevverify.Options{TrustedRoots: rootsOf(fx.signerA), Now: testNow.Add(time.Minute), Product: fx.signerA.Product}
	vopts := &sevvalidate.Options{GuestPolicy: abi.SnpPolicy{ABIMajor: 1, ABIMinor: 51, SMT: true}, ReportData: fx.snpA.ReportData}
	start := time.Now()
	n := 0
	for b.Loop() {
		att, err := abi.ReportCertsToProto(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := sevverify.SnpAttestation(att, opts); err != nil {
			b.Fatal(err)
		}
		if err := sevvalidate.SnpAttestation(att, vopts); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "verifications/s")
}
