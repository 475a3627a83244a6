package wasmtime

import (
	"bytes"
	"context"
	"encoding/json"
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

// Environment variables of the helper process. A module writes to the real
// file descriptors 0, 1 and 2, so tests that look at a module's output run it
// in a child copy of the test binary and read the child's stdout and stderr.
const (
	helperEnv     = "ENARX_ENGINE_HELPER"      // "1" in the child
	helperWasmEnv = "ENARX_ENGINE_HELPER_WASM" // path of the module
	helperOptsEnv = "ENARX_ENGINE_HELPER_OPTS" // engine.RunOptions as JSON
	// helperSocketsEnv names the sockets the child inherits at its
	// descriptors 3, 4, ..., separated by ",": opts.Sockets cannot travel
	// as JSON.
	helperSocketsEnv = "ENARX_ENGINE_HELPER_SOCKETS"
	// helperFailure is the child's exit status when Run returns an error,
	// chosen outside the statuses the fixtures use.
	helperFailure = 125
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(runHelper())
	}
	code := m.Run()
	fixtures.Remove()
	os.Exit(code)
}

// runHelper runs one module as the child process and returns the exit status
// the child must end with: the module's status, or helperFailure with the
// error on stderr.
func runHelper() int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "helper: %v\n", err)
		return helperFailure
	}
	wasm, err := os.ReadFile(os.Getenv(helperWasmEnv))
	if err != nil {
		return fail(err)
	}
	var opts engine.RunOptions
	if err := json.Unmarshal([]byte(os.Getenv(helperOptsEnv)), &opts); err != nil {
		return fail(err)
	}
	if names := os.Getenv(helperSocketsEnv); names != "" {
		for i, name := range strings.Split(names, ",") {
			opts.Sockets = append(opts.Sockets, engine.Socket{Name: name, File: os.NewFile(uintptr(3+i), name)})
		}
	}
	e, err := New()
	if err != nil {
		return fail(err)
	}
	mod, err := e.Compile(context.Background(), wasm)
	if err != nil {
		return fail(err)
	}
	status, err := mod.Run(context.Background(), opts)
	if err != nil {
		return fail(err)
	}
	return status
}

// childResult is what a helper child did.
type childResult struct {
	stdout, stderr string
	status         int
}

// runChild runs the module at wasmPath in a helper child with opts, stdin
// as its standard input and extraEnv added to the child's own environment.
// The child gets the Files of opts.Sockets, which must have no Acceptor.
func runChild(t *testing.T, wasmPath string, opts engine.RunOptions, stdin string, extraEnv ...string) childResult {
	t.Helper()
	socks := opts.Sockets
	opts.Sockets = nil
	js, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperWasmEnv+"="+wasmPath, helperOptsEnv+"="+string(js))
	cmd.Env = append(cmd.Env, extraEnv...)
	if len(socks) > 0 {
		var names []string
		for _, s := range socks {
			if s.File == nil || strings.Contains(s.Name, ",") {
				t.Fatalf("runChild: socket %q: only Files, and no ',' in names", s.Name)
			}
			names = append(names, s.Name)
			cmd.ExtraFiles = append(cmd.ExtraFiles, s.File)
		}
		cmd.Env = append(cmd.Env, helperSocketsEnv+"="+strings.Join(names, ","))
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run helper: %v", err)
	}
	return childResult{stdout: stdout.String(), stderr: stderr.String(), status: cmd.ProcessState.ExitCode()}
}

// writeWAT compiles text and stores it as a file for a helper child.
func writeWAT(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "module.wasm")
	if err := os.WriteFile(p, wat(t, text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func newEngineWith(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := NewWithOptions(opts)
	if err != nil {
		t.Fatalf("NewWithOptions(%+v): %v", opts, err)
	}
	return e
}

// compileWAT compiles a WAT fixture with e.
func compileWAT(t testing.TB, e *Engine, text string) engine.Module {
	t.Helper()
	m, err := e.Compile(context.Background(), wat(t, text))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return m
}

func TestName(t *testing.T) {
	if got, want := newEngine(t).Name(), "wasmtime-go v39.0.1"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
}

// TestVersionMatchesGoMod catches a wasmtime-go upgrade that forgets to
// update Version. Test binaries carry no dependency build info, so ask the go
// command which version the module selects.
func TestVersionMatchesGoMod(t *testing.T) {
	out, err := exec.Command(wasmfixture.GoTool(), "list", "-m", "-f", "{{.Version}}", "github.com/bytecodealliance/wasmtime-go/v39").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != Version {
		t.Errorf("Version = %q, but go.mod selects wasmtime-go %s", Version, got)
	}
}

func TestCompileRejectsBadInput(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name string
		wasm []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"garbage", []byte("this is not a wasm module at all")},
		{"random bytes", []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x13, 0x37}},
		{"truncated header", []byte("\x00asm\x01\x00")},
		{"bad version", []byte("\x00asm\x02\x00\x00\x00")},
		{"truncated module", wat(t, watExit42)[:20]},
		{"wat text", []byte(watExit42)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := e.Compile(context.Background(), tc.wasm)
			if err == nil {
				t.Fatalf("Compile succeeded, want an error")
			}
			if m != nil {
				t.Errorf("Compile returned a module with its error")
			}
			if !strings.HasPrefix(err.Error(), "wasmtime: compile module: ") {
				t.Errorf("error %q lacks the compile context", err)
			}
		})
	}
}

// FuzzCompile checks that no input makes Compile panic, including the
// description of a module's exports, which wasmtime-go can panic on.
func FuzzCompile(f *testing.F) {
	f.Add([]byte("garbage"))
	f.Add([]byte{})
	f.Add(wat(f, watExit42))
	f.Add(wat(f, watSIMD))
	f.Add(wat(f, watExports))
	e := newEngine(f)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		m, err := e.Compile(context.Background(), wasm)
		if (m == nil) == (err == nil) {
			t.Fatalf("Compile() = %v, %v: want exactly one of a module and an error", m, err)
		}
	})
}

func TestCompileCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newEngine(t).Compile(ctx, wat(t, watExit42))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Compile with a cancelled context: err = %v, want context.Canceled", err)
	}
}

func TestExitStatus(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name   string
		wat    string
		opts   engine.RunOptions
		status int
	}{
		{"proc_exit", watExit42, engine.RunOptions{}, 42},
		{"return", watReturn, engine.RunOptions{}, 0},
		{"explicit _start", watExit42, engine.RunOptions{Entrypoint: "_start"}, 42},
		{"custom entrypoint", watExports, engine.RunOptions{Entrypoint: "run"}, 7},
		{"entrypoint with results", watExports, engine.RunOptions{Entrypoint: "answer"}, 0},
		{"entrypoint with reference result", watSIMD, engine.RunOptions{Entrypoint: "ref"}, 0},
		{"reactor _initialize first", watReactor, engine.RunOptions{Entrypoint: "run"}, 5},
		{"reactor _initialize as entrypoint", watReactor, engine.RunOptions{Entrypoint: "_initialize"}, 0},
		{"command ignores _initialize", watCommandWithInitialize, engine.RunOptions{}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := compileWAT(t, e, tc.wat)
			status, err := m.Run(context.Background(), tc.opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if status != tc.status {
				t.Errorf("status = %d, want %d", status, tc.status)
			}
		})
	}
}

// TestRunTwice checks that every run gets a fresh instance: the reactor's
// _initialize adds 5 to a global, so a shared instance would exit with 10.
func TestRunTwice(t *testing.T) {
	m := compileWAT(t, newEngine(t), watReactor)
	for i := range 2 {
		status, err := m.Run(context.Background(), engine.RunOptions{Entrypoint: "run"})
		if err != nil || status != 5 {
			t.Errorf("run %d: Run() = %d, %v; want 5, nil", i, status, err)
		}
	}
}

// TestPrepareRun: a run made ready ahead (engine.RunPreparer) runs as Run
// does, once; one never run is freed by Close; what Run refuses before it
// instantiates, PrepareRun refuses; and a run prepared and then cancelled
// before it starts reports an interruption.
func TestPrepareRun(t *testing.T) {
	e := newEngine(t)
	reactor := compileWAT(t, e, watReactor).(engine.RunPreparer)
	p, err := reactor.PrepareRun(engine.RunOptions{Entrypoint: "run"})
	if err != nil {
		t.Fatalf("PrepareRun: %v", err)
	}
	if status, err := p.Run(context.Background()); err != nil || status != 5 {
		t.Errorf("prepared Run() = %d, %v; want 5, nil", status, err)
	}
	p.Close() // after Run: nothing left to free, and no crash

	unused, err := reactor.PrepareRun(engine.RunOptions{Entrypoint: "run"})
	if err != nil {
		t.Fatalf("PrepareRun: %v", err)
	}
	unused.Close()
	unused.Close()

	exports := compileWAT(t, e, watExports).(engine.RunPreparer)
	if _, err := exports.PrepareRun(engine.RunOptions{Entrypoint: "nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("PrepareRun of a missing entrypoint: %v", err)
	}

	cancelled, err := reactor.PrepareRun(engine.RunOptions{Entrypoint: "run"})
	if err != nil {
		t.Fatalf("PrepareRun: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cancelled.Run(ctx); !errors.Is(err, engine.ErrInterrupted) {
		t.Errorf("Run of a prepared run with a cancelled context: %v, want ErrInterrupted", err)
	}
}

func TestTrap(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name string
		wat  string
		// first is how the message must begin: with the cause.
		first string
		want  []string
	}{
		{"unreachable", watUnreachable, "wasm `unreachable` instruction executed\n", []string{"wasm backtrace:", "boom"}},
		{"start function", watStartTrap, "wasm `unreachable` instruction executed\n", []string{"wasm backtrace:", "init"}},
		{"divide by zero", watDivZero, "integer divide by zero\n", []string{"wasm backtrace:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := compileWAT(t, e, tc.wat)
			status, err := m.Run(context.Background(), engine.RunOptions{})
			var trap *engine.TrapError
			if !errors.As(err, &trap) {
				t.Fatalf("Run() = %d, %v (%T); want a *engine.TrapError", status, err, err)
			}
			if status != 0 {
				t.Errorf("status = %d with a trap, want 0", status)
			}
			if !strings.HasPrefix(trap.Message, tc.first) {
				t.Errorf("trap message %q does not start with %q", trap.Message, tc.first)
			}
			for _, w := range tc.want {
				if !strings.Contains(trap.Message, w) {
					t.Errorf("trap message %q does not mention %q", trap.Message, w)
				}
			}
			if strings.Contains(trap.Message, "Stack backtrace") {
				t.Errorf("trap message %q has the host's native backtrace", trap.Message)
			}
			if errors.Is(err, engine.ErrInterrupted) {
				t.Errorf("a plain trap matches ErrInterrupted")
			}
		})
	}
}

func TestEntrypointErrors(t *testing.T) {
	e := newEngine(t)
	exports := compileWAT(t, e, watExports)
	for _, tc := range []struct {
		name  string
		mod   engine.Module
		entry string
		want  []string
	}{
		{"missing _start", exports, "", []string{`"_start"`, "not exported", "run()", "add(i32, i32)", "answer()"}},
		{"missing custom", exports, "nope", []string{`"nope"`, "not exported", "run()"}},
		{"has params", exports, "add", []string{`"add"`, "parameters (i32, i32)", "run()"}},
		{"memory", exports, "memory", []string{`"memory"`, "memory export, not a function"}},
		{"global", exports, "counter", []string{`"counter"`, "global export, not a function"}},
		{"no functions", compileWAT(t, e, `(module (memory (export "memory") 1))`), "", []string{`"_start"`, "exported functions: (none)"}},
		{"bad _initialize", compileWAT(t, e, watBadInitialize), "run", []string{`"_initialize"`, "parameters (i32)"}},
		{"v128 result", compileWAT(t, e, watSIMD), "simd", []string{`"simd"`, "returns a v128", "simd() -> (v128)", "take(v128) -> ()"}},
		{"v128 param", compileWAT(t, e, watSIMD), "take", []string{`"take"`, "parameters (v128)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, err := tc.mod.Run(context.Background(), engine.RunOptions{Entrypoint: tc.entry})
			if err == nil {
				t.Fatalf("Run() = %d, nil; want an error", status)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var trap *engine.TrapError
			if errors.As(err, &trap) {
				t.Errorf("entrypoint error is a trap: %v", err)
			}
		})
	}
}

func TestImportErrors(t *testing.T) {
	e := newEngine(t)

	// Compile refuses imports no run could satisfy, naming them all.
	_, err := e.Compile(context.Background(), wat(t, watHostImport))
	if err == nil {
		t.Fatal("Compile of a module importing env.host_fn succeeded")
	}
	for _, w := range []string{`"env"."host_fn"`, `"env"."host_table"`, "wasi_snapshot_preview1"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "proc_exit") {
		t.Errorf("error %q lists a WASI import that is provided", err)
	}

	// Thousands of them: the error names the first few and the count, and
	// stays short.
	var b strings.Builder
	b.WriteString("(module\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "(import \"wasi_snapshot_preview1\" \"not_wasi_%d\" (func))\n", i)
	}
	b.WriteString(`(func (export "_start")))`)
	began := time.Now()
	_, err = e.Compile(context.Background(), wat(t, b.String()))
	if err == nil {
		t.Fatal("Compile of a module with 5000 unknown imports succeeded")
	}
	t.Logf("5000 unknown imports: refused in %v: %v", time.Since(began).Round(time.Millisecond), err)
	for _, w := range []string{`"wasi_snapshot_preview1"."not_wasi_0"`, `"wasi_snapshot_preview1"."not_wasi_9"`, "and 4990 more (5000 imports in all)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q: %v", w, err)
		}
	}
	if strings.Contains(err.Error(), "not_wasi_10\"") || len(err.Error()) > 1024 {
		t.Errorf("error lists more than 10 imports (%d bytes): %.300s", len(err.Error()), err)
	}

	// A WASI import with the wrong type is wasmtime's own error; it must
	// still name the import.
	_, err = compileWAT(t, e, watWrongWASISignature).Run(context.Background(), engine.RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "proc_exit") {
		t.Errorf("Run with a mistyped WASI import: err = %v, want an error naming proc_exit", err)
	}
}

func TestBadRunOptions(t *testing.T) {
	m := compileWAT(t, newEngine(t), watExit42)
	for _, tc := range []struct {
		name string
		opts engine.RunOptions
		want string
	}{
		{"env without =", engine.RunOptions{Env: []string{"NOVALUE"}}, `"NOVALUE" is not KEY=value`},
		{"env empty key", engine.RunOptions{Env: []string{"=x"}}, `"=x" is not KEY=value`},
		{"env NUL", engine.RunOptions{Env: []string{"A=b\x00c"}}, `"A" contains a NUL byte`},
		{"arg NUL", engine.RunOptions{Args: []string{"prog", "a\x00b"}}, "argument 1 contains a NUL byte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Run(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run() err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestInterrupt(t *testing.T) {
	e := newEngine(t)
	m := compileWAT(t, e, watLoop)
	for _, tc := range []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		cause error
	}{
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			r := await(t, run(ctx, m))
			status, err := r.status, r.err
			elapsed := time.Since(start)
			if !errors.Is(err, engine.ErrInterrupted) {
				t.Fatalf("Run() = %d, %v; want ErrInterrupted", status, err)
			}
			if !errors.Is(err, tc.cause) {
				t.Errorf("err %v does not match the context's error %v", err, tc.cause)
			}
			var trap *engine.TrapError
			if errors.As(err, &trap) {
				t.Errorf("interruption reported as a trap: %v", err)
			}
			// A correctness bound, not a benchmark: the interrupt must
			// reach the spinning loop at all.
			if elapsed > 2*time.Second {
				t.Errorf("Run returned %v after start, want < 2s", elapsed)
			}
		})
	}
}

func TestAlreadyCancelled(t *testing.T) {
	m := compileWAT(t, newEngine(t), watExit42)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	status, err := m.Run(ctx, engine.RunOptions{})
	if !errors.Is(err, engine.ErrInterrupted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run() = %d, %v; want ErrInterrupted and context.Canceled", status, err)
	}
	if status != 0 {
		t.Errorf("status = %d: the module ran although ctx was cancelled", status)
	}
}

// TestNoEpochInterruption checks what an engine without epoch
// interruption (a Keep's, whose process ends when it cancels a run) does
// with a run's context: a module runs with a context that can be cancelled
// and ends with its own status; a context cancelled before the run stops
// it before any code runs; one cancelled while wasm code runs leaves it
// running to its end, which the process's exit must bring about instead
// (TestSocketsInterrupt has the waiting server that is still stopped).
func TestNoEpochInterruption(t *testing.T) {
	e := newEngineWith(t, Options{NoEpochInterruption: true})
	exit42 := compileWAT(t, e, watExit42)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if status, err := exit42.Run(ctx, engine.RunOptions{}); status != 42 || err != nil {
		t.Errorf("Run() = %d, %v; want 42, nil", status, err)
	}
	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if status, err := exit42.Run(cancelled, engine.RunOptions{}); !errors.Is(err, engine.ErrInterrupted) || !errors.Is(err, context.Canceled) || status != 0 {
		t.Errorf("Run() with a cancelled context = %d, %v; want ErrInterrupted and context.Canceled", status, err)
	}
	spin := compileWAT(t, e, watSpin300ms)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	done := run(ctx, spin)
	time.Sleep(50 * time.Millisecond)
	cancel()
	if r := await(t, done); r.status != 0 || r.err != nil {
		t.Errorf("Run() cancelled in wasm code = %d, %v; want 0, nil: the code runs to its end", r.status, r.err)
	}
}

// result is what Run returned, for runs in a goroutine.
type result struct {
	status int
	err    error
}

// run starts m.Run in a goroutine.
func run(ctx context.Context, m engine.Module) <-chan result {
	c := make(chan result, 1)
	go func() {
		status, err := m.Run(ctx, engine.RunOptions{})
		c <- result{status, err}
	}()
	return c
}

// await waits for a run started with run, failing the test rather than
// hanging when the run does not end: a spinning module cannot be stopped
// if interruption is broken.
func await(t *testing.T, c <-chan result) result {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s")
		return result{}
	}
}

// TestFinishedRunIsNotInterrupted checks that cancelling a run's context
// after Run returned does not touch the engine: the watcher goroutine must
// be gone, or its epoch increment would trap the run in progress.
func TestFinishedRunIsNotInterrupted(t *testing.T) {
	e := newEngine(t)
	quick := compileWAT(t, e, watExit42)
	spin := compileWAT(t, e, watSpin300ms)

	ctxA, cancelA := context.WithCancel(context.Background())
	if status, err := quick.Run(ctxA, engine.RunOptions{}); err != nil || status != 42 {
		t.Fatalf("first run: Run() = %d, %v; want 42, nil", status, err)
	}

	// The second run has a cancellable context (so it can be tripped by an
	// epoch increment) that is never cancelled.
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	done := run(ctxB, spin)
	time.Sleep(100 * time.Millisecond)
	cancelA()
	r := await(t, done)
	if r.err != nil || r.status != 0 {
		t.Errorf("second run: Run() = %d, %v; want 0, nil", r.status, r.err)
	}
}

// TestSharedEngineInterrupts documents how cancellation of one run affects
// others on the same engine: the cancelled run is ErrInterrupted; another run
// with a cancellable context is collateral damage and reported as a trap, not
// as ErrInterrupted; a run with an uncancellable context is not affected.
func TestSharedEngineInterrupts(t *testing.T) {
	e := newEngine(t)
	loop := compileWAT(t, e, watLoop)
	spin := compileWAT(t, e, watSpin300ms)

	// bystanderCtx is never cancelled by the test body; the guard only
	// stops the loop if the engine does not behave as documented.
	bystanderCtx, stopBystander := context.WithCancel(context.Background())
	defer stopBystander()
	guard := time.AfterFunc(5*time.Second, stopBystander)
	defer guard.Stop()

	bystander := run(bystanderCtx, loop)
	immune := run(context.Background(), spin)
	time.Sleep(100 * time.Millisecond) // let both enter wasm code

	ctx, cancel := context.WithCancel(context.Background())
	victim := run(ctx, loop)
	time.Sleep(50 * time.Millisecond)
	cancel()

	if r := await(t, victim); !errors.Is(r.err, engine.ErrInterrupted) {
		t.Errorf("cancelled run: Run() = %d, %v; want ErrInterrupted", r.status, r.err)
	}
	r := await(t, bystander)
	if bystanderCtx.Err() != nil {
		t.Fatalf("the bystander run was not tripped by the other run's interrupt; Run() = %d, %v", r.status, r.err)
	}
	var trap *engine.TrapError
	if !errors.As(r.err, &trap) || errors.Is(r.err, engine.ErrInterrupted) {
		t.Errorf("bystander run: Run() = %d, %v (%T); want a *engine.TrapError, not ErrInterrupted", r.status, r.err, r.err)
	} else if !strings.Contains(trap.Message, "interrupt") {
		t.Errorf("bystander trap %q does not say it was an interrupt", trap.Message)
	}
	if r := await(t, immune); r.err != nil || r.status != 0 {
		t.Errorf("run with an uncancellable context: Run() = %d, %v; want 0, nil", r.status, r.err)
	}
}

func TestGoHello(t *testing.T) {
	wasm := fixtures.Wasm(t, "testdata/hello")
	t.Run("args env and output", func(t *testing.T) {
		t.Parallel()
		r := runChild(t, wasm, engine.RunOptions{
			Args: []string{"hello", "a b", "c"},
			Env:  []string{"GREETING=bonjour=salut", "OTHER=x"},
		}, "", "GREETING=leaked-from-host")
		if r.status != 0 {
			t.Fatalf("exit status %d, want 0; stderr: %s", r.status, r.stderr)
		}
		want := "hello\nargs=hello|a b|c\nGREETING=bonjour=salut\n"
		if r.stdout != want {
			t.Errorf("stdout = %q, want %q", r.stdout, want)
		}
		if r.stderr != "to stderr\n" {
			t.Errorf("stderr = %q, want %q", r.stderr, "to stderr\n")
		}
	})
	t.Run("host environment not inherited", func(t *testing.T) {
		t.Parallel()
		r := runChild(t, wasm, engine.RunOptions{Args: []string{"hello"}}, "", "GREETING=leaked-from-host")
		if r.status != 0 {
			t.Fatalf("exit status %d, want 0; stderr: %s", r.status, r.stderr)
		}
		if !strings.Contains(r.stdout, "GREETING=\n") {
			t.Errorf("stdout = %q: the module saw the host's GREETING", r.stdout)
		}
	})
	t.Run("exit status", func(t *testing.T) {
		t.Parallel()
		r := runChild(t, wasm, engine.RunOptions{Args: []string{"hello"}, Env: []string{"EXIT_CODE=7"}}, "")
		if r.status != 7 {
			t.Errorf("exit status %d, want 7; stderr: %s", r.status, r.stderr)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		t.Parallel()
		r := runChild(t, wasm, engine.RunOptions{Args: []string{"hello", "--cat"}}, "piped input\n")
		if r.status != 0 {
			t.Fatalf("exit status %d, want 0; stderr: %s", r.status, r.stderr)
		}
		if !strings.HasSuffix(r.stdout, "GREETING=\npiped input\n") {
			t.Errorf("stdout = %q, want it to end with the piped input", r.stdout)
		}
	})
}

func TestWATOutputAndExitInChild(t *testing.T) {
	r := runChild(t, writeWAT(t, watHello), engine.RunOptions{}, "")
	if r.status != 0 || r.stdout != "hi\n" || r.stderr != "" {
		t.Errorf("hello WAT: status %d, stdout %q, stderr %q; want 0, %q, %q", r.status, r.stdout, r.stderr, "hi\n", "")
	}
	r = runChild(t, writeWAT(t, watExit42), engine.RunOptions{}, "")
	if r.status != 42 {
		t.Errorf("proc_exit(42) WAT: child exit status %d, want 42; stderr: %s", r.status, r.stderr)
	}
}

// TestTrapMessageWithRustBacktrace runs a trapping module where wasmtime
// appends the host's native backtrace to its messages (RUST_BACKTRACE=1 is
// read once per process, hence the child) and checks that it is left out.
func TestTrapMessageWithRustBacktrace(t *testing.T) {
	r := runChild(t, writeWAT(t, watUnreachable), engine.RunOptions{}, "", "RUST_BACKTRACE=1")
	if r.status != helperFailure {
		t.Fatalf("child exit status %d, want %d; stderr: %s", r.status, helperFailure, r.stderr)
	}
	want := "helper: wasm trap: wasm `unreachable` instruction executed\nwasm backtrace:\n"
	if !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr = %q, want it to start with %q", r.stderr, want)
	}
	if strings.Contains(r.stderr, "Stack backtrace") {
		t.Errorf("stderr = %q has the host's native backtrace", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
}
