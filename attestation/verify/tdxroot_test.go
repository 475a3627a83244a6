package verify

import (
	"testing"
	"time"

	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
	tdxverify "github.com/google/go-tdx-guest/verify"
)

// The embedded root is Intel's: a quote recorded on real TDX hardware
// (go-tdx-guest's test data) verifies with it, at a fixed time within the
// recorded PCK chain's validity.
func TestIntelRootVerifiesARealQuote(t *testing.T) {
	q, err := tdxabi.QuoteToProto(tdxdata.RawQuote)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := tdxverify.TdxQuote(q, &tdxverify.Options{TrustedRoots: intelRoots(), Now: at}); err != nil {
		t.Fatalf("a real quote does not verify with the embedded Intel root: %v", err)
	}
	if n := len(intelRoots().Subjects()); n != 1 { //nolint:staticcheck // counting certificates only
		t.Errorf("%d certificates in the Intel pool", n)
	}
}
