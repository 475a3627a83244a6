package wasmfixture

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestCache builds one package for wasip1 and natively: each once, however
// many parallel callers ask, into the cache's directory, which Remove
// removes.
func TestCache(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/hello\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var c Cache
	var wg sync.WaitGroup
	paths := make([]string, 4)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i] = c.Wasm(t, dir, "-trimpath")
		}()
	}
	wg.Wait()
	for _, p := range paths[1:] {
		if p != paths[0] {
			t.Fatalf("Wasm paths %q, want one build", paths)
		}
	}
	wasm, err := os.ReadFile(paths[0])
	if err != nil || !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		t.Fatalf("%s: %v, %.8q: not a WebAssembly module", paths[0], err, wasm)
	}
	native := c.Native(t, dir)
	if native == paths[0] || filepath.Dir(native) != filepath.Dir(paths[0]) {
		t.Errorf("Native = %s beside Wasm = %s, want another file in the same directory", native, paths[0])
	}
	if out, err := os.ReadFile(native); err != nil || !bytes.HasPrefix(out, []byte("\x7fELF")) {
		t.Errorf("%s: %v: not an ELF binary", native, err)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(native)); !os.IsNotExist(err) {
		t.Errorf("cache directory after Remove: %v, want it gone", err)
	}
}

// TestGoBuildError carries the go command's output.
func TestGoBuildError(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	err := GoBuild(t.Context(), t.TempDir(), nil, "-o", os.DevNull, "./missing")
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("GoBuild of a missing package: %v, want the go command's complaint", err)
	}
}
