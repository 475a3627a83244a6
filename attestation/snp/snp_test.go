package snp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/attestationtest"
	"github.com/enarx/containerd-shim-enarx/attestation/snp/snptest"
)

func attestationOf(t *testing.T, e *attestation.Evidence) *spb.Attestation {
	t.Helper()
	a, err := abi.ReportCertsToProto(append(bytes.Clone(e.Report), e.Certificates...))
	if err != nil {
		t.Fatalf("ReportCertsToProto: %v", err)
	}
	return a
}

func TestEvidenceFromFakeFirmwareVerifiesOffline(t *testing.T) {
	now := time.Now()
	fake, err := snptest.New(now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(fake)
	if err != nil {
		t.Fatal(err)
	}
	e, err := attestation.Collect(context.Background(), p, attestationtest.Inputs())
	if err != nil {
		t.Fatal(err)
	}
	if e.TEE != attestation.TEESEVSNP || len(e.Report) != abi.ReportSize || len(e.Certificates) == 0 {
		t.Fatalf("tee %q, report %d bytes, certificates %d bytes", e.TEE, len(e.Report), len(e.Certificates))
	}
	if e.TEEVersion != "bl=3 tee=0 snp=8 ucode=115 fw=1.55.21" {
		t.Errorf("tee_version %q", e.TEEVersion)
	}
	if err := e.CheckBinding(); err != nil {
		t.Fatal(err)
	}

	// The certificate table alone must carry the chain: no fetching.
	opts, err := fake.VerifyOptions(now)
	if err != nil {
		t.Fatal(err)
	}
	opts.DisableCertFetching = true
	if err := verify.SnpAttestation(attestationOf(t, e), opts); err != nil {
		t.Fatalf("verify with the test roots: %v", err)
	}

	t.Run("flipped report byte", func(t *testing.T) {
		bad := *e
		bad.Report = bytes.Clone(e.Report)
		bad.Report[0x50] ^= 1 // REPORT_DATA
		if err := verify.SnpAttestation(attestationOf(t, &bad), opts); err == nil {
			t.Fatal("a report with a flipped byte verified")
		}
	})
	t.Run("flipped VCEK byte", func(t *testing.T) {
		bad := *e
		bad.Certificates = bytes.Clone(e.Certificates)
		vcek := fake.Signer.Vcek.Raw
		i := bytes.Index(bad.Certificates, vcek)
		if i < 0 {
			t.Fatal("VCEK not in the certificate table")
		}
		bad.Certificates[i+len(vcek)-10] ^= 1 // inside the signature
		if err := verify.SnpAttestation(attestationOf(t, &bad), opts); err == nil {
			t.Fatal("a report with a damaged VCEK verified")
		}
	})
	t.Run("AMD roots reject test evidence", func(t *testing.T) {
		if err := verify.SnpAttestation(attestationOf(t, e), &verify.Options{DisableCertFetching: true, Now: now}); err == nil {
			t.Fatal("AMD's embedded roots accepted the test chain")
		}
	})
}

// go-sev-guest's stock fake (TcQuoteProvider, DefaultTestOnlyCertChain)
// plugs into New as it is.
func TestGoSevGuestTcQuoteProvider(t *testing.T) {
	in := attestationtest.Inputs()
	rd, err := in.ReportData()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	signer, err := sevtest.DefaultTestOnlyCertChain(sevtest.GetProductName(), now)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sevtest.TcQuoteProvider([]sevtest.TestCase{{Input: rd, Output: sevtest.TestRawReport(rd)}},
		&sevtest.DeviceOptions{Signer: signer, Now: now, Product: abi.DefaultSevProduct()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(qp)
	if err != nil {
		t.Fatal(err)
	}
	e, err := attestation.Collect(context.Background(), p, in)
	if err != nil {
		t.Fatal(err)
	}
	roots := map[string][]*trust.AMDRootCerts{"Milan": {{Product: "Milan", ProductLine: "Milan",
		ProductCerts: &trust.ProductCerts{Ark: signer.Ark, Ask: signer.Ask, Asvk: signer.Asvk}}}}
	if err := verify.SnpAttestation(attestationOf(t, e), &verify.Options{TrustedRoots: roots, DisableCertFetching: true, Now: now}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// A different nonce is a different REPORT_DATA, which this fake was not
	// programmed for: the error comes through.
	in.Nonce = []byte("other")
	if _, err := attestation.Collect(context.Background(), p, in); err == nil || !strings.Contains(err.Error(), "no response") {
		t.Errorf("unprogrammed REPORT_DATA: %v", err)
	}
}

func TestOpenOnANodeWithoutSNP(t *testing.T) {
	_, err := open(attestation.DetectAt(t.TempDir()))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"/dev/sev-guest", "/sys/kernel/config/tsm/report", "not an SEV-SNP guest"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %q", err, want)
		}
	}
	if _, err := os.Stat(attestation.SEVGuestDevice); err == nil {
		t.Skip("this machine has /dev/sev-guest")
	}
	if _, err := Open(); err == nil {
		t.Error("Open on a machine without SEV-SNP: no error")
	}
}

// Up to the device boundary: the real providers are chosen, and fail where
// the device or configfs would answer.
func TestOpenChoosesTheRealProvider(t *testing.T) {
	for _, c := range []struct {
		files map[string]string
		want  any
	}{
		{map[string]string{"dev/sev-guest": ""}, "snp.DeviceQuoteProvider"},
		{map[string]string{"sys/kernel/config/tsm/report/e/provider": "sev_guest\n"}, "*client.LinuxConfigFsQuoteProvider"},
	} {
		root := t.TempDir()
		for name, content := range c.files {
			full := filepath.Join(root, name)
			os.MkdirAll(filepath.Dir(full), 0o755)
			os.WriteFile(full, []byte(content), 0o644)
		}
		p, err := open(attestation.DetectAt(root))
		if c.want == "snp.DeviceQuoteProvider" {
			// The device is opened at once (a confined Keep keeps it):
			// without one, open fails, naming it.
			if _, serr := os.Stat(attestation.SEVGuestDevice); serr != nil {
				if err == nil || !strings.Contains(err.Error(), attestation.SEVGuestDevice) {
					t.Errorf("open without %s: %v, want an error naming it", attestation.SEVGuestDevice, err)
				}
				continue
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := typeName(p.qp); got != c.want {
			t.Errorf("provider %s, want %s", got, c.want)
		}
		if _, err := os.Stat(attestation.SEVGuestDevice); err == nil {
			continue // a real SEV-SNP guest would answer
		}
		var rd [64]byte
		if _, err := p.Attest(context.Background(), rd); err == nil {
			t.Errorf("%s: Attest without a device succeeded", c.want)
		} else {
			t.Logf("%s: %v", c.want, err)
		}
	}
}

type blocking struct{ release chan struct{} }

func (blocking) IsSupported() bool { return true }
func (b blocking) GetRawQuote([64]byte) ([]byte, error) {
	<-b.release
	return nil, errors.New("released")
}
func (blocking) Product() *spb.SevProduct { return abi.DefaultSevProduct() }

func TestAttestHonoursContext(t *testing.T) {
	b := blocking{make(chan struct{})}
	defer close(b.release)
	p, _ := New(b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Attest(ctx, [64]byte{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestNewAndSplitErrors(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Error("New(nil): no error")
	}
	if _, err := split(make([]byte, 100)); err == nil || !strings.Contains(err.Error(), "100 bytes") {
		t.Errorf("short report: %v", err)
	}
	raw := sevtest.TestRawReport([64]byte{})
	if _, err := split(append(raw[:abi.ReportSize:abi.ReportSize], 1, 2, 3)); err == nil || !strings.Contains(err.Error(), "certificate table") {
		t.Errorf("bad certificate table: %v", err)
	}
	q, err := split(raw[:abi.ReportSize])
	if err != nil || q.Certificates != nil || q.TEEVersion != "bl=0 tee=0 snp=0 ucode=0 fw=0.0.0" {
		t.Errorf("report without certificates: %+v, %v", q.TEEVersion, err)
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// The fakes are reachable only with -tags enarx_simulate: a production
// build of this package links neither go-sev-guest's testing package nor
// snptest.
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
		if dep == "testing" || strings.HasSuffix(dep, "/snptest") || dep == "github.com/google/go-sev-guest/testing" {
			t.Errorf("production build of snp imports %s", dep)
		}
	}
}

func TestConcurrentAttest(t *testing.T) {
	fake, err := snptest.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := New(fake)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			in := attestationtest.Inputs()
			in.Nonce = []byte{byte(i)}
			_, err := attestation.Collect(context.Background(), p, in)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// The evidence-generation cost of the simulated firmware (signing with
// P-384 and parsing); real firmware adds its own latency, and
// go-sev-guest's /dev/sev-guest path self-throttles 2 s between its two
// ioctls.
func BenchmarkCollectFake(b *testing.B) {
	fake, err := snptest.New(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	p, _ := New(fake)
	in := attestationtest.Inputs()
	for b.Loop() {
		if _, err := attestation.Collect(context.Background(), p, in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDeviceQuoteProvider: reports through a device opened once (a
// confined Keep's /dev/sev-guest) are go-sev-guest's extended reports, the
// certificate table after the report, for as many reports as asked.
func TestDeviceQuoteProvider(t *testing.T) {
	tcs := sevtest.TestCases()
	d, err := sevtest.TcDevice(tcs, &sevtest.DeviceOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	qp := DeviceQuoteProvider{Device: d}
	asked := 0
	for _, tc := range tcs {
		if tc.WantErr != "" || tc.FwErr != 0 || tc.EsResult != 0 {
			continue
		}
		for i := 0; i < 2; i++ {
			quote, err := qp.GetRawQuote(tc.Input)
			if err != nil {
				t.Fatalf("%s: %v", tc.Name, err)
			}
			report, err := client.GetRawReport(d, tc.Input)
			if err != nil {
				t.Fatalf("%s: %v", tc.Name, err)
			}
			// The fake device signs each report anew: compare what it signs
			// (the report's first 0x2A0 bytes).
			if !bytes.Equal(quote[:0x2A0], report[:0x2A0]) {
				t.Errorf("%s: the quote's report is not the device's", tc.Name)
			}
			if _, err := abi.ReportCertsToProto(quote); err != nil {
				t.Errorf("%s: the quote does not parse as a report and its certificates: %v", tc.Name, err)
			}
			asked++
		}
	}
	if asked == 0 {
		t.Fatal("no test case of go-sev-guest gave a report")
	}
	if !qp.IsSupported() || qp.Product() == nil {
		t.Errorf("IsSupported %v, Product %v", qp.IsSupported(), qp.Product())
	}
}
