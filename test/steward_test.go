package test

import (
	"bufio"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/snp/snptest"
	"github.com/enarx/containerd-shim-enarx/enarxdev"
)

// steward is an `enarx steward` process on loopback.
type steward struct {
	URL     string
	DataDir string
	// Policy is the verifier policy it runs with.
	Policy string
}

// startSteward runs `enarx steward` on a free loopback port with policy (a
// verifier policy document) and reference values for the simulate shim. It
// is stopped by PID when the test ends.
func startSteward(t *testing.T, policy string) *steward {
	t.Helper()
	return startStewardWith(t, policy, true)
}

// startStewardWith is startSteward; measured says whether its reference
// values list the simulated node's launch measurement for the runtime.
func startStewardWith(t *testing.T, policy string, measured bool) *steward {
	t.Helper()
	bin := requireBinaries(t)
	dir := t.TempDir()
	ref := filepath.Join(dir, "reference-values.json")
	// The simulated SEV-SNP node's launch measurement holds the runtime.
	args := []string{"reference-values", "--version", simulateVersion, "-o", ref}
	if measured {
		args = append(args, "--measurement", "sev-snp:"+snptest.Measurement())
	}
	out, err := exec.Command(filepath.Join(bin, enarxBinary), append(args, filepath.Join(simulateBinDir(t), keepBinary))...).CombinedOutput()
	if err != nil {
		t.Fatalf("enarx reference-values: %v: %s", err, out)
	}
	st := &steward{DataDir: filepath.Join(dir, "steward"), Policy: filepath.Join(dir, "policy.toml")}
	if err := os.WriteFile(st.Policy, []byte(policy+fmt.Sprintf("\nreference_values = %q\n", ref)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, enarxBinary), "steward", "--data-dir", st.DataDir, "--listen", "127.0.0.1:0", "--policy", st.Policy)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("enarx steward log:\n%s", stderr.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
	}()
	select {
	case u, ok := <-line:
		if !ok || !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Fatalf("enarx steward printed %q, want its URL; stderr:\n%s", u, stderr.String())
		}
		st.URL = u
	case <-exited:
		t.Fatalf("enarx steward exited: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("enarx steward did not print its URL in 30s: %s", stderr.String())
	}
	return st
}

// nodePolicy writes a node policy that lists the stewards by name (their
// URL, their CA pinned, plain http allowed: they are on loopback) and
// returns its path, for ctr run --runtime-config-path.
func nodePolicy(t *testing.T, stewards map[string]*steward) string {
	t.Helper()
	var b strings.Builder
	for name, st := range stewards {
		fmt.Fprintf(&b, "[stewards.%s]\nurl = %q\nca = %q\ninsecure_http = true\n\n", name, st.URL, filepath.Join(st.DataDir, "ca.crt"))
	}
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// withSteward are the ctr run options of a container that gets its
// certificate from the steward named name in the node policy at policy.
func withSteward(policy, name string) []string {
	return []string{"--runtime-config-path", policy, "--annotation", enarxdev.AnnotationSteward + "=" + name}
}

// readChain parses a PEM certificate chain.
func readChain(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var chain []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("certificate: %v", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		t.Fatal("no PEM certificate")
	}
	return chain
}

// checkKeepCertificate verifies chain's leaf the way a TLS client that trusts
// only the steward's CA does, and returns the assertions it carries.
func checkKeepCertificate(t *testing.T, st *steward, chain []*x509.Certificate) *attestation.Assertions {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(st.DataDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("the Keep's certificate does not verify against the steward's CA alone: %v", err)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{}); err == nil {
		t.Error("the Keep's certificate verifies against the system roots")
	}
	a, err := attestation.CertificateAssertions(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestStewardCertificate: a Keep on the simulated SEV-SNP backend whose
// container names a steward gets a certificate at start. The labels name it,
// the workload reads it at /run/enarx/certificate.pem, it chains to the
// steward's CA alone, and it carries the verified assertions: the TEE, the
// runtime version the reference values give, the workload. `enarx attest |
// enarx verify` works as one pipe, locally and through the steward. A steward
// whose policy refuses the evidence makes `ctr run` fail with the check.
func TestStewardCertificate(t *testing.T) {
	bin := simulateBinDir(t)
	st := startSteward(t, "allow_test_roots = true\n")
	strict := startSteward(t, "")
	// Test roots allowed, but no reference launch measurement: a guest's
	// runtime digest is only what it says of itself.
	unmeasured := startStewardWith(t, "allow_test_roots = true\n", false)
	policy := nodePolicy(t, map[string]*steward{"test": st, "strict": strict, "unmeasured": unmeasured})
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			d := startDaemonWith(t, kind, bin, []string{"ENARX_SIMULATE_TEE=sev-snp"})
			ns := newNamespace(t, d)
			sleep := buildGoWasm(t, "sleep")
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", sleep, false)
			id := uniqueID("certified")
			d.mustCtr(t, ns, append(append([]string{"run", "-d", "--runtime", runtimeEnarx}, withSteward(policy, "test")...), ref, id, "/app.wasm", "1h")...)
			defer func() {
				d.ctr(t, ns, "tasks", "kill", "-s", "SIGKILL", id)
				waitStatus(t, d, ns, id, "STOPPED")
				d.ctr(t, ns, "tasks", "rm", id)
				d.ctr(t, ns, "containers", "rm", id)
			}()
			labels := containerLabels(t, d, ns, id)
			pemChain, err := os.ReadFile(labels[enarxdev.LabelCertificatePath])
			if err != nil {
				t.Fatalf("certificate file (labels %v): %v", labels, err)
			}
			chain := readChain(t, pemChain)
			if got := hex.EncodeToString(chain[0].SerialNumber.Bytes()); labels[enarxdev.LabelCertificateSerial] != got {
				t.Errorf(enarxdev.LabelCertificateSerial+" = %q, certificate serial %s", labels[enarxdev.LabelCertificateSerial], got)
			}
			if got := chain[0].NotAfter.UTC().Format(time.RFC3339); labels[enarxdev.LabelCertificateNotAfter] != got {
				t.Errorf(enarxdev.LabelCertificateNotAfter+" = %q, certificate %s", labels[enarxdev.LabelCertificateNotAfter], got)
			}
			if labels[enarxdev.LabelSteward] != st.URL {
				t.Errorf(enarxdev.LabelSteward+" = %q, want %s", labels[enarxdev.LabelSteward], st.URL)
			}
			a := checkKeepCertificate(t, st, chain)
			if a.TEE != attestation.TEESEVSNP || a.RuntimeVersion != simulateVersion || a.WorkloadDigest != fileDigest(t, sleep) ||
				a.RuntimeDigest != fileDigest(t, filepath.Join(bin, keepBinary)) || !a.Insecure {
				t.Errorf("assertions %+v: want sev-snp, runtime %s, the workload's digest, insecure (test roots)", a, simulateVersion)
			}

			// One pipe: fresh evidence with the steward's nonce, verified
			// by the steward; and locally with the same policy.
			enarx := filepath.Join(requireBinaries(t), enarxBinary)
			attest := fmt.Sprintf("%s attest --state %s -n %s", enarx, d.State, ns)
			for _, pipe := range []string{
				fmt.Sprintf("%s --steward %s %s | %s verify --steward %s --insecure -", attest, st.URL, id, enarx, st.URL),
				fmt.Sprintf("%s --nonce cafe %s | %s verify --nonce cafe --policy %s -", attest, id, enarx, st.Policy),
			} {
				out, err := exec.Command("bash", "-o", "pipefail", "-c", pipe).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "sev-snp") || !strings.Contains(string(out), simulateVersion) {
					t.Errorf("%s: %v\n%s", pipe, err, out)
				}
			}
			// Without the opt-in for test roots, verification fails and says why.
			out, err := exec.Command("bash", "-o", "pipefail", "-c",
				fmt.Sprintf("%s %s | %s verify --reference-values %s -", attest, id, enarx, filepath.Join(filepath.Dir(st.Policy), "reference-values.json"))).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "snp.chain") {
				t.Errorf("enarx verify of test-root evidence with the default policy: %v\n%s; want a failed snp.chain check", err, out)
			}

			// The workload reads its certificate.
			catfile := importWasmImage(t, d, ns, "docker.io/enarx-test/catfile:latest", buildGoWasm(t, "catfile"), false)
			stdout, stderr, exit := runWasm(t, d, ns, withSteward(policy, "test"), catfile, uniqueID("catcert"), "/app.wasm", "/run/enarx/certificate.pem")
			if exit != 0 {
				t.Fatalf("catfile: exit %d: %s", exit, stderr)
			}
			if a := checkKeepCertificate(t, st, readChain(t, []byte(stdout))); a.WorkloadDigest == fileDigest(t, sleep) {
				t.Error("the workload read another Keep's certificate")
			}

			// A steward that refuses the evidence: the Keep is not created.
			refused := uniqueID("refused")
			_, stderr, exit = runWasm(t, d, ns, withSteward(policy, "strict"), ref, refused, "/app.wasm", "1s")
			if exit == 0 || !strings.Contains(stderr, "snp.chain") {
				t.Errorf("ctr run with a steward that refuses test roots: exit %d, stderr %q; want a failure naming snp.chain", exit, stderr)
			}
			d.ctr(t, ns, "containers", "rm", refused)

			// A steward whose reference values hold no launch measurement
			// for the runtime certifies nothing.
			unmeasuredID := uniqueID("unmeasured")
			_, stderr, exit = runWasm(t, d, ns, withSteward(policy, "unmeasured"), ref, unmeasuredID, "/app.wasm", "1s")
			if exit == 0 || !strings.Contains(stderr, "check runtime.measurement") {
				t.Errorf("ctr run with a steward that knows no launch measurement: exit %d, stderr %q; want a failure naming runtime.measurement", exit, stderr)
			}
			d.ctr(t, ns, "containers", "rm", unmeasuredID)
		})
	}
}

// TestStewardOnlyFromTheNode: a container cannot make its Keep post to an
// address of its choosing: an annotation naming a URL (here a listener on
// the node's loopback, as a node-local service would be) is refused at
// create, on a node whose policy lists stewards and on one that lists none,
// and nothing connects to that address.
func TestStewardOnlyFromTheNode(t *testing.T) {
	bin := simulateBinDir(t)
	st := startSteward(t, "allow_test_roots = true\n")
	policy := nodePolicy(t, map[string]*steward{"test": st})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var connections atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			connections.Add(1)
			c.Close()
		}
	}()
	target := "http://" + l.Addr().String() + "/internal"
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			d := startDaemonWith(t, kind, bin, []string{"ENARX_SIMULATE_TEE=sev-snp"})
			ns := newNamespace(t, d)
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", buildGoWasm(t, "hello"), false)
			for _, opts := range [][]string{
				{"--runtime-config-path", policy, "--annotation", enarxdev.AnnotationSteward + "=" + target},
				{"--annotation", enarxdev.AnnotationSteward + "=" + target},
			} {
				id := uniqueID("ssrf")
				_, stderr, exit := runWasm(t, d, ns, opts, ref, id)
				if exit == 0 || !strings.Contains(stderr, "names no steward of the node policy") {
					t.Errorf("ctr run %v: exit %d, stderr %q; want a refusal", opts, exit, stderr)
				}
				d.ctr(t, ns, "containers", "rm", id)
			}
			if n := connections.Load(); n != 0 {
				t.Errorf("%d connections to the address the annotation named", n)
			}
		})
	}
}
