package guest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/steward"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
	"github.com/enarx/containerd-shim-enarx/attestation/verify"
	"github.com/enarx/containerd-shim-enarx/internal/testpki"
	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
	"github.com/enarx/containerd-shim-enarx/version"
)

// certifySteward is a steward on loopback for certify to talk to.
type certifySteward struct {
	srv *steward.Server
	url string
	ca  string // its CA certificate, as a node policy pins it
}

// newCertifySteward starts a steward whose policy is policy and whose
// reference values know this test binary, which is the runtime newAttester
// measures, as version.Version (unless knowRuntime is false).
func newCertifySteward(t *testing.T, policy string, knowRuntime bool) *certifySteward {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "steward")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var ref verify.ReferenceValues
	if knowRuntime {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		digest, err := verify.FileDigest(exe)
		if err != nil {
			t.Fatal(err)
		}
		if err := ref.Add(filepath.Base(exe), version.Version, digest); err != nil {
			t.Fatal(err)
		}
	}
	refJSON, err := ref.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		steward.PolicyFile: []byte(policy + "reference_values = \"reference.json\"\n"),
		"reference.json":   refJSON,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	ctx := log.WithLogger(context.Background(), logrus.NewEntry(quiet))
	srv, err := steward.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &certifySteward{srv: srv, url: hs.URL, ca: filepath.Join(dir, steward.CACertFile)}
}

// certifyConfig is the configuration of a Keep certified by the steward at
// url whose CA the node policy pins as ca.
func certifyConfig(t *testing.T, url, ca string) keep.Config {
	return keep.Config{
		ID:       "certify-test",
		Steward:  &nodepolicy.Steward{Name: "test", URL: url, CA: ca, InsecureHTTP: true},
		StateDir: t.TempDir(),
		Workload: workload.Workload{Module: "/app.wasm", Args: []string{"app.wasm"}},
	}
}

func certifyWorkload() string {
	sum := sha256.Sum256([]byte("certify test workload"))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestCertify(t *testing.T) {
	st := newCertifySteward(t, "allow_insecure = true\n", true)
	cfg := certifyConfig(t, st.url, st.ca)
	workload := certifyWorkload()
	att, err := attestedKey(cfg, workload, attestation.None{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := certify(context.Background(), cfg, att)
	if err != nil {
		t.Fatalf("certify: %v", err)
	}

	chain, err := stewardclient.ParseCertificatesPEM(out)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(st.srv.CA())
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the Keep's certificate does not verify against the steward's CA alone: %v", err)
	}
	if !att.key.PublicKey.Equal(leaf.PublicKey) {
		t.Errorf("the certificate is for another key than the Keep's")
	}
	a, err := attestation.CertificateAssertions(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if a.TEE != attestation.TEENone || a.WorkloadDigest != workload || !a.Insecure ||
		a.RuntimeVersion != version.Version || a.RuntimeDigest != att.inputs.RuntimeDigest || a.ConfigDigest != att.inputs.ConfigDigest {
		t.Errorf("certificate assertions %+v, want tee none, workload %s, insecure, runtime %s %s", a, workload, version.Version, att.inputs.RuntimeDigest)
	}
	if len(a.Nonce) != stewardclient.NonceSize {
		t.Errorf("the certified evidence binds a %d-byte nonce, want the steward's %d-byte challenge", len(a.Nonce), stewardclient.NonceSize)
	}
	stored, err := os.ReadFile(filepath.Join(cfg.StateDir, keep.CertificateFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(stored) != string(out) {
		t.Errorf("%s is not the chain certify returned:\n%s\nwant:\n%s", keep.CertificateFile, stored, out)
	}
}

func TestCertifyFailures(t *testing.T) {
	refusing := newCertifySteward(t, "", true)
	unknownRuntime := newCertifySteward(t, "allow_insecure = true\n", false)
	good := newCertifySteward(t, "allow_insecure = true\n", true)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	notPEM := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		steward string
		ca      string
		want    []string // substrings of the error
	}{
		{"policy refuses nil evidence", refusing.url, refusing.ca, []string{"steward test", "status 403, check " + verify.CheckTEE}},
		{"runtime unknown", unknownRuntime.url, unknownRuntime.ca, []string{"status 403, check " + verify.CheckRuntime}},
		{"steward unreachable", down, good.ca, []string{down}},
		{"steward CA not PEM", good.url, notPEM, []string{notPEM, "not PEM"}},
		{"steward CA missing", good.url, notPEM + ".missing", []string{notPEM + ".missing"}},
		{"another steward's CA pinned", good.url, refusing.ca, []string{"does not chain to the steward's CA the node policy pins"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := certifyConfig(t, tc.steward, tc.ca)
			att, err := attestedKey(cfg, certifyWorkload(), attestation.None{})
			if err != nil {
				t.Fatal(err)
			}
			out, err := certify(context.Background(), cfg, att)
			if err == nil {
				t.Fatalf("certify succeeded (%d bytes of chain), want an error", len(out))
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(cfg.StateDir, keep.CertificateFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s after a failure: %v, want it absent", keep.CertificateFile, err)
			}
			if entries, _ := os.ReadDir(cfg.StateDir); len(entries) != 0 {
				t.Errorf("state directory holds %d files after a failure, want none", len(entries))
			}
		})
	}
}

// TestCertifyTrustsOnlyTheNode: the Keep follows no redirect (a steward
// answering 302 to another address gets no second request there), and of
// a steward's answer it keeps only its own certificate: a CA the answer
// adds (a man in the middle of a plain http steward) is neither stored
// nor trusted by the Keep's TLS connect sockets, which trust the CA the
// node policy pins; a certificate from another CA is refused.
func TestCertifyTrustsOnlyTheNode(t *testing.T) {
	good := newCertifySteward(t, "allow_insecure = true\n", true)
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusFound)
	}))
	defer redirecting.Close()
	cfg := certifyConfig(t, redirecting.URL, good.ca)
	att, err := attestedKey(cfg, certifyWorkload(), attestation.None{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certify(context.Background(), cfg, att); err == nil || !strings.Contains(err.Error(), "status 302") || elsewhere.Load() != 0 {
		t.Errorf("a redirecting steward: %v, %d requests to where it points; want a refusal and none", err, elsewhere.Load())
	}

	// A man in the middle: the steward's answer, with a CA of its own.
	evil := testpki.NewCA(t, "man in the middle")
	backend, _ := url.Parse(good.url)
	proxy := httputil.NewSingleHostReverseProxy(backend)
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Path != stewardclient.PathCSR || r.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		body = append(body, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: evil.Cert.Raw})...)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	mitm := httptest.NewServer(proxy)
	defer mitm.Close()
	cfg = certifyConfig(t, mitm.URL, good.ca)
	if att, err = attestedKey(cfg, certifyWorkload(), attestation.None{}); err != nil {
		t.Fatal(err)
	}
	out, err := certify(context.Background(), cfg, att)
	if err != nil {
		t.Fatalf("certify through the man in the middle: %v", err)
	}
	chain, err := stewardclient.ParseCertificatesPEM(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || !chain[1].Equal(good.srv.CA()) {
		t.Errorf("stored chain of %d certificates, want the Keep's and the pinned CA only", len(chain))
	}
	for _, c := range chain {
		if c.Equal(evil.Cert) {
			t.Error("the man in the middle's CA is in the Keep's chain")
		}
	}
	// Connect sockets trust the CAs of the Keep's TLS chain (openSockets).
	att.chain = out
	cert, err := att.tlsCertificate(cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cas := cert.Certificate[1:]; len(cas) != 1 || !bytes.Equal(cas[0], good.srv.CA().Raw) {
		t.Errorf("connect sockets trust %d CAs of the steward's, want the pinned one", len(cas))
	}
}
