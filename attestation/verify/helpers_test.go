package verify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/attestationtest"
	"github.com/enarx/containerd-shim-enarx/attestation/snp"
	"github.com/enarx/containerd-shim-enarx/attestation/snp/snptest"
	"github.com/enarx/containerd-shim-enarx/attestation/tdx"
	"github.com/enarx/containerd-shim-enarx/attestation/tdx/tdxtest"
)

// testNow is when the fakes' certificates start to be valid.
var testNow = time.Now()

// fixture holds evidence from the fakes, made once per test binary.
type fixture struct {
	fake     *snptest.QuoteProvider
	snp      *attestation.Evidence
	signerA  *sevtest.AmdSigner // fresh keys: a private root that is not the test ARK
	signerB  *sevtest.AmdSigner // fresh keys: a foreign root
	snpA     *attestation.Evidence
	tdx      *tdxtest.Signer
	tdxEv    *attestation.Evidence
	none     *attestation.Evidence
	otherTDX *tdxtest.Signer
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() { fixErr = makeFixture() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return &fix
}

func makeFixture() error {
	ctx := context.Background()
	in := attestationtest.Inputs()
	fake, err := snptest.New(testNow)
	if err != nil {
		return err
	}
	p, err := snp.New(fake)
	if err != nil {
		return err
	}
	fix.fake = fake
	if fix.snp, err = attestation.Collect(ctx, p, in); err != nil {
		return err
	}
	if fix.signerA, err = freshSigner(); err != nil {
		return err
	}
	if fix.signerB, err = freshSigner(); err != nil {
		return err
	}
	fix.snpA = resignedBy(fix.signerA, fix.snp, fix.snp.Report)

	if fix.tdx, err = tdxtest.NewSigner(testNow); err != nil {
		return err
	}
	if fix.otherTDX, err = tdxtest.NewSigner(testNow); err != nil {
		return err
	}
	tp, err := tdx.New(fix.tdx, nil)
	if err != nil {
		return err
	}
	if fix.tdxEv, err = attestation.Collect(ctx, tp, in); err != nil {
		return err
	}
	fix.none, err = attestation.Collect(ctx, attestation.None{}, in)
	return err
}

// freshSigner is an AMD signer like snptest's (same chip, TCB and product)
// but with freshly generated keys: its ARK is not the test ARK.
func freshSigner() (*sevtest.AmdSigner, error) {
	keys := &sevtest.AmdKeys{}
	var err error
	for _, k := range []**rsa.PrivateKey{&keys.Ark, &keys.Ask, &keys.Asvk} {
		if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, err
		}
	}
	for _, k := range []**ecdsa.PrivateKey{&keys.Vcek, &keys.Vlek} {
		if *k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			return nil, err
		}
	}
	product := abi.DefaultSevProduct()
	name := kds.ProductName(product)
	tcb, _ := kds.ComposeTCBParts(snptest.TCB)
	chipID := sha512.Sum512([]byte("enarx snptest chip"))
	b := &sevtest.AmdSignerBuilder{
		Keys: keys, ProductName: name, CSPID: "enarx verify test",
		ArkCreationTime: testNow, AskCreationTime: testNow, AsvkCreationTime: testNow,
		VcekCreationTime: testNow, VlekCreationTime: testNow,
		HWID: chipID, TCB: tcb,
		VcekCustom: sevtest.CertOverride{Extensions: sevtest.CustomExtensions(snptest.TCB, chipID[:], "", name)},
	}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		return nil, err
	}
	s.Product = product
	return s, nil
}

// rootsOf returns go-sev-guest roots holding s's ARK and ASK.
func rootsOf(s *sevtest.AmdSigner) map[string][]*trust.AMDRootCerts {
	return map[string][]*trust.AMDRootCerts{"Milan": {{Product: "Milan", ProductLine: "Milan",
		ProductCerts: &trust.ProductCerts{Ark: s.Ark, Ask: s.Ask, Asvk: s.Asvk}}}}
}

// resign returns report signed by s's VCEK.
func resign(t testing.TB, s *sevtest.AmdSigner, report []byte) []byte {
	t.Helper()
	out, err := sign(s, report)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var signMu sync.Mutex // go-sev-guest's fake signer shares a math/rand source

func sign(s *sevtest.AmdSigner, report []byte) ([]byte, error) {
	signMu.Lock()
	defer signMu.Unlock()
	out := bytes.Clone(report)
	r, sig, err := s.Sign(abi.SignedComponent(out))
	if err != nil {
		return nil, err
	}
	if err := abi.SetSignature(r, sig, out); err != nil {
		return nil, err
	}
	return out, nil
}

// resignedBy returns a copy of ev whose report (report, re-signed) and
// certificate table are s's.
func resignedBy(s *sevtest.AmdSigner, ev *attestation.Evidence, report []byte) *attestation.Evidence {
	out := *ev
	var err error
	if out.Report, err = sign(s, report); err != nil {
		panic(err)
	}
	if out.Certificates, err = s.CertTableBytes(); err != nil {
		panic(err)
	}
	return &out
}

// reference returns reference values knowing attestationtest's runtime.
func reference(t testing.TB) *ReferenceValues {
	t.Helper()
	r := &ReferenceValues{}
	if err := r.Add("containerd-shim-enarx-v1", "v0.1.0", attestationtest.Inputs().RuntimeDigest); err != nil {
		t.Fatal(err)
	}
	// The node images of the fakes hold that runtime.
	fix := getFixture(t)
	for _, m := range []Measurement{
		{Name: "snptest node", TEE: attestation.TEESEVSNP, Measurement: snptest.Measurement(), Runtimes: []string{attestationtest.Inputs().RuntimeDigest}},
		{Name: "tdxtest node", TEE: attestation.TEETDX, Measurement: hex.EncodeToString(fix.tdx.MrTd[:]), Runtimes: []string{attestationtest.Inputs().RuntimeDigest}},
	} {
		if err := r.AddMeasurement(m); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func clone(ev *attestation.Evidence) *attestation.Evidence {
	b, err := ev.Marshal()
	if err != nil {
		panic(err)
	}
	out, err := attestation.ParseEvidence(b)
	if err != nil {
		panic(err)
	}
	return out
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
