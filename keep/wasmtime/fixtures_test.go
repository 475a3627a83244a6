package wasmtime

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/internal/wasmfixture"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// WAT fixtures. They are compiled with wasmtime.Wat2Wasm when a test needs
// them, so no binary is committed.

// watExit42 is a WASI command that exits with proc_exit(42).
const watExit42 = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 42))))`

// watReturn is a WASI command whose _start returns normally.
const watReturn = `(module
  (memory (export "memory") 1)
  (func (export "_start")))`

// watUnreachable traps in a named function so that the backtrace can name it.
const watUnreachable = `(module
  (memory (export "memory") 1)
  (func $boom unreachable)
  (func (export "_start") (call $boom)))`

// watDivZero traps on an integer division by zero.
const watDivZero = `(module
  (func (export "_start") (drop (i32.div_s (i32.const 1) (i32.const 0)))))`

// watStartTrap traps in the start function, that is during instantiation.
const watStartTrap = `(module
  (func $init unreachable)
  (start $init)
  (func (export "_start")))`

// watLoop spins forever without calling the host: only an epoch interrupt
// can stop it.
const watLoop = `(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))`

// watSpin300ms busy-waits for 300 ms of monotonic time, checking the WASI
// clock on every iteration. It is used to have a run in progress, in wasm
// code, for a known time.
const watSpin300ms = `(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func $now (result i64)
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 0)))
    (i64.load (i32.const 0)))
  (func (export "_start")
    (local $end i64)
    (local.set $end (i64.add (call $now) (i64.const 300000000)))
    (loop $l (br_if $l (i64.lt_u (call $now) (local.get $end))))))`

// watExports has a custom entrypoint and exports that are not valid
// entrypoints, and no _start.
const watExports = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (global (export "counter") i32 (i32.const 0))
  (func (export "run") (call $exit (i32.const 7)))
  (func (export "answer") (result i32) (i32.const 42))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1))))`

// watSIMD exports functions with v128 in their signatures, a type that
// wasmtime-go's Go API does not know (ValKind.String and Func.Call panic on
// it), and one returning a reference.
const watSIMD = `(module
  (func (export "simd") (result v128) (v128.const i64x2 1 2))
  (func (export "take") (param v128))
  (func (export "ref") (result externref) (ref.null extern)))`

// watReactor is a WASI reactor: run exits with the value _initialize stored,
// so the exit status shows whether _initialize ran first (5) or not (0), and
// how often (10 for twice).
const watReactor = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 0))
  (func (export "_initialize")
    (global.set $g (i32.add (global.get $g) (i32.const 5))))
  (func (export "run") (call $exit (global.get $g))))`

// watCommandWithInitialize exports both _start and an _initialize that
// traps: running _start must not call _initialize.
const watCommandWithInitialize = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_initialize") unreachable)
  (func (export "_start") (call $exit (i32.const 3))))`

// watBadInitialize is a reactor whose _initialize takes a parameter.
const watBadInitialize = `(module
  (func (export "_initialize") (param i32))
  (func (export "run")))`

// watHostImport imports functions that are not part of WASI.
const watHostImport = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "env" "host_fn" (func $host))
  (import "env" "host_table" (table 1 funcref))
  (func (export "_start") (call $host)))`

// watWrongWASISignature imports a WASI function with the wrong type.
const watWrongWASISignature = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i64)))
  (func (export "_start") (call $exit (i64.const 1))))`

// watHello writes "hi\n" to stdout with fd_write: output without a Go
// runtime in the way.
const watHello = `(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`

// wat compiles WAT text to a binary module, failing the test on error.
func wat(t testing.TB, text string) []byte {
	t.Helper()
	wasm, err := wasmtime.Wat2Wasm(text)
	if err != nil {
		t.Fatalf("Wat2Wasm: %v", err)
	}
	return wasm
}

// fixtures builds the Go wasip1 programs (fixtures.Wasm(t, dir), dir
// relative to this package) once per test process; TestMain removes it.
var fixtures wasmfixture.Cache

// goModules are Go fixtures compiled by goModule, by directory and engine
// options, each with the fixtureEngines of its options. Compiling a Go
// program takes seconds; tests share them.
var (
	goModules      sync.Map // goModuleKey → *goModuleOnce
	fixtureEngines sync.Map // Options → *fixtureEngine
)

type goModuleKey struct {
	dir  string
	opts Options
}

type fixtureEngine struct {
	once sync.Once
	e    *Engine
	err  error
}

type goModuleOnce struct {
	once sync.Once
	m    engine.Module
	err  error
}

// goModule builds and compiles the Go program in dir once per test process.
// The modules share one engine, so a test that cancels a run of one must
// not overlap with another test's run (see the package documentation).
func goModule(t testing.TB, dir string) engine.Module {
	t.Helper()
	return goModuleWith(t, dir, Options{})
}

// goModuleWith is goModule on an engine made with opts.
func goModuleWith(t testing.TB, dir string, opts Options) engine.Module {
	t.Helper()
	path := fixtures.Wasm(t, dir)
	v, _ := fixtureEngines.LoadOrStore(opts, &fixtureEngine{})
	fe := v.(*fixtureEngine)
	fe.once.Do(func() { fe.e, fe.err = NewWithOptions(opts) })
	if fe.err != nil {
		t.Fatalf("NewWithOptions(%+v): %v", opts, fe.err)
	}
	v, _ = goModules.LoadOrStore(goModuleKey{dir, opts}, &goModuleOnce{})
	f := v.(*goModuleOnce)
	f.once.Do(func() {
		wasm, err := os.ReadFile(path)
		if err != nil {
			f.err = err
			return
		}
		f.m, f.err = fe.e.Compile(context.Background(), wasm)
	})
	if f.err != nil {
		t.Fatalf("compile %s: %v", dir, f.err)
	}
	return f.m
}

// listenSocket opens a loopback TCP listener and returns it with a Socket
// named name holding a duplicate of it. Both are closed when the test ends.
func listenSocket(t testing.TB, name string) (engine.Socket, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return engine.Socket{Name: name, File: f}, ln
}

// dupSocket returns s with a duplicate of its File, for one more Run (Run
// closes the File it is given).
func dupSocket(t testing.TB, s engine.Socket) engine.Socket {
	t.Helper()
	fd, err := unix.FcntlInt(s.File.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), s.File.Name())
	t.Cleanup(func() { f.Close() })
	return engine.Socket{Name: s.Name, File: f}
}
