package verify

import (
	"context"
	"testing"
	"time"
)

// FuzzVerifyBlob feeds arbitrary blobs, starting from valid SEV-SNP, TDX
// and nil evidence, to a verifier that accepts all three: it must never
// panic, and must return either assertions or a *CheckError.
func FuzzVerifyBlob(f *testing.F) {
	fx := getFixture(f)
	for _, ev := range []any{fx.snp, fx.snpA, fx.tdxEv, fx.none} {
		b, err := ev.(interface{ Marshal() ([]byte, error) }).Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"tee":"sev-snp"}`))
	p := DefaultPolicy()
	p.AllowInsecure, p.AllowTestRoots = true, true
	v, err := New(Options{
		Policy:    p,
		Reference: reference(f),
		Now:       func() time.Time { return testNow.Add(time.Minute) },
		SNPRoots:  rootsOf(fx.signerA),
		TDXRoots:  fx.tdx.Roots(),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := v.VerifyBlob(context.Background(), data, nil)
		switch {
		case err == nil && a == nil:
			t.Fatal("no assertions and no error")
		case err != nil && a != nil:
			t.Fatal("assertions and an error")
		case err != nil:
			if _, ok := err.(*CheckError); !ok {
				t.Fatalf("error %v (%T) is not a *CheckError", err, err)
			}
		}
	})
}

// BenchmarkVerifySNP verifies one SEV-SNP evidence blob, chained to a
// private root as production evidence is to AMD's (one verify pass, no
// test-root fallback): parse, binding, VCEK chain (RSA-PSS), report
// signature (ECDSA P-384), policy, go-sev-guest validate, reference values.
func BenchmarkVerifySNP(b *testing.B) {
	fx := getFixture(b)
	blob, err := fx.snpA.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	v, err := New(Options{
		Policy:    DefaultPolicy(),
		Reference: reference(b),
		Now:       func() time.Time { return testNow.Add(time.Minute) },
		SNPRoots:  rootsOf(fx.signerA),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	n := 0
	for b.Loop() {
		if _, err := v.VerifyBlob(ctx, blob, nil); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "verifications/s")
}
