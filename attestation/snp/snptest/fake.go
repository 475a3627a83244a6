// Package snptest is a test-only SEV-SNP firmware built on go-sev-guest's
// own fakes (testing.AmdSignerBuilder, testing.QuoteProvider): it answers
// any REPORT_DATA with a report signed by a test-only VCEK whose chain ends
// in go-sev-guest's test ARK. Tests of this module and the simulated
// provider (snp.NewSimulated, -tags enarx_simulate) use it; production code
// must never import it.
package snptest

import (
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

// TCB is the TCB the fake firmware reports and its VCEK certifies.
var TCB = kds.TCBParts{BlSpl: 3, TeeSpl: 0, SnpSpl: 8, UcodeSpl: 115}

// Firmware is the fake firmware's version (major, minor, build).
var Firmware = [3]uint8{1, 55, 21}

// QuoteProvider is a go-sev-guest client.QuoteProvider answering any
// REPORT_DATA. Safe for concurrent use.
type QuoteProvider struct {
	// Signer holds the test-only ARK, ASK, VCEK and their keys.
	Signer *sevtest.AmdSigner

	mu      sync.Mutex // go-sev-guest's fake signer shares one math/rand source
	qp      *sevtest.QuoteProvider
	chipID  [abi.ChipIDSize]byte
	measure [48]byte
}

// New returns a fake SEV-SNP firmware whose certificates are valid from now.
func New(now time.Time) (*QuoteProvider, error) {
	product := abi.DefaultSevProduct()
	productName := kds.ProductName(product)
	tcb, err := kds.ComposeTCBParts(TCB)
	if err != nil {
		return nil, fmt.Errorf("snptest: %w", err)
	}
	var chipID [abi.ChipIDSize]byte
	chipID = sha512.Sum512([]byte("enarx snptest chip"))
	b := &sevtest.AmdSignerBuilder{
		Keys:             sevtest.DefaultAmdKeys(),
		ProductName:      productName,
		CSPID:            "go-sev-guest",
		ArkCreationTime:  now,
		AskCreationTime:  now,
		AsvkCreationTime: now,
		VcekCreationTime: now,
		VlekCreationTime: now,
		HWID:             chipID,
		TCB:              tcb,
		VcekCustom: sevtest.CertOverride{
			Extensions: sevtest.CustomExtensions(TCB, chipID[:], "", productName),
		},
	}
	signer, err := b.TestOnlyCertChain()
	if err != nil {
		return nil, fmt.Errorf("snptest: test-only certificate chain: %w", err)
	}
	signer.Product = product
	qp, err := sevtest.TcQuoteProvider(nil, &sevtest.DeviceOptions{Signer: signer, Now: now, Product: product})
	if err != nil {
		return nil, fmt.Errorf("snptest: fake quote provider: %w", err)
	}
	f := &QuoteProvider{Signer: signer, qp: qp, chipID: chipID}
	f.measure = launchMeasurement
	return f, nil
}

// launchMeasurement is the MEASUREMENT of every report of the fake.
var launchMeasurement = sha512.Sum384([]byte("enarx snptest launch measurement"))

// Measurement is the fake's launch MEASUREMENT, in hex: what reference
// values list for the simulated backend's node (enarx reference-values
// --measurement sev-snp:HEX).
func Measurement() string { return hex.EncodeToString(launchMeasurement[:]) }

// IsSupported implements client.QuoteProvider.
func (*QuoteProvider) IsSupported() bool { return true }

// Product implements client.QuoteProvider.
func (f *QuoteProvider) Product() *spb.SevProduct { return f.qp.Product() }

// GetRawQuote implements client.QuoteProvider: a signed report for
// reportData followed by the certificate table.
func (f *QuoteProvider) GetRawQuote(reportData [64]byte) ([]uint8, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := hex.EncodeToString(reportData[:])
	f.qp.Device.ReportDataRsp = map[string]any{
		key: &sevtest.GetReportResponse{Resp: labi.SnpReportRespABI{Data: f.report(reportData)}},
	}
	return f.qp.GetRawQuote(reportData)
}

// report lays out an unsigned report as a production guest's looks: not
// debuggable, SMT allowed, ABI 1.51, the TCB and chip ID the VCEK certifies.
func (f *QuoteProvider) report(reportData [64]byte) [labi.SnpReportRespReportSize]byte {
	r := sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: reportData[:]})
	tcb, _ := kds.ComposeTCBParts(TCB)
	binary.LittleEndian.PutUint64(r[0x08:], abi.SnpPolicyToBytes(abi.SnpPolicy{ABIMajor: 1, ABIMinor: 51, SMT: true}))
	binary.LittleEndian.PutUint64(r[0x38:], uint64(tcb))  // CURRENT_TCB
	copy(r[0x90:0xC0], f.measure[:])                      // MEASUREMENT
	binary.LittleEndian.PutUint64(r[0x180:], uint64(tcb)) // REPORTED_TCB
	copy(r[0x1A0:0x1E0], f.chipID[:])                     // CHIP_ID
	binary.LittleEndian.PutUint64(r[0x1E0:], uint64(tcb)) // COMMITTED_TCB
	r[0x1E8], r[0x1E9], r[0x1EA] = Firmware[2], Firmware[1], Firmware[0]
	r[0x1EC], r[0x1ED], r[0x1EE] = Firmware[2], Firmware[1], Firmware[0]
	binary.LittleEndian.PutUint64(r[0x1F0:], uint64(tcb)) // LAUNCH_TCB
	return r
}

// Roots returns go-sev-guest verify roots holding only the test ARK/ASK.
func (f *QuoteProvider) Roots() map[string][]*trust.AMDRootCerts {
	line := kds.ProductLine(f.Signer.Product)
	return map[string][]*trust.AMDRootCerts{line: {{
		Product:     line,
		ProductLine: line,
		ProductCerts: &trust.ProductCerts{
			Ark:  f.Signer.Ark,
			Ask:  f.Signer.Ask,
			Asvk: f.Signer.Asvk,
		},
	}}}
}

// VerifyOptions returns offline verify options that trust only the test
// roots and fetch any missing certificate from a fake KDS.
func (f *QuoteProvider) VerifyOptions(now time.Time) (*verify.Options, error) {
	kds, err := sevtest.FakeKDSFromSigner(f.Signer)
	if err != nil {
		return nil, fmt.Errorf("snptest: fake KDS: %w", err)
	}
	return &verify.Options{TrustedRoots: f.Roots(), Getter: kds, Now: now, Product: f.Signer.Product}, nil
}
