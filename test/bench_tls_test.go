package test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

const (
	envBenchTLSClients = "BENCH_TLS_CLIENTS"
	envBenchTLSSeconds = "BENCH_TLS_SECONDS"
)

// groupTLS is the group of BenchmarkTLSServer's results.
const groupTLS = "tls"

// Cases of the TLS server benchmark.
const (
	caseTLSKeep   = "enarx-keep"
	caseTLSNative = "native"
	// caseTLSKeepInstances is the Keep running one instance of the server
	// per core (enarx.dev/instances), as the native server's Go runtime
	// uses every core.
	caseTLSKeepInstances = "enarx-keep-instances"
)

// Modes of the TLS server benchmark's load generator, the first word of a
// result's Param.
const (
	tlsKeepAlive = "keep-alive" // one connection per client, many requests
	tlsNewConn   = "new-conn"   // a new connection, so a full handshake, per request
	// tlsWork is keep-alive with requests that each take tlsWorkSteps of
	// CPU work in the server (test/fixtures/httpserver's /work, about 7 ms
	// natively or in wasm): what several instances of a server in a Keep
	// are for.
	tlsWork      = "work"
	tlsWorkSteps = 5_000_000
)

// tlsDaemon is the daemon the TLS server benchmark runs on: the Keep's TLS
// termination does not depend on the daemon, one is enough.
const tlsDaemon = containerd24

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// tlsParam is a result's Param: the mode and the number of clients.
func tlsParam(mode string, clients int) string {
	if clients == 1 {
		return mode + " 1 client"
	}
	return fmt.Sprintf("%s %d clients", mode, clients)
}

// BenchmarkTLSServer measures an HTTPS server: test/fixtures/httpserver
// built for wasip1 in a Keep on containerd 2.4 (`ctr run -d --net-host`,
// annotation enarx.dev/listen.https=tls://127.0.0.1:PORT, no Steward: the
// Keep terminates TLS with tlssock's defaults and a self-signed ECDSA P-256
// certificate) against the same source built natively, run as a plain
// process that terminates TLS itself with crypto/tls (TLS 1.3, Go's default
// groups, a fresh self-signed ECDSA P-256 certificate), its listener on
// 127.0.0.1 passed as descriptor 3.
//
// The load generator is in the test process: for each client count of
// BENCH_TLS_CLIENTS (default 1,8), BENCH_TLS_SECONDS (default 5) seconds per
// case and server, in one-second rounds in which the servers take turns
// (who goes first rotating), so that drift hits them alike:
//
//   - keep-alive: each client an http.Client of its own, one TLS handshake
//     per round and then requests back to back on that connection;
//   - new-conn: each request a new TCP connection and a full TLS handshake
//     (no session resumption: the clients keep no session cache), so the
//     rate is handshakes/s;
//   - work (more than 1 client only): keep-alive, each request GET /work,
//     tlsWorkSteps of CPU work in the server.
//
// The servers: the native one, the Keep with one instance of the server
// (the default), and the Keep with one instance per core
// (enarx.dev/instances).
//
// It records requests/s, the p50, p90 and p99 latency of a request and the
// server's CPU time per request (/proc/PID/stat of the Keep process, of the
// native process). The clients skip chain verification (the Keep's
// certificate is self-signed and names no host) but pin the server's leaf
// certificate, read before the run. Every response must be HTTP/1.1 over
// TLS 1.3 with X25519MLKEM768 and carry the body its path asks for: any
// other group or version fails the benchmark; other failures are counted.
func BenchmarkTLSServer(b *testing.B) {
	clientCounts := envInts(b, envBenchTLSClients, []int{1, 8})
	seconds := envInt(b, envBenchTLSSeconds, 5)

	d := sharedDaemon(b, tlsDaemon)
	ns := newNamespace(b, d)
	dir := benchDir(b)

	// The native server, with its own certificate.
	native := buildNative(b, "httpserver")
	nativeLeaf := writeTLSServerCert(b, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	lnFile, err := ln.(*net.TCPListener).File()
	ln.Close() // lnFile holds the socket
	if err != nil {
		b.Fatal(err)
	}
	nativeAddr := ln.Addr().String()
	nativeLog, err := os.Create(filepath.Join(dir, "httpserver.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer nativeLog.Close()
	cmd := exec.Command(native, "https")
	cmd.ExtraFiles = []*os.File{lnFile} // descriptor 3
	cmd.Env = append(os.Environ(), "FD_NAMES=stdin:stdout:stderr:https",
		"TLS_CERT="+filepath.Join(dir, "cert.pem"), "TLS_KEY="+filepath.Join(dir, "key.pem"))
	cmd.Stdout, cmd.Stderr = nativeLog, nativeLog
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	lnFile.Close()
	nativePID := cmd.Process.Pid
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()

	type server struct {
		name, addr string
		pid        int
		leaf       []byte
	}
	servers := []server{{caseTLSNative, nativeAddr, nativePID, nativeLeaf}}

	// The Keeps, their TLS listen socket declared by annotation: one
	// instance of the server (the default), and one per core.
	ref := importWasmImage(b, d, ns, "docker.io/enarx-bench/httpserver:latest", buildGoWasm(b, "httpserver"), false)
	cores := min(runtime.NumCPU(), workload.MaxInstances)
	var ids []string
	var keepPIDs []int
	defer func() {
		stopContainers(b, d, ns, ids)
		for _, pid := range keepPIDs {
			if processAlive(pid) {
				b.Errorf("the Keep (pid %d) outlived its container", pid)
			}
		}
	}()
	for _, k := range []struct {
		name string
		opts []string
	}{
		{caseTLSKeep, nil},
		{caseTLSKeepInstances, []string{"--annotation", fmt.Sprintf("%s=%d", enarxdev.AnnotationInstances, cores)}},
	} {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
		id := uniqueID(k.name)
		ids = append(ids, id)
		args := append([]string{"run", "-d", "--runtime", runtimeEnarx, "--net-host",
			"--annotation", enarxdev.AnnotationListenPrefix + "https=tls://" + addr}, k.opts...)
		d.mustCtr(b, ns, append(args, ref, id, "/app.wasm", "https")...)
		pid := taskPIDs(b, d, ns)[id]
		if pid == 0 {
			b.Fatalf("%s: container %s is not running\n%s", d.Name, id, d.LogTail(20))
		}
		keepPIDs = append(keepPIDs, pid)
		servers = append(servers, server{k.name, addr, pid, nil})
	}

	for i := range servers {
		s := &servers[i]
		leaf, err := waitTLSServer(s.addr, 60*time.Second)
		if err != nil {
			logs, _ := os.ReadFile(nativeLog.Name())
			b.Fatalf("%s server at %s: %v\nnative server's log: %s\n%s", s.name, s.addr, err, logs, d.LogTail(20))
		}
		if s.leaf != nil && !bytes.Equal(leaf.Raw, s.leaf) {
			b.Fatalf("%s server at %s presents another certificate than its own", s.name, s.addr)
		}
		if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			b.Fatalf("%s server's certificate has a %T key, want ECDSA P-256", s.name, leaf.PublicKey)
		}
		s.leaf = leaf.Raw
		// Unmeasured: warm each server, in both modes of a request.
		for _, mode := range []string{tlsKeepAlive, tlsNewConn} {
			if l := runTLSLoad(s.addr, s.leaf, slices.Max(clientCounts), mode, 500*time.Millisecond); l.wrong > 0 || len(l.requests) == 0 {
				b.Fatalf("%s server, warm-up %s: %d requests, %d failed, %d wrong: %v", s.name, mode, len(l.requests), l.failures, l.wrong, errors.Join(l.errs...))
			}
		}
	}

	for _, mode := range []string{tlsKeepAlive, tlsNewConn, tlsWork} {
		for _, clients := range clientCounts {
			if mode == tlsWork && clients == 1 {
				continue // one request at a time: the same for any number of instances
			}
			param := tlsParam(mode, clients)
			// One-second rounds, the servers taking turns and the first
			// of each round rotating, so that drift hits them alike.
			loads := make([]tlsLoad, len(servers))
			cpu := make([]float64, len(servers))
			for round := 0; round < seconds; round++ {
				for k := range servers {
					i := (k + round) % len(servers)
					s := servers[i]
					cpu0, err := processCPU(s.pid)
					if err != nil {
						b.Fatalf("%s server (pid %d): %v", s.name, s.pid, err)
					}
					l := runTLSLoad(s.addr, s.leaf, clients, mode, time.Second)
					cpu1, err := processCPU(s.pid)
					if err != nil {
						b.Fatalf("%s server (pid %d) after %s: %v", s.name, s.pid, param, err)
					}
					cpu[i] += cpu1 - cpu0
					loads[i].add(l)
				}
			}
			for i, s := range servers {
				l := loads[i]
				for j, err := range l.errs {
					if j == 5 {
						b.Logf("... and %d more failures", l.failures-5)
						break
					}
					b.Logf("%s, %s: failure: %v", s.name, param, err)
				}
				if l.wrong > 0 {
					b.Fatalf("%s, %s: %d responses were not HTTP/1.1 over TLS 1.3 with X25519MLKEM768: %v", s.name, param, l.wrong, errors.Join(l.errs...))
				}
				if len(l.requests) == 0 {
					b.Fatalf("%s, %s: no request succeeded: %v", s.name, param, errors.Join(l.errs...))
				}
				n := float64(len(l.requests))
				record(b, benchResult{
					Group: groupTLS, Daemon: d.Name, Case: s.name, Param: param,
					Unit: "req/s", N: len(l.requests), Median: n / l.seconds, Failures: l.failures,
					Extra: map[string]float64{
						"clients":           float64(clients),
						"case_seconds":      float64(seconds), // as set; seconds is as measured
						"seconds":           l.seconds,
						"handshakes":        float64(l.handshakes),
						"p50_ms":            percentile(l.requests, 50),
						"p90_ms":            percentile(l.requests, 90),
						"p99_ms":            percentile(l.requests, 99),
						"server_cpu_us_req": cpu[i] * 1e6 / n,
						"server_cpu_cores":  cpu[i] / l.seconds,
						"cert_bytes":        float64(len(s.leaf)),
						"cores":             float64(cores),
					},
				})
			}
		}
	}
}

// tlsLoad is what runTLSLoad measured.
type tlsLoad struct {
	requests   []float64 // latency of each good response, ms
	seconds    float64   // from the first request to the end of the last
	handshakes int64     // full handshakes the clients made
	failures   int       // requests without a good response
	wrong      int       // of those, responses on another protocol, version or group
	errs       []error   // the first few failures
}

// add adds the figures of another run to l's.
func (l *tlsLoad) add(o tlsLoad) {
	l.requests = append(l.requests, o.requests...)
	l.seconds += o.seconds
	l.handshakes += o.handshakes
	l.failures += o.failures
	l.wrong += o.wrong
	if len(l.errs) < 5 {
		l.errs = append(l.errs, o.errs...)
	}
}

// runTLSLoad runs clients goroutines against the HTTPS server at addr for
// d, each with its own http.Client sending GET requests back to back: on
// one kept-alive connection, or in mode tlsNewConn on a new connection
// each; in mode tlsWork each request is a /work one.
// The clients pin the server's certificate leaf and want HTTP/1.1 over TLS
// 1.3 with X25519MLKEM768.
func runTLSLoad(addr string, leaf []byte, clients int, mode string, d time.Duration) tlsLoad {
	newConn := mode == tlsNewConn
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		load       tlsLoad
		handshakes atomic.Int64
	)
	cfg := &tls.Config{
		// The Keep's certificate is self-signed and names no host: the
		// clients check the pinned leaf instead of a chain.
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS13,
		VerifyConnection: func(cs tls.ConnectionState) error {
			handshakes.Add(1)
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, leaf) {
				return errors.New("the server's certificate is not the pinned one")
			}
			return nil
		},
	}
	began := time.Now()
	deadline := began.Add(d)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: newConn, MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			var (
				latencies     []float64
				failures, bad int
				errs          []error
				prefix        = fmt.Sprintf("https://%s/c%d/", addr, c)
				wantBody      = func(n string) string { return fmt.Sprintf("hello from /c%d/%s\n", c, n) }
			)
			if mode == tlsWork {
				prefix = fmt.Sprintf("https://%s/work?n=%d&i=", addr, tlsWorkSteps)
				want := fmt.Sprintf("work %d\n", lcgWork(tlsWorkSteps))
				wantBody = func(string) string { return want }
			}
			fail := func(wrong bool, err error) {
				failures++
				if wrong {
					bad++
				}
				if len(errs) < 5 {
					errs = append(errs, err)
				}
			}
			for i := 0; time.Now().Before(deadline); i++ {
				n := strconv.Itoa(i)
				start := time.Now()
				resp, err := client.Get(prefix + n)
				if err != nil {
					fail(false, err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				ms := msSince(start)
				switch {
				case err != nil:
					fail(false, err)
				case resp.TLS == nil || resp.ProtoMajor != 1 || resp.TLS.Version != tls.VersionTLS13 || resp.TLS.CurveID != tls.X25519MLKEM768:
					proto := "plaintext"
					if resp.TLS != nil {
						proto = fmt.Sprintf("%s with %s", tls.VersionName(resp.TLS.Version), resp.TLS.CurveID)
					}
					fail(true, fmt.Errorf("%s over %s, want HTTP/1.1 over TLS 1.3 with X25519MLKEM768", resp.Proto, proto))
				case resp.StatusCode != http.StatusOK || string(body) != wantBody(n):
					fail(false, fmt.Errorf("%s: body %q", resp.Status, body))
				default:
					latencies = append(latencies, ms)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			load.requests = append(load.requests, latencies...)
			load.failures += failures
			load.wrong += bad
			load.errs = append(load.errs, errs...)
		}()
	}
	wg.Wait()
	load.seconds = time.Since(began).Seconds()
	load.handshakes = handshakes.Load()
	return load
}

// waitTLSServer returns the leaf certificate of the TLS server at addr once
// it answers an HTTPS request, or the last error after timeout.
func waitTLSServer(addr string, timeout time.Duration) (*x509.Certificate, error) {
	deadline := time.Now().Add(timeout)
	for {
		state, body, err := httpsGet(addr, &tls.Config{InsecureSkipVerify: true}, "/ready")
		if err == nil && body != "hello from /ready\n" {
			err = fmt.Errorf("body %q", body)
		}
		if err == nil {
			return state.PeerCertificates[0], nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeTLSServerCert writes a fresh self-signed ECDSA P-256 certificate for
// 127.0.0.1 and its key to dir/cert.pem and dir/key.pem, and returns the
// certificate (DER).
func writeTLSServerCert(b testing.TB, dir string) []byte {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "native httpserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		b.Fatal(err)
	}
	return der
}

// processCPU is the CPU time pid has used, user and system, in seconds.
func processCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	// After "pid (comm)": state is field 3, utime 14 and stime 15.
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return (utime + stime) / clockTicks, nil
}

// envInts reads a comma-separated list of positive integers, def when unset.
func envInts(b testing.TB, key string, def []int) []int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	var ns []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want positive integers separated by commas", key, v)
		}
		ns = append(ns, n)
	}
	return ns
}

// lcgWork is test/fixtures/httpserver's Work: n steps of a 64-bit linear
// congruential generator, from 1.
func lcgWork(n int) uint64 {
	x := uint64(1)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}
