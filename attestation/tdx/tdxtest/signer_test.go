package tdxtest_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-configfs-tsm/report"
	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"

	"github.com/enarx/containerd-shim-enarx/attestation/tdx/tdxtest"
)

func TestQuoteVerifiesWithTestRoots(t *testing.T) {
	now := time.Now()
	s, err := tdxtest.NewSigner(now)
	if err != nil {
		t.Fatal(err)
	}
	var rd [64]byte
	copy(rd[:], "enarx tdxtest report data")
	raw, err := s.Quote(rd)
	if err != nil {
		t.Fatal(err)
	}
	q, err := abi.QuoteToProto(raw)
	if err != nil {
		t.Fatalf("QuoteToProto: %v", err)
	}
	if got := q.(*pb.QuoteV4).GetTdQuoteBody().GetReportData(); !bytes.Equal(got, rd[:]) {
		t.Fatalf("REPORT_DATA = %x, want %x", got, rd)
	}
	opts := &verify.Options{TrustedRoots: s.Roots(), Now: now}
	if err := verify.RawTdxQuote(raw, opts); err != nil {
		t.Fatalf("verify with test roots: %v", err)
	}
	// Intel's embedded root must not accept the test chain.
	if err := verify.RawTdxQuote(raw, &verify.Options{Now: now}); err == nil {
		t.Fatal("verify with Intel's root accepted a test quote")
	}
	// A flipped REPORT_DATA byte breaks the quote signature.
	bad := bytes.Clone(raw)
	bad[0x30+0x208] ^= 1
	if err := verify.RawTdxQuote(bad, &verify.Options{TrustedRoots: s.Roots(), Now: now}); err == nil {
		t.Fatal("a quote with a flipped REPORT_DATA byte verified")
	}
}

func TestConfigfs(t *testing.T) {
	s, err := tdxtest.NewSigner(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var rd [64]byte
	rd[0] = 7
	resp, err := report.Get(s.Configfs(), &report.Request{InBlob: rd[:]})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Provider != "tdx_guest\n" {
		t.Errorf("provider %q", resp.Provider)
	}
	q, err := abi.QuoteToProto(resp.OutBlob)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.(*pb.QuoteV4).GetTdQuoteBody().GetReportData(); !bytes.Equal(got, rd[:]) {
		t.Fatalf("REPORT_DATA = %x", got)
	}
}
