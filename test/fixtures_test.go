package test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/enarx/containerd-shim-enarx/internal/wasmfixture"
)

// fixtures holds the fixtures built for this package run, in the harness's
// work directory (setupHarness sets its Dir).
var fixtures wasmfixture.Cache

// fixtureFlags are the go build flags of the fixtures: no file paths, no
// symbols, as a release build would have it.
var fixtureFlags = []string{"-trimpath", "-ldflags=-s -w"}

// fixtureDir is the source directory of fixture name.
func fixtureDir(name string) string {
	return filepath.Join(harness.moduleRoot, "test", "fixtures", name)
}

// buildGoWasm compiles test/fixtures/<name>/main.go for GOOS=wasip1
// GOARCH=wasm (once per package run) and returns the .wasm path.
func buildGoWasm(t testing.TB, name string) string {
	t.Helper()
	return fixtures.Wasm(t, fixtureDir(name), fixtureFlags...)
}

// buildNative compiles test/fixtures/<name>/main.go as a static linux binary
// for this machine (CGO_ENABLED=0), once per package run, and returns its path.
func buildNative(t testing.TB, name string) string {
	t.Helper()
	return fixtures.Native(t, fixtureDir(name), fixtureFlags...)
}

// buildWat translates test/fixtures/<name>.wat to a binary module (once per
// package run) and returns the .wasm path.
func buildWat(t testing.TB, name string) string {
	t.Helper()
	return fixtures.File(t, name+".wat.wasm", func(out string) error {
		src := fixtureDir(name) + ".wat"
		wat, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		wasm, err := wasmtime.Wat2Wasm(string(wat))
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		return os.WriteFile(out, wasm, 0o644)
	})
}
