package wasmtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/modulecache"
	"github.com/enarx/containerd-shim-enarx/keep/wasmtime/jumpthread"
)

// Environment of TestCacheHelper, the child of TestCacheRoundTrip.
const (
	cacheHelperDirEnv = "ENARX_CACHE_HELPER_DIR" // the cache directory
	cacheHelperKeyEnv = "ENARX_CACHE_HELPER_KEY" // the entry to load and run
)

// TestCacheRoundTrip compiles the Go hello, stores its native code in a
// module cache, and has another process load it in a fresh engine and run
// it, as the second Keep of a module does.
func TestCacheRoundTrip(t *testing.T) {
	wasm, err := os.ReadFile(fixtures.Wasm(t, "testdata/hello"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t)
	began := time.Now()
	m, err := e.Compile(context.Background(), wasm)
	if err != nil {
		t.Fatal(err)
	}
	compiled := time.Since(began)
	began = time.Now()
	native, err := e.Serialize(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes of wasm: compile %v; %d bytes of native code: serialize %v",
		len(wasm), compiled.Round(time.Millisecond), len(native), time.Since(began).Round(time.Millisecond))

	dir := filepath.Join(t.TempDir(), "modules")
	c, err := modulecache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Put("hello", native); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCacheHelper$")
	cmd.Env = append(os.Environ(), cacheHelperDirEnv+"="+dir, cacheHelperKeyEnv+"=hello", "GREETING=from the cache", "EXIT_CODE=7")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Fatalf("child: %v, want exit status 7\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"hello\n", "args=hello|one\n", "GREETING=from the cache\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout %q lacks %q", stdout.String(), want)
		}
	}
	t.Logf("child: %s", strings.TrimSpace(stderr.String()))
}

// TestCacheHelper loads and runs a cached module for TestCacheRoundTrip and
// exits with its status; the module's output is the process's.
func TestCacheHelper(t *testing.T) {
	dir := os.Getenv(cacheHelperDirEnv)
	if dir == "" {
		t.Skip("child of TestCacheRoundTrip")
	}
	began := time.Now()
	c, err := modulecache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := c.Get(os.Getenv(cacheHelperKeyEnv))
	if err != nil {
		t.Fatal(err)
	}
	verified := time.Since(began)
	e, err := New()
	if err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	m, err := e.Load(context.Background(), entry.Path())
	if err != nil {
		t.Fatal(err)
	}
	loaded := time.Since(began)
	entry.Close()
	os.Stderr.WriteString("open and verify " + verified.Round(time.Microsecond).String() + ", load " + loaded.Round(time.Microsecond).String() + "\n")
	status, err := m.Run(context.Background(), engine.RunOptions{
		Args: []string{"hello", "one"},
		Env:  []string{"GREETING=" + os.Getenv("GREETING"), "EXIT_CODE=" + os.Getenv("EXIT_CODE")},
	})
	if err != nil {
		t.Fatal(err)
	}
	os.Exit(status)
}

// TestLoadWithTrailer checks what the module cache relies on: wasmtime
// loads native code followed by the cache's trailer, and runs it.
func TestLoadWithTrailer(t *testing.T) {
	e := newEngine(t)
	native, err := e.Serialize(compileWAT(t, e, watExit42))
	if err != nil {
		t.Fatal(err)
	}
	c, err := modulecache.Open(filepath.Join(t.TempDir(), "modules"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Put("exit42", native); err != nil {
		t.Fatal(err)
	}
	entry, err := c.Get("exit42")
	if err != nil {
		t.Fatal(err)
	}
	defer entry.Close()
	fi, err := os.Stat(entry.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() <= int64(len(native)) {
		t.Fatalf("entry of %d bytes has no trailer after the %d of native code", fi.Size(), len(native))
	}
	m, err := newEngine(t).Load(context.Background(), entry.Path())
	if err != nil {
		t.Fatal(err)
	}
	if status, err := m.Run(context.Background(), engine.RunOptions{}); status != 42 || err != nil {
		t.Fatalf("Run of the loaded module: %d, %v; want 42", status, err)
	}
}

// TestLoadRefusesOtherSettings checks that wasmtime refuses native code
// compiled with other settings, which the Keep then recompiles: code
// without epoch interruption's checks on an engine that counts on them,
// and the reverse.
func TestLoadRefusesOtherSettings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to Options
	}{
		{"no-epoch-to-epoch", Options{NoEpochInterruption: true}, Options{}},
		{"epoch-to-no-epoch", Options{}, Options{NoEpochInterruption: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := newEngineWith(t, tc.from), newEngineWith(t, tc.to)
			native, err := from.Serialize(compileWAT(t, from, watExit42))
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "other.cwasm")
			if err := os.WriteFile(p, native, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := to.Load(context.Background(), p); err == nil {
				t.Fatalf("Load with %+v of code compiled with %+v succeeded", tc.to, tc.from)
			} else if !strings.HasPrefix(err.Error(), "wasmtime: load precompiled module") {
				t.Errorf("error %q lacks its context", err)
			}
		})
	}
	// wasmtime-go's own default engine has no epoch interruption either.
	other := wasmtime.NewEngine()
	mod, err := wasmtime.NewModule(other, wat(t, watExit42))
	if err != nil {
		t.Fatal(err)
	}
	native, err := mod.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "other.cwasm")
	if err := os.WriteFile(p, native, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newEngine(t).Load(context.Background(), p); err == nil {
		t.Fatal("Load of code compiled without epoch interruption succeeded")
	}
}

func TestSerializeForeignModule(t *testing.T) {
	if _, err := newEngine(t).Serialize(foreignModule{}); err == nil {
		t.Fatal("Serialize of another engine's module succeeded")
	}
}

type foreignModule struct{}

func (foreignModule) Run(context.Context, engine.RunOptions) (int, error) { return 0, nil }

func TestFingerprint(t *testing.T) {
	epoch := newEngine(t).Fingerprint()
	noEpoch := newEngineWith(t, Options{NoEpochInterruption: true}).Fingerprint()
	// Code compiled from a module threaded differently must not be
	// loaded: the pass's version is part of the fingerprint.
	threading := fmt.Sprintf("jump_threading=%d", jumpthread.Version)
	for fp, want := range map[string][]string{
		epoch:   {Version, "strategy=cranelift", "epoch_interruption=true", threading},
		noEpoch: {Version, "strategy=cranelift", "epoch_interruption=false", threading},
	} {
		for _, w := range want {
			if !strings.Contains(fp, w) {
				t.Errorf("Fingerprint() = %q lacks %q", fp, w)
			}
		}
	}
	if epoch == noEpoch {
		t.Errorf("engines with and without epoch interruption share the fingerprint %q: the module cache would mix their code", epoch)
	}
}
