// Package tdxtest is a test-only Intel TDX quote signer: it produces quotes
// of version 4 (ECDSA P-256 attestation key, QE report signed by a PCK
// certificate chain it generates) carrying any REPORT_DATA, which
// go-tdx-guest parses and verifies when told to trust Roots().
//
// go-tdx-guest ships no such fake. Nothing here is Intel's: the chain only
// copies the common names go-tdx-guest's verifier requires, and its
// organization says "test only". Production code must never import it.
package tdxtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-configfs-tsm/rtmr"
)

// Sizes of quote version 4 (Intel TDX DCAP Quote Generation Library and
// Quote Verification Library, "Quote Format").
const (
	headerSize     = 0x30
	bodySize       = 0x248
	qeReportSize   = 0x180
	reportDataOff  = 0x208 // within the body
	rtmrOff        = 0x148 // RTMR0, within the body; RTMR1 to RTMR3 follow
	teeTcbSvnSize  = 16
	quoteVersion   = 4
	ecdsaP256Key   = 2
	teeTypeTDX     = 0x81
	certTypeQE     = 6 // QE report certification data
	certTypePCKPEM = 5 // PCK leaf || intermediate || root, PEM
)

// intelQEVendorID is the QE vendor ID of Intel's quoting enclave.
var intelQEVendorID = mustHex("939a7233f79c4ca9940a0db3957f0607")

// OIDs of the SGX extension of a PCK certificate.
var (
	oidSGX    = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidPPID   = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB    = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID  = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC  = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
	orgMarker = "enarx tdxtest: TEST ONLY, not Intel"
)

// Signer signs TDX quotes with a test-only PCK chain. It implements
// go-tdx-guest's client.QuoteProvider. Safe for concurrent use.
type Signer struct {
	// Root, Intermediate and PCK are the generated chain.
	Root, Intermediate, PCK *x509.Certificate
	// TeeTcbSvn is the TEE_TCB_SVN every quote states.
	TeeTcbSvn [teeTcbSvnSize]byte
	// MrTd is the MRTD every quote states.
	MrTd [48]byte
	// RTMRs, when set, is the configfs-tsm client (go-configfs-tsm's
	// fakertmr) whose RTMR2 and RTMR3 every quote states, as a TD's quote
	// states the registers the guest extended.
	RTMRs configfsi.Client

	mu        sync.Mutex
	pckKey    *ecdsa.PrivateKey
	attestKey *ecdsa.PrivateKey
	pemChain  []byte
}

// NewSigner generates a fresh test chain valid from now-1h for ten years.
func NewSigner(now time.Time) (*Signer, error) {
	keys := make([]*ecdsa.PrivateKey, 4)
	for i := range keys {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("tdxtest: generate key: %w", err)
		}
		keys[i] = k
	}
	rootKey, interKey, pckKey, attestKey := keys[0], keys[1], keys[2], keys[3]
	notBefore, notAfter := now.Add(-time.Hour), now.AddDate(10, 0, 0)
	name := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{orgMarker}, Country: []string{"US"}}
	}
	root, err := certify(&x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               name("Intel SGX Root CA"),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, rootKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter, err := certify(&x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               name("Intel SGX PCK Platform CA"),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, root, interKey, rootKey)
	if err != nil {
		return nil, err
	}
	sgx, err := sgxExtension()
	if err != nil {
		return nil, err
	}
	// go-tdx-guest wants exactly six extensions, as Intel's PCK certificates
	// have: authority and subject key IDs, CRL distribution points, key
	// usage, basic constraints and the SGX extension.
	pck, err := certify(&x509.Certificate{
		SerialNumber:          big.NewInt(3),
		Subject:               name("Intel SGX PCK Certificate"),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
		SubjectKeyId:          []byte("enarx-tdxtest-pck"),
		CRLDistributionPoints: []string{"https://tdxtest.invalid/pckcrl"},
		ExtraExtensions:       []pkix.Extension{{Id: oidSGX, Value: sgx}},
	}, inter, pckKey, interKey)
	if err != nil {
		return nil, err
	}
	if n := len(pck.Extensions); n != 6 {
		return nil, fmt.Errorf("tdxtest: PCK certificate has %d extensions, want 6", n)
	}
	var chain bytes.Buffer
	for _, c := range []*x509.Certificate{pck, inter, root} {
		if err := pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return nil, fmt.Errorf("tdxtest: encode chain: %w", err)
		}
	}
	s := &Signer{
		Root: root, Intermediate: inter, PCK: pck,
		pckKey: pckKey, attestKey: attestKey,
		pemChain: chain.Bytes(),
	}
	copy(s.TeeTcbSvn[:], mustHex("03000400000000000000000000000000"))
	copy(s.MrTd[:], bytes.Repeat([]byte{0xd7}, 48))
	return s, nil
}

// Roots returns a pool holding only the test root.
func (s *Signer) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.Root)
	return p
}

// IsSupported implements go-tdx-guest's client.QuoteProvider.
func (s *Signer) IsSupported() error { return nil }

// GetRawQuote implements go-tdx-guest's client.QuoteProvider.
func (s *Signer) GetRawQuote(reportData [64]byte) ([]uint8, error) { return s.Quote(reportData) }

// Quote returns a signed quote of version 4 whose REPORT_DATA is reportData.
func (s *Signer) Quote(reportData [64]byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	header := make([]byte, headerSize)
	binary.LittleEndian.PutUint16(header[0x00:], quoteVersion)
	binary.LittleEndian.PutUint16(header[0x02:], ecdsaP256Key)
	binary.LittleEndian.PutUint32(header[0x04:], teeTypeTDX)
	copy(header[0x0c:0x1c], intelQEVendorID)
	copy(header[0x1c:0x30], "enarx-tdxtest-quote!")

	body := make([]byte, bodySize)
	copy(body[0x00:0x10], s.TeeTcbSvn[:])
	copy(body[0x88:0xb8], s.MrTd[:])
	if s.RTMRs != nil {
		for _, i := range []int{2, 3} {
			r, err := rtmr.GetDigest(s.RTMRs, i)
			if err != nil {
				return nil, fmt.Errorf("tdxtest: RTMR%d: %w", i, err)
			}
			copy(body[rtmrOff+48*i:rtmrOff+48*(i+1)], r.Digest)
		}
	}
	copy(body[reportDataOff:reportDataOff+64], reportData[:])

	digest := sha256.Sum256(append(append([]byte(nil), header...), body...))
	quoteSig, err := rawSign(s.attestKey, digest[:])
	if err != nil {
		return nil, err
	}
	attestPub := make([]byte, 64)
	s.attestKey.X.FillBytes(attestPub[:32])
	s.attestKey.Y.FillBytes(attestPub[32:])

	authData := make([]byte, 32)
	for i := range authData {
		authData[i] = byte(i)
	}
	qeReport := make([]byte, qeReportSize)
	binary.LittleEndian.PutUint16(qeReport[0x100:], 2) // ISVPRODID of the TD QE
	binary.LittleEndian.PutUint16(qeReport[0x102:], 4) // ISVSVN
	bound := sha256.Sum256(append(append([]byte(nil), attestPub...), authData...))
	copy(qeReport[0x140:], bound[:]) // QE REPORT_DATA = SHA-256(attestation key || auth data) || zeros
	qeDigest := sha256.Sum256(qeReport)
	qeSig, err := rawSign(s.pckKey, qeDigest[:])
	if err != nil {
		return nil, err
	}

	var qeCert bytes.Buffer
	qeCert.Write(qeReport)
	qeCert.Write(qeSig)
	binary.Write(&qeCert, binary.LittleEndian, uint16(len(authData)))
	qeCert.Write(authData)
	binary.Write(&qeCert, binary.LittleEndian, uint16(certTypePCKPEM))
	binary.Write(&qeCert, binary.LittleEndian, uint32(len(s.pemChain)))
	qeCert.Write(s.pemChain)

	var signed bytes.Buffer
	signed.Write(quoteSig)
	signed.Write(attestPub)
	binary.Write(&signed, binary.LittleEndian, uint16(certTypeQE))
	binary.Write(&signed, binary.LittleEndian, uint32(qeCert.Len()))
	signed.Write(qeCert.Bytes())

	var quote bytes.Buffer
	quote.Write(header)
	quote.Write(body)
	binary.Write(&quote, binary.LittleEndian, uint32(signed.Len()))
	quote.Write(signed.Bytes())
	return quote.Bytes(), nil
}

// Configfs returns a fake configfs-tsm (go-configfs-tsm's faketsm, Linux
// 6.11 attributes) whose report provider is "tdx_guest" and whose outblob is
// a quote from s for the written inblob.
func (s *Signer) Configfs() configfsi.Client {
	return s.configfs("tdx_guest\n")
}

// ConfigfsWithProvider is Configfs with another provider name (e.g.
// "sev_guest\n"), for testing that a TDX client refuses it.
func (s *Signer) ConfigfsWithProvider(provider string) configfsi.Client {
	return s.configfs(provider)
}

func (s *Signer) configfs(provider string) configfsi.Client {
	report := faketsm.Report611(0)
	fallback := report.ReadAttr
	report.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "provider":
			return []byte(provider), nil
		case "outblob":
			in := e.InAttrs["inblob"]
			if in == nil || len(in.Value) == 0 || len(in.Value) > 64 {
				return nil, errors.New("tdxtest: inblob must be 1 to 64 bytes")
			}
			var rd [64]byte
			copy(rd[:], in.Value)
			return s.Quote(rd)
		case "auxblob":
			return nil, nil
		}
		return fallback(e, attr)
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": report}}
}

func certify(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) (*x509.Certificate, error) {
	if parent == nil {
		parent = tmpl
	}
	tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("tdxtest: certify %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// sgxExtension encodes the SGX extension: PPID, TCB (16 SGX TCB components,
// PCESVN, CPUSVN), PCE-ID and FMSPC.
func sgxExtension() ([]byte, error) {
	type attr struct {
		Type  asn1.ObjectIdentifier
		Value any
	}
	type tcb struct {
		Type  asn1.ObjectIdentifier
		Value []attr
	}
	components := make([]attr, 0, 18)
	cpuSvn := make([]byte, 16)
	for i := 1; i <= 16; i++ {
		svn := 0
		if i <= 2 {
			svn = 3
		}
		cpuSvn[i-1] = byte(svn)
		components = append(components, attr{append(append(asn1.ObjectIdentifier{}, oidTCB...), i), svn})
	}
	components = append(components,
		attr{append(append(asn1.ObjectIdentifier{}, oidTCB...), 17), 13},     // PCESVN
		attr{append(append(asn1.ObjectIdentifier{}, oidTCB...), 18), cpuSvn}, // CPUSVN
	)
	der, err := asn1.Marshal([]any{
		attr{oidPPID, make([]byte, 16)},
		tcb{oidTCB, components},
		attr{oidPCEID, []byte{0, 0}},
		attr{oidFMSPC, mustHex("00806f050000")},
	})
	if err != nil {
		return nil, fmt.Errorf("tdxtest: encode SGX extension: %w", err)
	}
	return der, nil
}

// rawSign returns an ECDSA signature as r || s, 32 bytes each, big-endian.
func rawSign(key *ecdsa.PrivateKey, digest []byte) ([]byte, error) {
	r, s, err := ecdsa.Sign(rand.Reader, key, digest)
	if err != nil {
		return nil, fmt.Errorf("tdxtest: sign: %w", err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}
