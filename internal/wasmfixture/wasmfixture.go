// Package wasmfixture builds the Go programs that tests run: fixtures
// compiled for GOOS=wasip1 GOARCH=wasm, the same sources built natively,
// and the module's own commands. It is for tests only; it is a plain
// package, not a _test.go file, so that test packages in different
// directories share it.
//
// A build of a fixture takes a second or two (the go command caches the
// compiled packages, not the linked program), so a Cache builds each once
// per test binary, however many tests ask for it.
package wasmfixture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// GoTool returns the go command: the one on PATH (go test puts the bin
// directory of the toolchain running the tests first), else the one in
// build.Default.GOROOT, else "go".
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := filepath.Join(build.Default.GOROOT, "bin", "go"); isFile(p) {
		return p
	}
	return "go"
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// GoBuild runs `go build args...` in dir, with env after the process's
// environment; the error carries the go command's output.
func GoBuild(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, GoTool(), append([]string{"build"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s (env %s): %v\n%s", strings.Join(args, " "), dir, strings.Join(env, " "), err, out)
	}
	return nil
}

// Wasip1Env is the environment of a build for GOOS=wasip1 GOARCH=wasm.
func Wasip1Env() []string {
	return []string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"}
}

// NativeEnv is the environment of a static linux build for this machine's
// architecture.
func NativeEnv() []string {
	return []string{"GOOS=linux", "GOARCH=" + runtime.GOARCH, "CGO_ENABLED=0"}
}

// A Cache holds the files tests build, each built once per process. Its
// methods may be called from parallel tests. The zero Cache builds into a
// temporary directory of its own.
type Cache struct {
	// Dir is where the files go, made if missing; set it before the first
	// build. Empty: a temporary directory, made on the first build.
	Dir string

	dirOnce sync.Once
	dir     string
	dirErr  error
	files   sync.Map // name → *file
}

type file struct {
	once sync.Once
	path string
	err  error
}

// Wasm builds the Go package in pkgDir for GOOS=wasip1 GOARCH=wasm with
// the go build flags given, once per process, and returns the .wasm path.
func (c *Cache) Wasm(tb testing.TB, pkgDir string, flags ...string) string {
	tb.Helper()
	return c.goBuild(tb, pkgDir, ".wasm", Wasip1Env(), flags)
}

// Native builds the Go package in pkgDir as a static linux binary for this
// machine (NativeEnv) with the go build flags given, once per process, and
// returns its path.
func (c *Cache) Native(tb testing.TB, pkgDir string, flags ...string) string {
	tb.Helper()
	return c.goBuild(tb, pkgDir, "", NativeEnv(), flags)
}

func (c *Cache) goBuild(tb testing.TB, pkgDir, ext string, env, flags []string) string {
	tb.Helper()
	abs, err := filepath.Abs(pkgDir)
	if err != nil {
		tb.Fatal(err)
	}
	// The name tells apart one package's builds for other targets or
	// with other flags.
	sum := sha256.Sum256([]byte(strings.Join(append(append([]string{abs}, env...), flags...), "\x00")))
	name := filepath.Base(abs) + "-" + hex.EncodeToString(sum[:4]) + ext
	return c.File(tb, name, func(out string) error {
		return GoBuild(context.Background(), abs, env, append(append([]string{}, flags...), "-o", out, ".")...)
	})
}

// File runs build(path) once per process and name, path being name in the
// cache's directory, and returns path. It fails the test if the build
// failed: every test asking for name sees the same error.
func (c *Cache) File(tb testing.TB, name string, build func(path string) error) string {
	tb.Helper()
	v, _ := c.files.LoadOrStore(name, &file{})
	f := v.(*file)
	f.once.Do(func() {
		dir, err := c.directory()
		if err != nil {
			f.err = err
			return
		}
		f.path = filepath.Join(dir, name)
		f.err = build(f.path)
	})
	if f.err != nil {
		tb.Fatalf("fixture %s: %v", name, f.err)
	}
	return f.path
}

func (c *Cache) directory() (string, error) {
	c.dirOnce.Do(func() {
		if c.Dir == "" {
			c.dir, c.dirErr = os.MkdirTemp("", "wasmfixture-")
			return
		}
		c.dir, c.dirErr = c.Dir, os.MkdirAll(c.Dir, 0o755)
	})
	return c.dir, c.dirErr
}

// Remove removes the cache's directory and what was built in it; call it
// when the tests are done (in TestMain). The cache builds nothing after.
func (c *Cache) Remove() error {
	c.dirOnce.Do(func() {}) // nothing built yet: no directory to make
	dir := c.dir
	c.dir, c.dirErr = "", errRemoved
	if dir == "" {
		return nil
	}
	return os.RemoveAll(dir)
}

var errRemoved = errors.New("the fixture cache was removed")

// CheckWasmtimeHeaders compiles asserts (C11 _Static_assert lines) after
// <stddef.h> and <wasmtime.h> from wasmtime-go's module directory, and fails
// t, naming what, when they do not hold: code that copies declarations of
// wasmtime's C API (cgo cannot include another module's headers) checks
// them this way, so that a wasmtime-go upgrade that changes them fails a
// test rather than corrupting memory.
func CheckWasmtimeHeaders(t testing.TB, what, asserts string) {
	t.Helper()
	out, err := exec.Command(GoTool(), "list", "-m", "-f", "{{.Dir}}", "github.com/bytecodealliance/wasmtime-go/v39").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	include := filepath.Join(strings.TrimSpace(string(out)), "build", "include")
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	file := filepath.Join(t.TempDir(), "layout.c")
	if err := os.WriteFile(file, []byte("#include <stddef.h>\n#include <wasmtime.h>\n"+asserts), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(cc, "-std=c11", "-fsyntax-only", "-I", include, file).CombinedOutput(); err != nil {
		t.Fatalf("the C API declarations of %s do not match wasmtime's headers in %s: %v\n%s", what, include, err, b)
	}
}
