package wasmtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/internal/wasmfixture"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// WAT components: wasi:cli/command components written by hand, so that the
// engine's tests need no component toolchain. wasmtime's Wat2Wasm reads the
// component text format.

// watComponent is a command whose run returns result (ok when body leaves
// 0, err otherwise), with the core module's extra imports and a body.
func watComponent(imports, lowered, coreImports, body string) string {
	return `(component
  ` + imports + `
  ` + lowered + `
  (core module $m
    ` + coreImports + `
    (memory (export "memory") 1)
    (func (export "run") (result i32) ` + body + `))
  (core instance $i (instantiate $m ` + withHost(lowered) + `))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $ri (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $ri)))`
}

func withHost(lowered string) string {
	if lowered == "" {
		return ""
	}
	return `(with "host" (instance $hi))`
}

// The wasi:cli/exit import of the exit fixtures, lowered into a core
// instance "host" with "exit" (result as an i32 discriminant) and
// "exit_with_code".
const (
	watExitImport = `(import "wasi:cli/exit@0.2.0" (instance $exit
    (export "exit" (func (param "status" (result))))
    (export "exit-with-code" (func (param "status-code" u8)))))`
	watExitLowered = `(core func $e (canon lower (func $exit "exit")))
  (core func $ewc (canon lower (func $exit "exit-with-code")))
  (core instance $hi (export "exit" (func $e)) (export "exit_with_code" (func $ewc)))`
	watExitCore = `(import "host" "exit" (func $exit (param i32)))
    (import "host" "exit_with_code" (func $exit_with_code (param i32)))`
)

var (
	watCompOK          = watComponent("", "", "", "(i32.const 0)")
	watCompErr         = watComponent("", "", "", "(i32.const 1)")
	watCompTrap        = watComponent("", "", "", "unreachable")
	watCompLoop        = watComponent("", "", "", "(loop $l (br $l)) (i32.const 0)")
	watCompExitCode    = watComponent(watExitImport, watExitLowered, watExitCore, "(call $exit_with_code (i32.const 42)) (i32.const 0)")
	watCompExitErr     = watComponent(watExitImport, watExitLowered, watExitCore, "(call $exit (i32.const 1)) (i32.const 0)")
	watCompExitOK      = watComponent(watExitImport, watExitLowered, watExitCore, "(call $exit (i32.const 0)) (i32.const 1)")
	watCompGrowToLimit = watComponent("", "", "", "(if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable)) (i32.const 0)")
)

// watCompHTTP imports wasi:http, which the host does not provide.
const watCompHTTP = `(component
  (import "wasi:http/types@0.2.0" (instance $h (export "now" (func (result u64)))))
  (core module $m (func (export "run") (result i32) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $ri (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $ri)))`

// watCompReactor exports a function but not wasi:cli/run.
const watCompReactor = `(component
  (core module $m (func (export "f") (result i32) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $f (result u32) (canon lift (core func $i "f")))
  (export "f" (func $f)))`

// watCompBigMemory starts with 2 MiB of linear memory.
const watCompBigMemory = `(component
  (core module $m (memory 32) (func (export "run") (result i32) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $ri (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $ri)))`

func compileComponentWAT(t testing.TB, e *Engine, text string) engine.Module {
	t.Helper()
	m := compileWAT(t, e, text)
	if _, ok := m.(engine.Component); !ok {
		t.Fatalf("Compile returned a %T, not an engine.Component", m)
	}
	return m
}

func TestIsComponent(t *testing.T) {
	if !IsComponent(wat(t, watCompOK)) {
		t.Error("IsComponent(component) = false")
	}
	if IsComponent(wat(t, watReturn)) {
		t.Error("IsComponent(core module) = true")
	}
}

func TestComponentExitStatus(t *testing.T) {
	e := newEngine(t)
	defer e.Close()
	for _, tc := range []struct {
		name, wat string
		want      int
	}{
		{"run-ok", watCompOK, 0},
		{"run-err", watCompErr, 1},
		{"exit-with-code", watCompExitCode, 42},
		{"exit-err", watCompExitErr, 1},
		{"exit-ok", watCompExitOK, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := compileComponentWAT(t, e, tc.wat)
			for i := 0; i < 2; i++ { // a component runs more than once
				status, err := m.Run(context.Background(), engine.RunOptions{})
				if err != nil || status != tc.want {
					t.Fatalf("Run #%d = %d, %v; want %d, nil", i, status, err, tc.want)
				}
			}
		})
	}
}

func TestComponentTrap(t *testing.T) {
	e := newEngine(t)
	defer e.Close()
	_, err := compileComponentWAT(t, e, watCompTrap).Run(context.Background(), engine.RunOptions{})
	var trap *engine.TrapError
	if !errors.As(err, &trap) {
		t.Fatalf("Run = %v, want a *engine.TrapError", err)
	}
	if !strings.HasPrefix(trap.Message, "wasm `unreachable` instruction executed") || !strings.Contains(trap.Message, "wasm backtrace:") {
		t.Errorf("trap message %q: want the cause first, then the backtrace", trap.Message)
	}
}

func TestComponentInterrupt(t *testing.T) {
	e := newEngine(t)
	defer e.Close()
	m := compileComponentWAT(t, e, watCompLoop)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.Run(ctx, engine.RunOptions{})
	if !errors.Is(err, engine.ErrInterrupted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want ErrInterrupted and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("interrupted after %v, want < 2s", d)
	}
}

func TestComponentRefusedImport(t *testing.T) {
	e := newEngine(t)
	defer e.Close()
	_, err := e.Compile(context.Background(), wat(t, watCompHTTP))
	if err == nil || !strings.Contains(err.Error(), `component imports "wasi:http/types@0.2.0", which the host does not provide`) {
		t.Fatalf("Compile = %v, want the missing wasi:http import named", err)
	}
	_, err = e.Compile(context.Background(), wat(t, watCompReactor))
	if err == nil || !strings.Contains(err.Error(), "does not export wasi:cli/run") {
		t.Fatalf("Compile(no wasi:cli/run) = %v, want an error saying it is not a command", err)
	}
}

func TestComponentRefusesSocketsAndEntrypoint(t *testing.T) {
	e := newEngine(t)
	defer e.Close()
	m := compileComponentWAT(t, e, watCompOK)
	sock, _ := listenSocket(t, "web")
	if _, err := m.Run(context.Background(), engine.RunOptions{Sockets: []engine.Socket{sock}}); !errors.Is(err, ErrComponentSockets) {
		t.Errorf("Run with sockets = %v, want ErrComponentSockets", err)
	}
	if _, err := m.Run(context.Background(), engine.RunOptions{Entrypoint: "main"}); err == nil || !strings.Contains(err.Error(), "no other entrypoint") {
		t.Errorf("Run with an entrypoint = %v, want an error", err)
	}
}

func TestComponentMemoryLimit(t *testing.T) {
	e := newEngine(t)
	defer e.Close()
	// One page in use, growing by 16 (1 MiB): refused under a 512 KiB cap.
	m := compileComponentWAT(t, e, watCompGrowToLimit)
	if status, err := m.Run(context.Background(), engine.RunOptions{}); err != nil || status != 0 {
		t.Fatalf("Run without a cap = %d, %v; want 0", status, err)
	}
	var trap *engine.TrapError
	if _, err := m.Run(context.Background(), engine.RunOptions{MemoryLimit: 512 << 10}); !errors.As(err, &trap) {
		t.Fatalf("Run under a 512 KiB cap = %v; want the trap that follows a refused memory.grow", err)
	}
	_, err := compileComponentWAT(t, e, watCompBigMemory).Run(context.Background(), engine.RunOptions{MemoryLimit: 1 << 20})
	if !errors.As(err, &trap) || !trap.OutOfMemory || !strings.Contains(trap.Message, "memory limit 1048576 bytes exceeded") {
		t.Fatalf("Run of a component whose memory starts above the cap = %v; want an out-of-memory trap", err)
	}
}

func TestComponentSerializeLoad(t *testing.T) {
	e := newEngine(t)
	defer e.Close()
	m := compileComponentWAT(t, e, watCompExitCode)
	b, err := e.Serialize(m)
	if err != nil {
		t.Fatalf("Serialize: %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.cwasm")
	// The module cache appends a trailer: Load must ignore it.
	if err := os.WriteFile(path, append(b, "trailer"...), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := e.Load(context.Background(), path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if _, ok := loaded.(engine.Component); !ok {
		t.Fatalf("Load returned a %T, want a component", loaded)
	}
	if status, err := loaded.Run(context.Background(), engine.RunOptions{}); err != nil || status != 42 {
		t.Fatalf("Run of the loaded component = %d, %v; want 42", status, err)
	}
	// A module's native code still loads as a module.
	mb, err := e.Serialize(compileWAT(t, e, watExit42))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, mb, 0o600); err != nil {
		t.Fatal(err)
	}
	if lm, err := e.Load(context.Background(), path); err != nil {
		t.Fatalf("Load(module): %v", err)
	} else if _, ok := lm.(*Module); !ok {
		t.Fatalf("Load(module) returned a %T", lm)
	}
}

// jcoComponent lifts the Go fixture in dir into a wasi:cli/command
// component with jco (ENARX_JCO, which scripts/jco.sh env sets), once per
// test process. The test is skipped when ENARX_JCO is not set.
func jcoComponent(t testing.TB, dir string) string {
	t.Helper()
	jco := os.Getenv("ENARX_JCO")
	if jco == "" {
		t.Skip("ENARX_JCO is not set: run `eval \"$(scripts/jco.sh env)\"` after `scripts/jco.sh install` (make test does)")
	}
	core := fixtures.Wasm(t, dir)
	return fixtures.File(t, filepath.Base(dir)+".component.wasm", func(out string) error {
		cmd := exec.Command(jco, "new", core, "--wasi-command", "-o", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			return errors.New(string(b))
		}
		return nil
	})
}

// TestComponentFromGo runs Go wasip1 programs lifted into components, in
// helper children so that their stdio can be read: argv, environment,
// stdout, stderr, a preopen and the exit status through the preview 1
// adapter (proc_exit(n) for n > 0 becomes exit(err): 1).
func TestComponentFromGo(t *testing.T) {
	echo := jcoComponent(t, "../../test/fixtures/echo")
	r := runChild(t, echo, engine.RunOptions{
		Args: []string{"echo", "one", "two words"},
		Env:  []string{"ENARX_TEST_B=2", "ENARX_TEST_A=1", "OTHER=x"},
	}, "")
	want := "arg: one\narg: two words\nenv: ENARX_TEST_A=1\nenv: ENARX_TEST_B=2\n"
	if r.status != 0 || r.stdout != want {
		t.Errorf("echo component: status %d, stdout %q, stderr %q; want 0, %q", r.status, r.stdout, r.stderr, want)
	}
	exit := jcoComponent(t, "../../test/fixtures/exit")
	r = runChild(t, exit, engine.RunOptions{Args: []string{"exit", "42"}}, "")
	if r.status != 1 {
		t.Errorf("exit 42 component: status %d, want 1 (the adapter's exit(err)); stderr %q", r.status, r.stderr)
	}
	r = runChild(t, exit, engine.RunOptions{Args: []string{"exit"}}, "")
	if r.status != 1 || !strings.Contains(r.stderr, "usage: exit CODE") {
		t.Errorf("exit component without arguments: status %d, stderr %q; want 1 and the usage on stderr", r.status, r.stderr)
	}
	r = runChild(t, exit, engine.RunOptions{Args: []string{"exit", "0"}}, "")
	if r.status != 0 {
		t.Errorf("exit 0 component: status %d, want 0; stderr %q", r.status, r.stderr)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "greeting"), []byte("hello from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cat := jcoComponent(t, "../../test/fixtures/catfile")
	r = runChild(t, cat, engine.RunOptions{Args: []string{"catfile", "/data/greeting"},
		Preopens: []engine.Preopen{{HostPath: dir, GuestPath: "/data", ReadOnly: true}}}, "")
	if r.status != 0 || r.stdout != "hello from the host\n" {
		t.Errorf("catfile component: status %d, stdout %q, stderr %q; want the preopened file", r.status, r.stdout, r.stderr)
	}
}

// TestComponentCAPILayout compiles a C check of the declarations that
// component_capi.go copies from wasmtime's headers against the headers in
// wasmtime-go's module directory: a wasmtime-go upgrade that changes a
// struct or a constant fails here, not as memory corruption.
func TestComponentCAPILayout(t *testing.T) {
	asserts := fmt.Sprintf(`_Static_assert(sizeof(wasmtime_component_instance_t) == %d, "wasmtime_component_instance_t");
_Static_assert(sizeof(wasmtime_component_func_t) == %d, "wasmtime_component_func_t");
_Static_assert(sizeof(wasmtime_component_val_t) == %d, "wasmtime_component_val_t");
_Static_assert(offsetof(wasmtime_component_val_t, of) == 8, "wasmtime_component_val_t.of");
_Static_assert(offsetof(wasmtime_component_valresult_t, is_ok) == 0, "wasmtime_component_valresult_t.is_ok");
_Static_assert(sizeof(wasm_byte_vec_t) == %d, "wasm_byte_vec_t");
_Static_assert(WASMTIME_COMPONENT_U8 == %d, "WASMTIME_COMPONENT_U8");
_Static_assert(WASMTIME_COMPONENT_RESULT == %d, "WASMTIME_COMPONENT_RESULT");
_Static_assert(WASMTIME_STRATEGY_CRANELIFT == %d, "WASMTIME_STRATEGY_CRANELIFT");
_Static_assert(WASMTIME_WASI_DIR_PERMS_READ == %d && WASMTIME_WASI_DIR_PERMS_WRITE == %d, "dir perms");
_Static_assert(WASMTIME_WASI_FILE_PERMS_READ == %d && WASMTIME_WASI_FILE_PERMS_WRITE == %d, "file perms");
`, sizeofInstance, sizeofFunc, sizeofVal, sizeofByteVec, valKindU8, valKindResult, strategyCranelift,
		dirPermsRead, dirPermsWrite, filePermsRead, filePermsWrite)
	wasmfixture.CheckWasmtimeHeaders(t, "component_capi.go", asserts)
}
