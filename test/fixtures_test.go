package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// fixtureBuild is one cached build of a fixture.
type fixtureBuild struct {
	once sync.Once
	path string
	err  error
}

var fixtureBuilds sync.Map // cache key -> *fixtureBuild

// cachedFixture runs build once per key and package run, and fails the test
// if it failed (every test asking for it sees the same error).
func cachedFixture(t testing.TB, key string, build func(out string) error) string {
	t.Helper()
	v, _ := fixtureBuilds.LoadOrStore(key, &fixtureBuild{})
	b := v.(*fixtureBuild)
	b.once.Do(func() {
		dir := filepath.Join(harness.workDir, "fixtures")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, key)
		b.err = build(b.path)
	})
	if b.err != nil {
		t.Fatalf("fixture %s: %v", key, b.err)
	}
	return b.path
}

// fixtureDir is the source directory of fixture name.
func fixtureDir(name string) string {
	return filepath.Join(harness.moduleRoot, "test", "fixtures", name)
}

// buildGoWasm compiles test/fixtures/<name>/main.go for GOOS=wasip1
// GOARCH=wasm (once per package run) and returns the .wasm path.
func buildGoWasm(t testing.TB, name string) string {
	t.Helper()
	return cachedFixture(t, name+".wasm", func(out string) error {
		return goBuild(fixtureDir(name), out, "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	})
}

// buildNative compiles test/fixtures/<name>/main.go as a static linux binary
// for this machine (CGO_ENABLED=0), once per package run, and returns its path.
func buildNative(t testing.TB, name string) string {
	t.Helper()
	return cachedFixture(t, name+".native", func(out string) error {
		return goBuild(fixtureDir(name), out, "GOOS=linux", "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0")
	})
}

// buildWat translates test/fixtures/<name>.wat to a binary module (once per
// package run) and returns the .wasm path.
func buildWat(t testing.TB, name string) string {
	t.Helper()
	return cachedFixture(t, name+".wat.wasm", func(out string) error {
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

// goBuild runs `go build -trimpath -o out` in the package directory pkgDir
// with extra environment.
func goBuild(pkgDir, out string, env ...string) error {
	cmd := exec.Command(goTool(), "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), env...)
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (%v): %v\n%s", pkgDir, env, err, o)
	}
	return nil
}
