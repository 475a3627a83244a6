//go:build linux

package hostwasi

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/enarx/containerd-shim-enarx/internal/wasmfixture"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// fixtures builds the Go programs the tests run for GOOS=wasip1, once per
// test binary run; TestMain removes it.
var fixtures wasmfixture.Cache

func TestMain(m *testing.M) {
	code := m.Run()
	fixtures.Remove()
	os.Exit(code)
}

var (
	wasmEngine = wasmtime.NewEngine()
	modMu      sync.Mutex
	modules    = map[string]*wasmtime.Module{}
)

func compile(t testing.TB, dir string) *wasmtime.Module {
	path := fixtures.Wasm(t, dir)
	modMu.Lock()
	defer modMu.Unlock()
	if m, ok := modules[dir]; ok {
		return m
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := wasmtime.NewModule(wasmEngine, wasm)
	if err != nil {
		t.Fatalf("compile %s: %v", dir, err)
	}
	modules[dir] = m
	return m
}

// run runs mod's _start with w until it returns, exits or ctx ends. It
// returns the exit status.
func run(ctx context.Context, mod *wasmtime.Module, w *WASI) (int32, error) {
	stop := context.AfterFunc(ctx, w.Interrupt)
	defer stop()
	store := wasmtime.NewStore(wasmEngine)
	defer store.Close()
	linker := wasmtime.NewLinker(wasmEngine)
	defer linker.Close()
	if err := w.Define(linker); err != nil {
		return 0, err
	}
	inst, err := linker.Instantiate(store, mod)
	if err != nil {
		return 0, err
	}
	_, err = inst.GetFunc(store, "_start").Call(store)
	if code, ok := w.Exited(); ok {
		return code, nil
	}
	return 0, err
}

// TestHTTPServer serves testdata/httpserver (net/http on the listener
// FD_NAMES calls "web", at fd 3) and checks the answers; HOSTWASI_REQUESTS=n also measures n requests
// from 1 and from 8 clients.
func TestHTTPServer(t *testing.T) {
	mod := compile(t, filepath.Join("..", "testdata", "httpserver"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	errf, _ := os.CreateTemp(t.TempDir(), "stderr")
	defer errf.Close()
	w, err := New(Config{Args: []string{"httpserver", "web"}, Stderr: errf, Sockets: []engine.Socket{{Name: "web", File: lf}}})
	lf.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		code, err := run(ctx, mod, w)
		done <- fmt.Errorf("exit %d: %v", code, err)
	}()
	url := "http://" + ln.Addr().String() + "/x"
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(errf.Name())
			t.Fatalf("%s did not answer: %v\n%s", url, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < 50; i++ {
		resp, err := client.Get(fmt.Sprintf("%s%d", url, i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("hello from /x%d\n", i); string(b) != want {
			t.Fatalf("got %q, want %q", b, want)
		}
	}
	if n, _ := strconv.Atoi(os.Getenv("HOSTWASI_REQUESTS")); n > 0 {
		for _, conc := range []int{1, 8} {
			rps, p50, p99 := load(t, url, n, conc)
			t.Logf("hostwasi (FuncNew) | %d clients | %d requests | %.0f req/s | p50 %v | p99 %v", conc, n, rps, p50, p99)
		}
	}
	cancel()
	select {
	case err := <-done:
		if s := err.Error(); len(s) > 200 {
			err = fmt.Errorf("%s...", s[:200])
		}
		t.Logf("run ended after cancel: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop within 10s of cancel")
	}
}

// load sends n keep-alive GET requests from conc clients.
func load(t *testing.T, url string, n, conc int) (float64, time.Duration, time.Duration) {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	lat := make([]time.Duration, n)
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	start := time.Now()
	for k := 0; k < conc; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return float64(n) / el.Seconds(), lat[n/2].Round(time.Microsecond), lat[n*99/100].Round(time.Microsecond)
}
