package steward

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containerd/log"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/snp"
	"github.com/enarx/containerd-shim-enarx/attestation/snp/snptest"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
	"github.com/enarx/containerd-shim-enarx/attestation/verify"
)

// testRuntimeVersion and testRuntimeDigest are the runtime the test
// evidence states and the test reference values know.
const testRuntimeVersion = "v0.1.0"

var testRuntimeDigest = digestOf("enarx steward test runtime")

// TestMain keeps the steward's logs out of the test output.
func TestMain(m *testing.M) {
	log.L.Logger.SetOutput(io.Discard)
	os.Exit(m.Run())
}

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	firmwareOnce sync.Once
	firmware     *snp.Provider
	firmwareErr  error
	firmwareTime time.Time
)

// snpProvider returns an SEV-SNP provider over the fake firmware of
// snptest, shared by the tests (its certificates are valid from
// firmwareTime).
func snpProvider(t testing.TB) *snp.Provider {
	t.Helper()
	firmwareOnce.Do(func() {
		firmwareTime = time.Now().Add(-time.Hour)
		var fake *snptest.QuoteProvider
		if fake, firmwareErr = snptest.New(firmwareTime); firmwareErr != nil {
			return
		}
		firmware, firmwareErr = snp.New(fake)
	})
	if firmwareErr != nil {
		t.Fatal(firmwareErr)
	}
	return firmware
}

// keep is a test Keep: a key and the evidence it makes.
type keep struct {
	key    *ecdsa.PrivateKey
	pubDER []byte
}

func newKeep(t testing.TB) *keep {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &keep{key: key, pubDER: der}
}

func (k *keep) inputs(nonce []byte) attestation.Inputs {
	return attestation.Inputs{
		KeepPublicKey:  k.pubDER,
		WorkloadDigest: digestOf("workload"),
		RuntimeDigest:  testRuntimeDigest,
		RuntimeVersion: testRuntimeVersion,
		ConfigDigest:   digestOf("config"),
		Nonce:          nonce,
	}
}

// evidence returns the Keep's evidence for nonce from p (the fake SEV-SNP
// firmware when p is nil).
func (k *keep) evidence(t testing.TB, p attestation.Provider, nonce []byte) *attestation.Evidence {
	t.Helper()
	if p == nil {
		p = snpProvider(t)
	}
	ev, err := attestation.Collect(context.Background(), p, k.inputs(nonce))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func (k *keep) evidenceJSON(t testing.TB, p attestation.Provider, nonce []byte) []byte {
	t.Helper()
	b, err := k.evidence(t, p, nonce).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testReferenceValues is a reference values file that knows the test runtime.
func testReferenceValues(t testing.TB) string {
	t.Helper()
	var ref verify.ReferenceValues
	if err := ref.Add("enarx-keep", testRuntimeVersion, testRuntimeDigest); err != nil {
		t.Fatal(err)
	}
	// The simulated SEV-SNP node holds it.
	if err := ref.AddMeasurement(verify.Measurement{TEE: attestation.TEESEVSNP, Measurement: snptest.Measurement(), Runtimes: []string{testRuntimeDigest}}); err != nil {
		t.Fatal(err)
	}
	b, err := ref.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fixture is a steward on loopback and a client of it.
type fixture struct {
	dir    string
	clock  *clock
	server *Server
	http   *httptest.Server
	client *stewardclient.Client
}

// fixtureConfig says how to set a test steward up.
type fixtureConfig struct {
	allowInsecure bool     // policy allows tee "none"
	edit          []Option // more options to Open
}

// testPolicy is a policy for the fake firmware's evidence: its test roots
// and the test runtime.
func testPolicy(allowInsecure bool) string {
	p := "allow_test_roots = true\nreference_values = \"reference.json\"\n"
	if allowInsecure {
		p += "allow_insecure = true\n"
	}
	return p
}

// writeTestDataDir writes the test policy and reference values into dir.
func writeTestDataDir(t testing.TB, dir string, allowInsecure bool) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(PolicyFile, testPolicy(allowInsecure))
	write("reference.json", testReferenceValues(t))
}

func newFixture(t testing.TB, fc fixtureConfig) *fixture {
	t.Helper()
	snpProvider(t)
	f := &fixture{dir: filepath.Join(t.TempDir(), "steward"), clock: &clock{t: time.Now()}}
	writeTestDataDir(t, f.dir, fc.allowInsecure)
	opts := []Option{WithClock(f.clock.Now)}
	opts = append(opts, fc.edit...)
	s, err := Open(context.Background(), f.dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	f.server = s
	f.http = httptest.NewServer(s.Handler())
	t.Cleanup(f.http.Close)
	if f.client, err = stewardclient.New(f.http.URL, f.http.Client()); err != nil {
		t.Fatal(err)
	}
	return f
}
