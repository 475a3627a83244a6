package test

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/internal/testpki"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// forEachSimulatedDaemon runs f on each daemon kind, each started with our
// shim built to simulate SEV-SNP (simulateBinDir), whose runtime the test
// stewards' reference values know.
func forEachSimulatedDaemon(t *testing.T, f func(t *testing.T, d *Daemon)) {
	bin := simulateBinDir(t)
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			f(t, startDaemonWith(t, kind, bin, []string{"ENARX_SIMULATE_TEE=sev-snp"}))
		})
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ctrResult is the end of a `ctr run` run in the background.
type ctrResult struct {
	stdout, stderr string
	exit           int
}

// bgRun is a `ctr run` in the background.
type bgRun struct {
	done   chan ctrResult
	result *ctrResult
}

// wait returns the run's result once ctr has returned, or false after
// timeout.
func (r *bgRun) wait(timeout time.Duration) (ctrResult, bool) {
	if r.result == nil {
		select {
		case res := <-r.done:
			r.result = &res
		case <-time.After(timeout):
			return ctrResult{}, false
		}
	}
	return *r.result, true
}

// runWasmBackground starts runWasm on a goroutine and waits until the task
// runs.
func runWasmBackground(t *testing.T, d *Daemon, ns string, opts []string, ref, id string, args ...string) *bgRun {
	t.Helper()
	r := &bgRun{done: make(chan ctrResult, 1)}
	go func() {
		stdout, stderr, exit := runWasm(t, d, ns, opts, ref, id, args...)
		r.done <- ctrResult{stdout, stderr, exit}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for taskStatus(t, d, ns, id) != "RUNNING" {
		if res, ended := r.wait(0); ended {
			t.Fatalf("ctr run %s ended before its task ran: exit %d, stderr %s", id, res.exit, res.stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s never ran", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// stopTask kills a task left running, waits for its ctr run to end and
// for its shim and Keep to be gone.
func stopTask(t *testing.T, d *Daemon, ns, id string, r *bgRun) {
	t.Helper()
	if _, ended := r.wait(0); !ended {
		d.ctr(t, ns, "tasks", "kill", "-s", "SIGKILL", id)
		if _, ended := r.wait(30 * time.Second); !ended {
			t.Errorf("ctr run %s did not end after SIGKILL", id)
		}
	}
	assertNoLeftovers(t, id)
}

// stewardRoots is a pool holding only the steward's CA.
func stewardRoots(t *testing.T, st *steward) *x509.CertPool {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(st.DataDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("steward ca.crt holds no certificate")
	}
	return roots
}

// attestedClient is a TLS client configuration, from tlssock, that trusts
// only roots and identifies the server by its attestation: the Keep's
// certificate carries no names. groups empty means tlssock's defaults
// (X25519MLKEM768 first). The assertions of the last handshake land in *got.
func attestedClient(t *testing.T, roots *x509.CertPool, got **attestation.Assertions, groups ...string) *tls.Config {
	t.Helper()
	cfg, err := (&tlssock.Config{RootCAs: roots, Groups: groups, VerifyAttestation: func(a *attestation.Assertions) error {
		*got = a
		return nil
	}}).TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// httpsGet sends GET path over a TLS connection made with cfg and returns
// the connection's state and the response body.
func httpsGet(addr string, cfg *tls.Config, path string) (tls.ConnectionState, string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	state := conn.ConnectionState()
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: keep\r\n\r\n", path)
	b, err := io.ReadAll(conn)
	if err != nil {
		return state, "", err
	}
	_, body, _ := strings.Cut(string(b), "\r\n\r\n")
	return state, body, nil
}

// TestNetworkTLSListen: a Go wasip1 HTTP server in a Keep, its listening
// socket declared in Enarx.toml with prot "tls": the Keep terminates TLS with
// the certificate its Steward issued. A client trusting only the Steward's
// CA gets TLS 1.3 with X25519MLKEM768 and reads the Keep's assertions from
// the certificate; a classical client falls back to X25519; a client
// trusting another CA fails. The same through the enarx.dev/listen.*
// annotation without a Steward gives a self-signed certificate carrying the
// Keep's evidence, reported as such. Without --net-host the socket lives in
// the container's own network namespace, out of the host's reach.
func TestNetworkTLSListen(t *testing.T) {
	st := startSteward(t, "allow_test_roots = true\n")
	policy := nodePolicy(t, map[string]*steward{"test": st})
	roots := stewardRoots(t, st)
	forEachSimulatedDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		wasm := buildGoWasm(t, "httpserver")
		port := freePort(t)
		toml := fmt.Sprintf("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n\n[[files]]\nkind = \"listen\"\nname = \"https\"\naddr = \"127.0.0.1\"\nport = %d\nprot = \"tls\"\n", port)
		ref := importFixtureImage(t, d, ns, "docker.io/enarx-test/httpserver-toml:latest", "httpserver",
			tarFile{Name: "Enarx.toml", Mode: 0o644, Data: []byte(toml)})
		id := uniqueID("https")
		done := runWasmBackground(t, d, ns, append([]string{"--net-host"}, withSteward(policy, "test")...), ref, id)
		defer stopTask(t, d, ns, id, done)
		addr := fmt.Sprintf("127.0.0.1:%d", port)

		labels := containerLabels(t, d, ns, id)
		if want := "https listen tls " + addr; labels[enarxdev.LabelSockets] != want {
			t.Errorf(enarxdev.LabelSockets+" = %q, want %q", labels[enarxdev.LabelSockets], want)
		}
		if labels[enarxdev.LabelTLSIdentity] != "steward" {
			t.Errorf(enarxdev.LabelTLSIdentity+" = %q, want steward", labels[enarxdev.LabelTLSIdentity])
		}

		// Post-quantum by default, trusting only the Steward's CA.
		var a *attestation.Assertions
		state, body, err := httpsGet(addr, attestedClient(t, roots, &a), "/pq")
		if err != nil {
			t.Fatalf("TLS client trusting the steward CA: %v", err)
		}
		if state.Version != tls.VersionTLS13 || state.CurveID != tls.X25519MLKEM768 {
			t.Errorf("negotiated %s with %s, want TLS 1.3 with X25519MLKEM768", tls.VersionName(state.Version), state.CurveID)
		}
		if a == nil || a.TEE != attestation.TEESEVSNP || a.WorkloadDigest != fileDigest(t, wasm) || a.RuntimeVersion != simulateVersion {
			t.Errorf("assertions %+v: want sev-snp, the workload's digest %s and runtime %s", a, fileDigest(t, wasm), simulateVersion)
		}
		if body != "hello from /pq\n" {
			t.Errorf("body %q, want %q", body, "hello from /pq\n")
		}

		// The same check from the command line, as a relying party runs it.
		enarx := filepath.Join(requireBinaries(t), enarxBinary)
		ca := filepath.Join(st.DataDir, "ca.crt")
		out, err := exec.Command(enarx, "verify", "--tls", addr, "--steward-ca", ca, "--workload", fileDigest(t, wasm)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "X25519MLKEM768") || !strings.Contains(string(out), "sev-snp") || !strings.Contains(string(out), fileDigest(t, wasm)) {
			t.Errorf("enarx verify --tls: %v\n%s", err, out)
		}
		out, err = exec.Command(enarx, "verify", "--tls", addr, "--steward-ca", ca, "--workload", "sha256:"+strings.Repeat("0", 64)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "runs workload "+fileDigest(t, wasm)) {
			t.Errorf("enarx verify --tls of another workload: %v\n%s; want a refusal naming the workload it runs", err, out)
		}

		// A client offering only classical groups still connects.
		state, body, err = httpsGet(addr, attestedClient(t, roots, &a, "X25519"), "/classical")
		if err != nil || state.CurveID != tls.X25519 || body != "hello from /classical\n" {
			t.Errorf("classical client: %v, group %s, body %q; want X25519 and the page", err, state.CurveID, body)
		}

		// A client that trusts another CA fails, and the Keep serves on.
		otherRoots := testpki.NewCA(t, "other CA").Pool
		if _, _, err := httpsGet(addr, attestedClient(t, otherRoots, &a), "/"); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("client trusting another CA: %v, want a certificate error", err)
		}
		if _, body, err := httpsGet(addr, attestedClient(t, roots, &a), "/again"); err != nil || body != "hello from /again\n" {
			t.Errorf("after a failed handshake: %v, %q", err, body)
		}

		// The annotation form, without a Steward: self-signed, with the
		// Keep's evidence in the certificate.
		port2 := freePort(t)
		plain := importWasmImage(t, d, ns, "docker.io/enarx-test/httpserver:latest", wasm, false)
		id2 := uniqueID("selfsigned")
		done2 := runWasmBackground(t, d, ns, []string{"--net-host", "--annotation", fmt.Sprintf(enarxdev.AnnotationListenPrefix+"web=tls://127.0.0.1:%d", port2)}, plain, id2, "/app.wasm", "web")
		defer stopTask(t, d, ns, id2, done2)
		if l := containerLabels(t, d, ns, id2); l[enarxdev.LabelTLSIdentity] != "self-signed" {
			t.Errorf("without a steward: "+enarxdev.LabelTLSIdentity+" = %q, want self-signed", l[enarxdev.LabelTLSIdentity])
		}
		state, body, err = httpsGet(fmt.Sprintf("127.0.0.1:%d", port2), &tls.Config{InsecureSkipVerify: true}, "/self")
		if err != nil || body != "hello from /self\n" {
			t.Fatalf("self-signed Keep: %v, body %q", err, body)
		}
		leaf := state.PeerCertificates[0]
		if leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) != nil || !strings.Contains(leaf.Subject.CommonName, "self-signed") {
			t.Errorf("certificate %q is not self-signed", leaf.Subject)
		}
		if ev, err := attestation.CertificateEvidence(leaf); err != nil || ev.TEE != attestation.TEESEVSNP || ev.Inputs.WorkloadDigest != fileDigest(t, wasm) {
			t.Errorf("self-signed certificate's evidence: %v, %+v", err, ev)
		}

		// Without --net-host the Keep's socket is in the container's own
		// network namespace: the host cannot reach it.
		port3 := freePort(t)
		id3 := uniqueID("isolated")
		done3 := runWasmBackground(t, d, ns, []string{"--annotation", fmt.Sprintf(enarxdev.AnnotationListenPrefix+"web=tcp://127.0.0.1:%d", port3)}, plain, id3, "/app.wasm", "web")
		defer stopTask(t, d, ns, id3, done3)
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port3), 2*time.Second); err == nil {
			c.Close()
			t.Errorf("the host reached a Keep socket in the container's network namespace")
		}

		// The workload ends itself: its status is the task's.
		if _, body, err := httpsGet(addr, attestedClient(t, roots, &a), "/exit"); err != nil || body != "bye\n" {
			t.Errorf("/exit: %v, %q", err, body)
		}
		if r, ended := done.wait(30 * time.Second); !ended {
			t.Error("the workload did not exit after /exit")
		} else if r.exit != 7 {
			t.Errorf("ctr run: exit %d, want 7; stderr %s", r.exit, r.stderr)
		}
		assertNoLeftovers(t, id)
	})
}

// TestNetworkConnect: connect sockets reach loopback servers over TLS
// (trusting the CA of the Keep's own Steward) and TCP, declared by
// annotation or in Enarx.toml; a server whose certificate the Keep cannot
// verify fails the container's creation naming the socket; and the workload
// cannot reach an address it did not declare.
func TestNetworkConnect(t *testing.T) {
	st := startSteward(t, "allow_test_roots = true\n")
	policy := nodePolicy(t, map[string]*steward{"test": st})
	ca := stewardCA(t, st)
	hello := func(prefix string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s\n", prefix, r.URL.Path)
		})
	}
	tlsServer := httptest.NewUnstartedServer(hello("tls"))
	serverCert, _, _ := ca.Issue(t, "loopback server", nil)
	tlsServer.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	tlsServer.StartTLS()
	defer tlsServer.Close()
	plainServer := httptest.NewServer(hello("tcp"))
	defer plainServer.Close()
	untrusted := httptest.NewTLSServer(hello("untrusted"))
	defer untrusted.Close()
	tlsAddr := tlsServer.Listener.Addr().String()
	plainAddr := plainServer.Listener.Addr().String()
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)

	forEachSimulatedDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/netclient:latest", buildGoWasm(t, "netclient"), false)
		for _, c := range []struct {
			name, annotation, socket, want string
		}{
			{"tls", enarxdev.AnnotationConnectPrefix + "api=tls://" + tlsAddr, "api", "200 OK tls /tls-path\n"},
			{"tcp", enarxdev.AnnotationConnectPrefix + "plain=tcp://" + plainAddr, "plain", "200 OK tcp /tcp-path\n"},
		} {
			t.Run(c.name, func(t *testing.T) {
				id := uniqueID("connect")
				stdout, stderr, exit := runWasm(t, d, ns, append(append([]string{"--net-host"}, withSteward(policy, "test")...), "--annotation", c.annotation), ref, id,
					"/app.wasm", c.socket, "/"+c.name+"-path", untrusted.Listener.Addr().String())
				lines := readLines(stdout)
				if exit != 0 || len(lines) != 2 || lines[0]+"\n" != c.want {
					t.Fatalf("exit %d, stdout %q, stderr %s; want %q", exit, stdout, stderr, c.want)
				}
				if !strings.HasPrefix(lines[1], "undeclared "+untrusted.Listener.Addr().String()+": refused") {
					t.Errorf("an undeclared address: %q, want refused", lines[1])
				}
			})
		}

		// Enarx.toml form: name defaults to the host.
		toml := fmt.Sprintf("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n\n[[files]]\nkind = \"connect\"\nhost = \"127.0.0.1\"\nport = %s\n", tlsPort)
		tomlRef := importFixtureImage(t, d, ns, "docker.io/enarx-test/netclient-toml:latest", "netclient",
			tarFile{Name: "Enarx.toml", Mode: 0o644, Data: []byte(toml)})
		stdout, stderr, exit := runWasm(t, d, ns, append([]string{"--net-host"}, withSteward(policy, "test")...), tomlRef, uniqueID("connect-toml"), "/app.wasm", "127.0.0.1", "/toml")
		if exit != 0 || stdout != "200 OK tls /toml\n" {
			t.Errorf("Enarx.toml connect: exit %d, stdout %q, stderr %s", exit, stdout, stderr)
		}

		// A server the Keep cannot verify: the container is not created.
		id := uniqueID("connect-untrusted")
		_, stderr, exit = runWasm(t, d, ns, append(append([]string{"--net-host"}, withSteward(policy, "test")...), "--annotation", enarxdev.AnnotationConnectPrefix+"bad=tls://"+untrusted.Listener.Addr().String()), ref, id, "/app.wasm", "bad")
		if exit == 0 || !strings.Contains(stderr, "bad") || !strings.Contains(stderr, "certificate") {
			t.Errorf("connect to an untrusted server: exit %d, stderr %q; want a failure naming the socket and the certificate", exit, stderr)
		}
		d.ctr(t, ns, "containers", "rm", id)
		assertNoLeftovers(t, id)
	})
}

// stewardCA is the steward's CA, its key and certificate read from its data
// dir, to certify a loopback server that Keeps of that steward trust.
func stewardCA(t *testing.T, st *steward) *testpki.CA {
	t.Helper()
	keyPEM, err := os.ReadFile(filepath.Join(st.DataDir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("steward ca.key is not PEM")
	}
	var key crypto.Signer
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		key, _ = k.(crypto.Signer)
	} else if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		key = k
	}
	if key == nil {
		t.Fatalf("steward ca.key: unknown key type %s", block.Type)
	}
	certPEM, err := os.ReadFile(filepath.Join(st.DataDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return testpki.FromCertificate(t, readChain(t, certPEM)[0].Raw, key)
}
