//go:build enarx_sockets_proto

package wasmtime

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Run with:
//
//	go test -tags enarx_sockets_proto -run Proto -v ./keep/wasmtime/
//
// PROTO_REQUESTS sets the number of requests per load run (default 2000).

// TestProtoCAPIHasNoSocketPreopen is candidate (a): is there a C function in
// the library that wasmtime-go v39 links that preopens a socket, which a cgo
// shim could call although the Go API does not?
func TestProtoCAPIHasNoSocketPreopen(t *testing.T) {
	out, err := exec.Command(goTool(), "list", "-m", "-f", "{{.Dir}}", "github.com/bytecodealliance/wasmtime-go/v39").Output()
	if err != nil {
		t.Fatalf("go list wasmtime-go: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	var headers int
	filepath.WalkDir(filepath.Join(dir, "build", "include"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".h") {
			return err
		}
		headers++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, word := range []string{protoSocketSymbol, "tcplisten", "socket"} {
			if bytes.Contains(b, []byte(word)) {
				t.Errorf("%s mentions %q: candidate (a) may be open, look again", p, word)
			}
		}
		return nil
	})
	lib, err := os.ReadFile(filepath.Join(dir, "build", "linux-x86_64", "libwasmtime.a"))
	if err != nil {
		t.Skipf("no linux-x86_64 library: %v", err)
	}
	if bytes.Contains(lib, []byte(protoSocketSymbol)) {
		t.Errorf("libwasmtime.a has %s: candidate (a) may be open", protoSocketSymbol)
	}
	t.Logf("%d headers and libwasmtime.a (%d MB): no %s, no socket API in wasi.h", headers, len(lib)>>20, protoSocketSymbol)
}

// watDelegate writes "hi\n" to stdout through fd_write, which the test
// replaces with a Go function that forwards to wasmtime's own fd_write.
const watDelegate = `(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\n")
  (func (export "run") (result i32)
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))`

// TestProtoShadowDelegation is candidate (b): replace single WASI functions
// with Go ones (sock_accept, and fd_read/fd_write/poll_oneoff for socket
// descriptors) and forward every other descriptor to wasmtime's WASI. The
// replacement needs the original function to forward to; the only handle
// on it is linker.Get, called from the host.
func TestProtoShadowDelegation(t *testing.T) {
	engine := wasmtime.NewEngine()
	mod, err := wasmtime.NewModule(engine, wat(t, watDelegate))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "stdout")
	wasi := wasmtime.NewWasiConfig()
	if err := wasi.SetStdoutFile(out); err != nil {
		t.Fatal(err)
	}
	store := wasmtime.NewStore(engine)
	defer store.Close()
	store.SetWasi(wasi)
	linker := wasmtime.NewLinker(engine)
	if err := linker.DefineWasi(); err != nil {
		t.Fatal(err)
	}
	orig := linker.Get(store, "wasi_snapshot_preview1", "fd_write")
	if orig == nil || orig.Func() == nil {
		t.Fatal("linker.Get found no fd_write")
	}
	linker.AllowShadowing(true)
	var forwardErr error
	var calls int
	err = linker.FuncWrap("wasi_snapshot_preview1", "fd_write",
		func(c *wasmtime.Caller, fd, iovs, n, nwritten int32) int32 {
			calls++
			r, err := orig.Func().Call(store, fd, iovs, n, nwritten)
			if err != nil {
				forwardErr = err
				return 8 // EBADF
			}
			return r.(int32)
		})
	if err != nil {
		t.Fatalf("shadow fd_write: %v", err)
	}
	inst, err := linker.Instantiate(store, mod)
	if err != nil {
		t.Fatal(err)
	}
	r, err := inst.GetFunc(store, "run").Call(store)
	got, _ := os.ReadFile(out)
	t.Logf("shadowing allowed: replacement called %d time(s), errno %v, stdout %q", calls, r, got)
	if forwardErr != nil {
		t.Logf("forwarding to wasmtime's fd_write from Go fails: %v", forwardErr)
	}
	if err != nil {
		t.Logf("run: %v", err)
	}
}

// The load runs.

type loadResult struct {
	name     string
	conc     int
	requests int
	elapsed  time.Duration
	lat      []time.Duration
}

func (r loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r loadResult) pct(p float64) time.Duration {
	return r.lat[int(p*float64(len(r.lat)-1))]
}

// load sends n GET requests to url from conc clients with keep-alive, after
// a short warm-up, and records each latency.
func load(t *testing.T, name, url string, n, conc int) loadResult {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("hello from /")) {
			return fmt.Errorf("status %d body %q", resp.StatusCode, b)
		}
		return nil
	}
	for i := 0; i < 50; i++ {
		if err := get(); err != nil {
			t.Fatalf("%s warm-up: %v", name, err)
		}
	}
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				err := get()
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		t.Fatalf("%s: %v", name, firstErr)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return loadResult{name: name, conc: conc, requests: n, elapsed: elapsed, lat: lat}
}

func protoRequests() int {
	if n, err := strconv.Atoi(os.Getenv("PROTO_REQUESTS")); err == nil && n > 0 {
		return n
	}
	return 2000
}

// buildHTTPServer builds testdata/httpserver, for wasip1 when wasm is true.
func buildHTTPServer(t *testing.T, wasm bool) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "httpserver")
	cmd := exec.Command(goTool(), "build", "-o", out, "main.go")
	cmd.Dir = filepath.Join("testdata", "httpserver")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if wasm {
		cmd.Env = append(cmd.Env, "GOOS=wasip1", "GOARCH=wasm")
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build testdata/httpserver: %v\n%s", err, msg)
	}
	return out
}

// answers polls url until it answers (true) or d passes (false).
func answers(url string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := (&http.Client{Timeout: time.Second}).Get(url)
		if err == nil {
			resp.Body.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// waitHTTP polls url until it answers or d passes.
func waitHTTP(t *testing.T, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := (&http.Client{Timeout: time.Second}).Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within %v: %v", url, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestProtoHTTPFigures serves the same HTTP workload natively (the
// baseline, listener passed as fd 3) and in wazero with a preopened socket
// (candidate c), and measures both.
func TestProtoHTTPFigures(t *testing.T) {
	n := protoRequests()
	var results []loadResult

	// Native baseline: the same program, listener in ExtraFiles (fd 3).
	native := buildHTTPServer(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(native)
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	nurl := "http://" + ln.Addr().String() + "/x"
	ln.Close()
	lf.Close()
	waitHTTP(t, nurl, 5*time.Second)
	results = append(results, load(t, "native", nurl, n, 1), load(t, "native", nurl, n, 8))

	wasmPath := buildHTTPServer(t, true)
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	engines := strings.Split(os.Getenv("PROTO_ENGINES"), ",")
	if os.Getenv("PROTO_ENGINES") == "" {
		// wazero does not serve (docs/networking.md); PROTO_ENGINES=wazero shows it.
		engines = []string{"wasmtime-gowasi"}
	}
	for _, name := range engines {
		ctx, cancel := context.WithCancel(context.Background())
		var stderr bytes.Buffer
		done := make(chan error, 1)
		t0 := time.Now()
		var url string
		switch name {
		case "wazero":
			port := freePort(t)
			url = fmt.Sprintf("http://127.0.0.1:%d/x", port)
			go func() {
				status, err := wazeroSocketRun(ctx, wasm, "127.0.0.1", port, io.Discard, &syncWriter{w: &stderr})
				done <- fmt.Errorf("status %d, %v", status, err)
			}()
		case "wasmtime-gowasi":
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			url = "http://" + ln.Addr().String() + "/x"
			go func() {
				status, err := wasmtimeSocketRun(ctx, wasm, ln.(*net.TCPListener), io.Discard, &syncWriter{w: &stderr})
				done <- fmt.Errorf("status %d, %v", status, err)
			}()
			defer ln.Close() // accepts go to the run, which holds a dup
		default:
			t.Fatalf("unknown engine %q", name)
		}
		up := make(chan struct{})
		go func() {
			select {
			case err := <-done:
				t.Errorf("%s run ended: %v\n%s", name, err, stderr.String())
				cancel()
			case <-up:
			}
		}()
		if !answers(url, 30*time.Second) {
			t.Errorf("%s: %s did not answer within 30s (skipped from the figures); its stderr:\n%s", name, url, stderr.String())
			close(up)
			cancel()
			continue
		}
		close(up)
		t.Logf("%s: compile + start until first answer %v", name, time.Since(t0).Round(time.Millisecond))
		results = append(results, load(t, name, url, n, 1), load(t, name, url, n, 8))
		cancel()
	}

	base := map[int]loadResult{}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n| server | clients | requests | req/s | p50 | p99 | req/s vs native | p50 vs native |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		if r.name == "native" {
			base[r.conc] = r
		}
		b := base[r.conc]
		fmt.Fprintf(&sb, "| %s | %d | %d | %.0f | %v | %v | %.2f | %.2f |\n", r.name, r.conc, r.requests, r.rps(),
			r.pct(0.50).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond),
			r.rps()/b.rps(), float64(r.pct(0.50))/float64(b.pct(0.50)))
	}
	t.Log(sb.String())
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
