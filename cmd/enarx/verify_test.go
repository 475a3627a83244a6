package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/snp"
	"github.com/enarx/containerd-shim-enarx/attestation/snp/snptest"
	"github.com/enarx/containerd-shim-enarx/attestation/steward"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
	"github.com/enarx/containerd-shim-enarx/attestation/verify"
)

// verifyRuntimeVersion is the runtime version the test evidence states and
// the test reference values give for verifyRuntimeDigest.
const verifyRuntimeVersion = "v9.9.9-test"

var verifyRuntimeDigest = sha256Digest([]byte("enarx verify test runtime"))

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// verifyCase is one run of enarx and what it must give.
type verifyCase struct {
	name   string
	args   []string
	stdin  []byte   // nil: no standard input
	code   int      // exit status
	stdout []string // substrings of stdout
	stderr []string // substrings of stderr
	check  func(t *testing.T, stdout string)
}

func (c verifyCase) run(t *testing.T) {
	t.Helper()
	var out, errb bytes.Buffer
	s := stdio{Stdout: &out, Stderr: &errb}
	if c.stdin != nil {
		s.Stdin = bytes.NewReader(c.stdin)
	}
	code := run(context.Background(), s, c.args)
	if code != c.code {
		t.Fatalf("enarx %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.args, code, c.code, out.String(), errb.String())
	}
	for _, want := range c.stdout {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	for _, want := range c.stderr {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if c.check != nil {
		c.check(t, out.String())
	}
}

// verifyKeep is a test Keep: its key and the inputs its evidence binds.
type verifyKeep struct {
	inputs attestation.Inputs
}

func newVerifyKeep(t *testing.T) *verifyKeep {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &verifyKeep{inputs: attestation.Inputs{
		KeepPublicKey:  pub,
		WorkloadDigest: sha256Digest([]byte("enarx verify test workload")),
		RuntimeDigest:  verifyRuntimeDigest,
		RuntimeVersion: verifyRuntimeVersion,
		ConfigDigest:   sha256Digest([]byte("enarx verify test config")),
	}}
}

// evidence returns the canonical encoding of the Keep's evidence from p,
// binding nonce, after edit (if not nil) changed the inputs.
func (k *verifyKeep) evidence(t *testing.T, p attestation.Provider, nonce []byte, edit func(*attestation.Inputs)) []byte {
	t.Helper()
	in := k.inputs
	in.Nonce = nonce
	if edit != nil {
		edit(&in)
	}
	ev, err := attestation.Collect(context.Background(), p, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeVerifyFile writes data to dir/name and returns its path.
func writeVerifyFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// verifyReferenceValues is the JSON of reference values knowing the test
// runtime.
func verifyReferenceValues(t *testing.T) []byte {
	t.Helper()
	var ref verify.ReferenceValues
	if err := ref.Add("enarx-keep", verifyRuntimeVersion, verifyRuntimeDigest); err != nil {
		t.Fatal(err)
	}
	// The simulated SEV-SNP node holds it.
	m, err := verify.ParseMeasurement("sev-snp:"+snptest.Measurement(), []string{verifyRuntimeDigest})
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.AddMeasurement(m); err != nil {
		t.Fatal(err)
	}
	b, err := ref.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReferenceValues(t *testing.T) {
	dir := t.TempDir()
	binA := writeVerifyFile(t, dir, "keep-a", []byte("runtime binary a"))
	binB := writeVerifyFile(t, dir, "keep-b", []byte("runtime binary b"))
	digestA := sha256Digest([]byte("runtime binary a"))
	digestB := sha256Digest([]byte("runtime binary b"))
	out := filepath.Join(dir, "reference-values.json")

	// The steps run in order on the same -o file; want is its entries
	// after the step (nil: the file is as the step before left it).
	steps := []struct {
		name string
		args []string
		code int
		want []verify.Runtime
	}{
		{"write", []string{"-o", out, "--version", "v9", binA}, 0,
			[]verify.Runtime{{Name: "keep-a", Version: "v9", Digest: digestA}}},
		{"add merges", []string{"-o", out, "--add", "--version", "v10", binB}, 0,
			[]verify.Runtime{{Name: "keep-a", Version: "v9", Digest: digestA}, {Name: "keep-b", Version: "v10", Digest: digestB}}},
		{"add replaces the same digest", []string{"-o", out, "--add", "--version", "v11", binA}, 0,
			[]verify.Runtime{{Name: "keep-a", Version: "v11", Digest: digestA}, {Name: "keep-b", Version: "v10", Digest: digestB}}},
		{"without add replaces the file", []string{"-o", out, "--version", "v12", binB}, 0,
			[]verify.Runtime{{Name: "keep-b", Version: "v12", Digest: digestB}}},
		{"no binary", []string{"-o", out}, 2, nil},
		{"add without -o", []string{"--add", binA}, 2, nil},
		{"version with a space", []string{"-o", out, "--version", "v 1", binA}, 1, nil},
		{"missing binary", []string{"-o", out, filepath.Join(dir, "missing")}, 1, nil},
	}
	last := steps[0].want
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			verifyCase{args: append([]string{"reference-values"}, st.args...), code: st.code}.run(t)
			want := st.want
			if want == nil {
				want = last
			}
			ref, err := verify.LoadReferenceValues(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ref.Runtimes, want) {
				t.Errorf("%s holds %+v, want %+v", out, ref.Runtimes, want)
			}
			last = want
		})
	}

	t.Run("stdout", func(t *testing.T) {
		verifyCase{args: []string{"reference-values", "--version", "v9", binA}, check: func(t *testing.T, stdout string) {
			ref, err := verify.ParseReferenceValues([]byte(stdout), "stdout")
			if err != nil {
				t.Fatal(err)
			}
			want := []verify.Runtime{{Name: "keep-a", Version: "v9", Digest: digestA}}
			if !reflect.DeepEqual(ref.Runtimes, want) {
				t.Errorf("stdout holds %+v, want %+v", ref.Runtimes, want)
			}
		}}.run(t)
	})
}

func TestVerifyLocal(t *testing.T) {
	dir := t.TempDir()
	k := newVerifyKeep(t)
	nonce := []byte("a nonce of the relying party")
	nonceHex := hex.EncodeToString(nonce)
	ref := writeVerifyFile(t, dir, "reference.json", verifyReferenceValues(t))
	insecure := writeVerifyFile(t, dir, "insecure.toml", []byte("allow_insecure = true\nreference_values = \"reference.json\"\n"))
	typo := writeVerifyFile(t, dir, "typo.toml", []byte("allow_insecur = true\n"))
	evidence := k.evidence(t, attestation.None{}, nonce, nil)
	evFile := writeVerifyFile(t, dir, "evidence.json", evidence)
	unknown := writeVerifyFile(t, dir, "unknown-runtime.json", k.evidence(t, attestation.None{}, nonce, func(in *attestation.Inputs) {
		in.RuntimeDigest = sha256Digest([]byte("another runtime"))
	}))
	garbage := writeVerifyFile(t, dir, "garbage.json", []byte("this is not evidence"))
	empty := writeVerifyFile(t, dir, "empty.json", []byte("\n"))
	missing := filepath.Join(dir, "missing.json")

	accepted := []string{"(1) TEE:         none: NOT confidential", verifyRuntimeVersion, k.inputs.WorkloadDigest,
		"integrity established by reference values " + ref}
	warning := []string{"WARNING", "allow_insecure = true"}
	tests := []verifyCase{{
		name:   "insecure allowed",
		args:   []string{"verify", "--policy", insecure, evFile},
		stdout: append(accepted, "INSECURE", "nonce:           "+nonceHex, verifyRuntimeDigest, k.inputs.ConfigDigest),
		stderr: warning,
	}, {
		name:   "reference values flag overrides the policy's",
		args:   []string{"verify", "--policy", insecure, "--reference-values", ref, evFile},
		stdout: accepted,
	}, {
		name:   "nonce matches",
		args:   []string{"verify", "--policy", insecure, "--nonce", nonceHex, evFile},
		stdout: accepted,
	}, {
		name:   "stdin",
		args:   []string{"verify", "--policy", insecure, "-"},
		stdin:  append(append([]byte("\n"), evidence...), '\n'),
		stdout: accepted,
		stderr: warning,
	}, {
		name: "json",
		args: []string{"verify", "--policy", insecure, "--json", evFile},
		check: func(t *testing.T, stdout string) {
			var a attestation.Assertions
			if err := json.Unmarshal([]byte(stdout), &a); err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			if a.TEE != attestation.TEENone || !a.Insecure || a.InsecureReason == "" ||
				a.RuntimeVersion != verifyRuntimeVersion || a.WorkloadDigest != k.inputs.WorkloadDigest ||
				!bytes.Equal(a.KeepPublicKey, k.inputs.KeepPublicKey) || !bytes.Equal(a.Nonce, nonce) {
				t.Errorf("assertions %+v, want tee none, insecure, the Keep's inputs", a)
			}
		},
	}, {
		name:   "default policy refuses nil evidence",
		args:   []string{"verify", "--reference-values", ref, evFile},
		code:   1,
		stderr: []string{"check " + verify.CheckTEE + " failed", verify.ErrInsecure.Error(), "allow_insecure = true"},
	}, {
		name:   "unknown runtime",
		args:   []string{"verify", "--policy", insecure, unknown},
		code:   1,
		stderr: []string{"check " + verify.CheckRuntime + " failed", "runtime integrity not established", ref},
	}, {
		name:   "nonce mismatch",
		args:   []string{"verify", "--policy", insecure, "--nonce", "00ff", evFile},
		code:   1,
		stderr: []string{"check " + verify.CheckNonce + " failed"},
	}, {
		name:   "garbage",
		args:   []string{"verify", "--policy", insecure, garbage},
		code:   1,
		stderr: []string{"check " + verify.CheckEvidence + " failed"},
	}, {
		name:   "empty",
		args:   []string{"verify", "--policy", insecure, empty},
		code:   1,
		stderr: []string{empty, "is empty"},
	}, {
		name:   "missing file",
		args:   []string{"verify", "--policy", insecure, missing},
		code:   1,
		stderr: []string{missing},
	}, {
		name:   "no stdin",
		args:   []string{"verify", "--policy", insecure, "-"},
		code:   1,
		stderr: []string{"no standard input"},
	}, {
		name:   "policy with an unknown key",
		args:   []string{"verify", "--policy", typo, evFile},
		code:   1,
		stderr: []string{"unknown key", "allow_insecur"},
	}, {
		name:   "missing reference values file",
		args:   []string{"verify", "--policy", insecure, "--reference-values", missing, evFile},
		code:   1,
		stderr: []string{"reference values", missing},
	}, {
		name:   "bad nonce hex",
		args:   []string{"verify", "--policy", insecure, "--nonce", "xyz", evFile},
		code:   2,
		stderr: []string{`--nonce "xyz" is not a hex string`},
	}, {
		name: "no evidence argument",
		args: []string{"verify", "--policy", insecure},
		code: 2,
	}, {
		name: "two evidence arguments",
		args: []string{"verify", "--policy", insecure, evFile, evFile},
		code: 2,
	}, {
		name:   "policy with steward",
		args:   []string{"verify", "--steward", "http://127.0.0.1:1", "--policy", insecure, evFile},
		code:   2,
		stderr: []string{"--policy and --reference-values are the steward's own"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

// TestVerifyNoReferenceValues: without reference values from the flag, the
// policy or the default places, verify says how to give them.
func TestVerifyNoReferenceValues(t *testing.T) {
	if p := defaultReferenceValues(); p != "" {
		t.Skipf("this machine has default reference values (%s)", p)
	}
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	policy := writeVerifyFile(t, dir, "policy.toml", []byte("allow_insecure = true\n"))
	ev := writeVerifyFile(t, dir, "evidence.json", newVerifyKeep(t).evidence(t, attestation.None{}, nil, nil))
	verifyCase{
		args:   []string{"verify", "--policy", policy, ev},
		code:   1,
		stderr: []string{"no reference values", "--reference-values"},
	}.run(t)
}

// TestVerifySNP verifies evidence from the fake SEV-SNP firmware, whose
// chain ends in go-sev-guest's test ARK: accepted only with allow_test_roots.
func TestVerifySNP(t *testing.T) {
	fake, err := snptest.New(time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	p, err := snp.New(fake)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := newVerifyKeep(t)
	blob := k.evidence(t, p, nil, nil)
	ev, err := attestation.ParseEvidence(blob)
	if err != nil {
		t.Fatal(err)
	}
	if ev.TEEVersion == "" {
		t.Fatal("SNP evidence without tee_version")
	}
	evFile := writeVerifyFile(t, dir, "evidence.json", blob)
	writeVerifyFile(t, dir, "reference.json", verifyReferenceValues(t))
	testRoots := writeVerifyFile(t, dir, "test-roots.toml", []byte("allow_test_roots = true\nreference_values = \"reference.json\"\n"))
	production := writeVerifyFile(t, dir, "production.toml", []byte("reference_values = \"reference.json\"\n"))

	tests := []verifyCase{{
		name:   "test roots allowed",
		args:   []string{"verify", "--policy", testRoots, evFile},
		stdout: []string{"(1) TEE:         sev-snp (" + ev.TEEVersion + ")", "measurement: ", verifyRuntimeVersion, k.inputs.WorkloadDigest, "INSECURE"},
		stderr: []string{"WARNING"},
		check: func(t *testing.T, stdout string) {
			if strings.Contains(stdout, "NOT confidential") {
				t.Errorf("SNP evidence printed as not confidential:\n%s", stdout)
			}
		},
	}, {
		name:   "production policy refuses test roots",
		args:   []string{"verify", "--policy", production, evFile},
		code:   1,
		stderr: []string{"check " + verify.CheckSNPChain + " failed", "allow_test_roots"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

// TestVerifySteward verifies evidence with a real steward on loopback.
func TestVerifySteward(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "steward")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeVerifyFile(t, dir, steward.PolicyFile, []byte("allow_insecure = true\nreference_values = \"reference.json\"\n"))
	writeVerifyFile(t, dir, "reference.json", verifyReferenceValues(t))
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	ctx := log.WithLogger(context.Background(), logrus.NewEntry(quiet))
	srv, err := steward.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	client, err := stewardclient.New(hs.URL, hs.Client())
	if err != nil {
		t.Fatal(err)
	}
	k := newVerifyKeep(t)
	// fresh is nil evidence binding a nonce the steward just issued.
	fresh := func(t *testing.T) ([]byte, []byte) {
		nonce, _, err := client.Challenge(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return k.evidence(t, attestation.None{}, nonce, nil), nonce
	}
	evA, _ := fresh(t)
	evB, nonceB := fresh(t)
	evC, _ := fresh(t)
	evD, _ := fresh(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + closed.Addr().String()
	closed.Close()

	// A fake steward: it answers any evidence with the real steward's
	// signed result about other evidence, and the real keys.
	realToken, err := client.Attest(context.Background(), evD)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(srv.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case stewardclient.PathAttest:
			w.Header().Set("Content-Type", stewardclient.ContentTypeToken)
			_, _ = w.Write([]byte(realToken))
		case stewardclient.PathJWKS:
			w.Header().Set("Content-Type", stewardclient.ContentTypeJWKS)
			_, _ = w.Write(jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(fake.Close)
	evE, _ := fresh(t)
	evD, _ = fresh(t)

	by := "integrity established by steward " + hs.URL
	tests := []verifyCase{{
		name:   "fresh evidence",
		args:   []string{"verify", "--steward", hs.URL, "--insecure", "-"},
		stdin:  evA,
		stdout: []string{by, "none: NOT confidential", verifyRuntimeVersion, k.inputs.WorkloadDigest, "INSECURE", "plain http (--insecure)"},
		stderr: []string{"WARNING"},
	}, {
		name:   "replayed evidence",
		args:   []string{"verify", "--steward", hs.URL, "--insecure", "-"},
		stdin:  evA,
		code:   1,
		stderr: []string{"(check " + steward.CheckNonce + ")"},
	}, {
		name:   "with the nonce",
		args:   []string{"verify", "--steward", hs.URL, "--insecure", "--nonce", hex.EncodeToString(nonceB), "-"},
		stdin:  evB,
		stdout: []string{by},
	}, {
		name:   "with another nonce",
		args:   []string{"verify", "--steward", hs.URL, "--insecure", "--nonce", "00ff", "-"},
		stdin:  evC,
		code:   1,
		stderr: []string{"binds nonce", hs.URL},
	}, {
		name:  "json",
		args:  []string{"verify", "--steward", hs.URL, "--insecure", "--json", "-"},
		stdin: evD,
		check: func(t *testing.T, stdout string) {
			var a attestation.Assertions
			if err := json.Unmarshal([]byte(stdout), &a); err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			if a.TEE != attestation.TEENone || !a.Insecure || a.WorkloadDigest != k.inputs.WorkloadDigest {
				t.Errorf("assertions %+v, want tee none, insecure, the Keep's workload", a)
			}
		},
	}, {
		name:   "evidence without a nonce",
		args:   []string{"verify", "--steward", hs.URL, "--insecure", "-"},
		stdin:  k.evidence(t, attestation.None{}, nil, nil),
		code:   1,
		stderr: []string{"(check " + steward.CheckNonce + ")"},
	}, {
		name:   "evidence with a nonce the steward did not issue",
		args:   []string{"verify", "--steward", hs.URL, "--insecure", "-"},
		stdin:  k.evidence(t, attestation.None{}, []byte("not the steward's nonce"), nil),
		code:   1,
		stderr: []string{"(check " + steward.CheckNonce + ")"},
	}, {
		name:   "a fake steward's answer about other evidence",
		args:   []string{"verify", "--steward", fake.URL, "--insecure", "-"},
		stdin:  evE,
		code:   1,
		stderr: []string{"not the evidence sent"},
	}, {
		name:   "plain http without --insecure",
		args:   []string{"verify", "--steward", hs.URL, "-"},
		stdin:  evE,
		code:   2,
		stderr: []string{"plain http", "--insecure"},
	}, {
		name:   "https without the steward's CA",
		args:   []string{"verify", "--steward", "https://steward.example", "-"},
		stdin:  evE,
		code:   2,
		stderr: []string{"needs --steward-ca"},
	}, {
		name:   "steward down",
		args:   []string{"verify", "--steward", down, "--insecure", "--timeout", "10s", "-"},
		stdin:  k.evidence(t, attestation.None{}, nil, nil),
		code:   1,
		stderr: []string{closed.Addr().String()},
	}}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

// TestReferenceValuesMeasurement: --measurement records the launch
// measurement of a node image holding the binaries given; a malformed one
// is refused by name.
func TestReferenceValuesMeasurement(t *testing.T) {
	dir := t.TempDir()
	bin := writeVerifyFile(t, dir, "keep", []byte("runtime binary"))
	digest, err := verify.FileDigest(bin)
	if err != nil {
		t.Fatal(err)
	}
	mrtd, rtmr := strings.Repeat("ab", 48), strings.Repeat("cd", 48)
	out := filepath.Join(dir, "ref.json")
	verifyCase{args: []string{"reference-values", "-o", out, "--measurement", "sev-snp:" + snptest.Measurement(), "--measurement", "tdx:" + mrtd + ":," + rtmr, bin},
		stderr: []string{"1 runtime(s), 2 launch measurement(s)"}}.run(t)
	ref, err := verify.LoadReferenceValues(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref.Measurements) != 2 || ref.Measurements[0].TEE != "sev-snp" || ref.Measurements[0].Runtimes[0] != digest ||
		ref.Measurements[1].Measurement != mrtd || len(ref.Measurements[1].RTMRs) != 2 || ref.Measurements[1].RTMRs[1] != rtmr {
		t.Errorf("measurements %+v", ref.Measurements)
	}
	verifyCase{args: []string{"reference-values", "--measurement", "sev-snp:12", bin}, code: 2, stderr: []string{"96 lowercase hex"}}.run(t)
}
