package tdx

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	tdxclient "github.com/google/go-tdx-guest/client"
	"github.com/google/go-tdx-guest/verify"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/attestationtest"
	"github.com/enarx/containerd-shim-enarx/attestation/tdx/tdxtest"
)

func signer(t *testing.T) *tdxtest.Signer {
	t.Helper()
	s, err := tdxtest.NewSigner(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The configfs path of a real node, with go-configfs-tsm's fake configfs
// answering with test-signed quotes.
func TestEvidenceThroughConfigfs(t *testing.T) {
	s := signer(t)
	p, err := New(&ConfigfsQuoteProvider{Client: s.Configfs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := attestation.Collect(context.Background(), p, attestationtest.Inputs())
	if err != nil {
		t.Fatal(err)
	}
	if e.TEE != attestation.TEETDX || e.Certificates != nil {
		t.Fatalf("tee %q certificates %d bytes", e.TEE, len(e.Certificates))
	}
	if e.TEEVersion != "tee_tcb_svn=03000400000000000000000000000000" {
		t.Errorf("tee_version %q", e.TEEVersion)
	}
	if err := e.CheckBinding(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := verify.RawTdxQuote(e.Report, &verify.Options{TrustedRoots: s.Roots(), Now: now}); err != nil {
		t.Fatalf("verify with the test root: %v", err)
	}
	if err := verify.RawTdxQuote(e.Report, &verify.Options{Now: now}); err == nil {
		t.Fatal("Intel's root accepted a test quote")
	}
	bad := bytes.Clone(e.Report)
	bad[len(bad)/2] ^= 1
	if err := verify.RawTdxQuote(bad, &verify.Options{TrustedRoots: s.Roots(), Now: now}); err == nil {
		t.Fatal("a quote with a flipped byte verified")
	}
}

func TestSignerAsQuoteProvider(t *testing.T) {
	p, err := New(signer(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := attestation.Collect(context.Background(), p, attestationtest.Inputs())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CheckBinding(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigfsRefusesOtherProviders(t *testing.T) {
	p, _ := New(&ConfigfsQuoteProvider{Client: signer(t).ConfigfsWithProvider("sev_guest\n")}, nil)
	_, err := p.Attest(context.Background(), [64]byte{1})
	if err == nil || !strings.Contains(err.Error(), `provider is "sev_guest"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(nil, nil); err == nil {
		t.Error("New(nil, nil): no error")
	}
	p, _ := New(&ConfigfsQuoteProvider{}, nil)
	if _, err := p.Attest(context.Background(), [64]byte{}); err == nil || !strings.Contains(err.Error(), "/sys/kernel/config/tsm/report") {
		t.Errorf("no client: %v", err)
	}
	// On these machines there is no TDX: Open says why.
	if attestation.Detect().Backend(attestation.TEETDX).Available {
		t.Skip("this machine is a TDX guest")
	}
	if _, err := Open(); err == nil || !strings.Contains(err.Error(), "not a TDX guest") {
		t.Errorf("Open: %v", err)
	}
}

type garbage struct{}

func (garbage) IsSupported() error                    { return nil }
func (garbage) GetRawQuote([64]byte) ([]uint8, error) { return []byte{4, 0, 2, 0}, nil }

type slow struct{ release chan struct{} }

func (slow) IsSupported() error { return nil }
func (s slow) GetRawQuote([64]byte) ([]uint8, error) {
	<-s.release
	return nil, errors.New("released")
}

func TestBadQuotesAndContext(t *testing.T) {
	p, _ := New(garbage{}, nil)
	if _, err := p.Attest(context.Background(), [64]byte{}); err == nil || !strings.Contains(err.Error(), "malformed TDX quote") {
		t.Errorf("garbage quote: %v", err)
	}
	s := slow{make(chan struct{})}
	defer close(s.release)
	p, _ = New(s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Attest(ctx, [64]byte{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow quote: %v", err)
	}
}

// go-tdx-guest's own providers and the test signer fit QuoteProvider.
var (
	_ QuoteProvider = (*tdxclient.LinuxConfigFsQuoteProvider)(nil)
	_ QuoteProvider = (*tdxtest.Signer)(nil)
	_ QuoteProvider = (*ConfigfsQuoteProvider)(nil)
)
