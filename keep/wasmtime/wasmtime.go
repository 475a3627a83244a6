// Package wasmtime implements engine.Engine with wasmtime-go (Cranelift, cgo).
//
// Everything wasmtime-specific stays in this package: the rest of the Keep
// sees only engine.Engine, engine.Module and the errors defined by package keep.
//
// # Cancellation
//
// By default (New) the engine is configured with epoch interruption. Every
// Run arms its store with an epoch deadline one tick ahead and, while the
// module runs, a watcher goroutine increments the engine's epoch when the
// run's context is done. The generated code checks the epoch at function
// entries and loop back-edges, so a spinning module traps with an
// "interrupt" trap and Run returns an error matching engine.ErrInterrupted.
//
// Those checks cost 12–26 % on call-heavy code. An engine made with
// Options.NoEpochInterruption has none: it is for a process that ends soon
// after a run's context is done, as a Keep does (it exits 128+n after a
// short grace), so that the process's end, not the engine, stops wasm code.
// There the watcher only interrupts hostwasi's poll_oneoff (below): a
// server waiting for a connection still stops at once, and a module
// spinning in wasm code runs on until the process ends.
//
// Two limits follow from wasmtime's design, and the callers must live with
// them:
//
//   - A host call is not interrupted, except hostwasi's poll_oneoff (the WASI
//     of core modules on Linux, see WASI below), which the watcher wakes, so
//     a server waiting for a connection stops at once. A module blocked in
//     any other host call (fd_read waiting on stdin, wasmtime's WASI on other
//     systems, ...) only sees the interrupt when it returns to wasm code. The
//     Keep process hard-exits after a grace period for that case; this
//     package does not try to do better.
//   - The epoch belongs to the engine, not to the store. Cancelling one run
//     also trips every other run on the same Engine that has a cancellable
//     context (their deadline is the same next tick). Such a collateral trap is
//     reported as a *engine.TrapError, never as engine.ErrInterrupted, because that
//     run's own context was not cancelled. Runs whose context can never be
//     cancelled (ctx.Done() == nil) get a deadline that is never reached and
//     are immune. Use one Engine per workload when this matters; wasmtime-go
//     v39 does not expose the per-store epoch callback that would avoid it.
//
// Components run on an engine of their own, always with epoch
// interruption (component.go).
//
// # WASI
//
// On Linux every core module gets package hostwasi's WASI preview 1,
// written in Go on the same engine and matched call by call against
// wasmtime's own (its differential suite): the argv, environment, stdio and
// preopens, and a workload's sockets (engine.RunOptions.Sockets, which
// wasmtime-go's WASI cannot hold) at the descriptors after the preopens,
// with FD_COUNT/FD_NAMES naming every descriptor (docs/networking.md). So a
// workload sees one WASI whether or not it declares a socket, and its run
// starts no thread of wasmtime's WASI runtime (a tokio runtime with a worker
// a CPU, made at the first host call). Elsewhere a run without sockets gets
// wasmtime's own WASI (Linker.DefineWasi).
package wasmtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/containerd/log"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/wasmtime/jumpthread"
)

// Version is the wasmtime-go release this package is built and tested
// against. It is a constant rather than read from debug.ReadBuildInfo because
// test binaries (and binaries built outside module mode) carry no dependency
// versions; a test checks that it matches what go.mod selects.
const Version = "v39.0.1"

// initializeExport is the WASI reactor initialisation function. A reactor
// exports it instead of _start and expects it to run before any other export.
const initializeExport = "_initialize"

// neverDeadline is the epoch deadline, in ticks from now, given to runs whose
// context can never be cancelled. It is far beyond any epoch the engine will
// reach but small enough that wasmtime's "current epoch + delta" cannot
// overflow into a deadline in the past.
const neverDeadline = 1 << 62

// Engine is a wasmtime engine configured for Keeps: Cranelift code
// generation and, unless made without (Options), epoch interruption. It is
// safe for concurrent use; see the package documentation for how
// cancellation interacts between runs that share it.
type Engine struct {
	engine *wasmtime.Engine
	// epoch is false when the engine was made without epoch
	// interruption (Options.NoEpochInterruption).
	epoch bool

	// component is the engine of components (see component.go), made
	// on first use.
	componentOnce sync.Once
	component     *componentEngine
	componentErr  error
}

// Compile-time checks that the wasmtime types implement the Keep seams.
var (
	_ engine.Engine = (*Engine)(nil)
	_ engine.Module = (*Module)(nil)
)

// settings names the Config settings the engine was made with, for
// Fingerprint: a change to NewWithOptions must change it, or Keeps would
// load native code compiled with the old settings (wasmtime refuses some
// mismatches, not all).
func (e *Engine) settings() string {
	return fmt.Sprintf("strategy=cranelift epoch_interruption=%t jump_threading=%d", e.epoch, jumpthread.Version)
}

// Options are an Engine's settings beyond New's.
type Options struct {
	// NoEpochInterruption compiles wasm code without epoch interruption's
	// checks at every function entry and loop head: fib(38) runs 12–26 %
	// faster, sha256 2–10 % (docs/runtime.md, "Engine settings"). Cancelling
	// a run's context then no longer stops wasm code: it only makes a
	// poll_oneoff of hostwasi's WASI (a run with sockets) trap, and Run
	// returns when the module calls one or ends by itself. Set it only
	// where the process ends soon after it cancels a run, as a Keep
	// does (it exits 128+n after a short grace whatever the engine
	// does), so that the process's end stops a module spinning in wasm
	// code. Components keep epoch interruption whatever this says.
	NoEpochInterruption bool
}

// KeepOptions are the options of a Keep's engine (cmd/enarx-keep), which
// benchmarks of the engine use too: a Keep ends its process when it
// cancels its run (guest.Main exits 128+n after a short grace), so its
// engine goes without epoch interruption.
func KeepOptions() Options { return Options{NoEpochInterruption: true} }

// New returns an Engine using Cranelift with epoch interruption enabled:
// cancelling a run's context stops it (see the package documentation).
//
// It returns an error for symmetry with engines whose set-up can fail;
// wasmtime-go's engine construction itself does not report errors.
func New() (*Engine, error) { return NewWithOptions(Options{}) }

// NewWithOptions returns an Engine using Cranelift, with epoch
// interruption unless opts.NoEpochInterruption.
func NewWithOptions(opts Options) (*Engine, error) {
	cfg := wasmtime.NewConfig()
	// Pinning Cranelift (rather than "auto") makes the choice explicit: the
	// alternative backends (Winch, Pulley) have different performance and
	// feature profiles, and measurements in this project assume Cranelift.
	cfg.SetStrategy(wasmtime.StrategyCranelift)
	// Epoch interruption is the cheapest way wasmtime has (a load and
	// compare at loop heads and function entries) to stop a module that
	// never calls into the host; fuel costs more. It still costs 12–26 %
	// on call-heavy code (fib), 2–10 % on sha256: a Keep, whose process
	// ends when its run is cancelled, goes without (Options).
	epoch := !opts.NoEpochInterruption
	cfg.SetEpochInterruption(epoch)
	// Everything else stays at wasmtime's defaults, which measured best
	// (docs/runtime.md, "Engine settings"): opt level speed, SIMD, guard
	// pages that leave memory accesses without bounds checks.
	e := wasmtime.NewEngineWithConfig(cfg)
	if e == nil {
		return nil, errors.New("wasmtime: create engine: no engine returned")
	}
	return &Engine{engine: e, epoch: epoch}, nil
}

// Name identifies the engine and the wasmtime-go release, e.g.
// "wasmtime-go v39.0.1".
func (e *Engine) Name() string { return "wasmtime-go " + Version }

// Compile validates and compiles a core WebAssembly module (binary format).
//
// Compilation itself cannot be interrupted: ctx is only checked before it
// starts. A large module (a Go program is a few MB) takes on the order of
// seconds with Cranelift.
func (e *Engine) Compile(ctx context.Context, wasm []byte) (engine.Module, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wasmtime: compile module: %w", err)
	}
	if len(wasm) == 0 {
		// wasmtime would say something about an unexpected end of input;
		// an empty module is common enough (a truncated download, a wrong
		// path) to deserve a plain message.
		return nil, errors.New("wasmtime: compile module: empty input, not a WebAssembly module")
	}
	if IsComponent(wasm) {
		return e.compileComponent(wasm)
	}
	// Branches through Go's dispatch loops go straight to their blocks,
	// and calls past the dispatch (package jumpthread): fib 21 % faster,
	// sha256 8 %.
	threaded, branches := jumpthread.Thread(wasm)
	mod, err := wasmtime.NewModule(e.engine, threaded)
	if err != nil && branches > 0 {
		// Threading keeps a valid module valid. Should it ever fail
		// to, the module is still the workload's: it is compiled as
		// it came, and its own errors are the ones reported.
		mod, err = wasmtime.NewModule(e.engine, wasm)
		if err == nil {
			log.G(ctx).WithField("branches", branches).Warn("wasmtime: the module compiled only without jump threading (a bug in package jumpthread): compiled as it came")
		}
	}
	if err != nil {
		// The message is kept, not the *wasmtime.Error: callers cannot
		// use wasmtime types without breaking the engine seam.
		return nil, fmt.Errorf("wasmtime: compile module: %s", errorText(err))
	}
	releaseCompilerMemory()
	m := newModule(e, mod)
	// Imports no run could satisfy fail the compile, so that a Keep
	// refuses such a module before it reports ready (the container's
	// creation fails), not when its workload starts.
	if err := m.checkWASIImports(); err != nil {
		return nil, err
	}
	return m, nil
}

// checkWASIImports reports the module's imports that WASI preview 1 does
// not provide (see checkImports), with wasmtime's WASI, which both WASIs
// of Run provide the functions of.
func (m *Module) checkWASIImports() error {
	if len(m.module.Imports()) == 0 {
		return nil
	}
	store := wasmtime.NewStore(m.engine.engine)
	defer store.Close()
	linker := wasmtime.NewLinker(m.engine.engine)
	defer linker.Close()
	if err := linker.DefineWasi(); err != nil {
		return fmt.Errorf("wasmtime: define WASI imports: %s", errorText(err))
	}
	return m.checkImports(linker, store)
}

// Module is a compiled module. Each Run gets a fresh store and instance, so a
// Module can be run any number of times, concurrently too.
type Module struct {
	engine *Engine
	module *wasmtime.Module

	// exports describes every export, in module order, computed once at
	// compile time so that entrypoint errors can be reported before any
	// workload code (start function, _initialize) runs.
	exports []export
}

// export is what Run needs to know about one export of the module.
type export struct {
	name string
	// isFunc is false for memories, tables and globals.
	isFunc bool
	// kind names a non-function export's type, for error messages.
	kind string
	// params and results are the function's signature when isFunc.
	params, results []string
	// badResult names a result type that wasmtime-go cannot hand back to
	// Go (it panics on it), or is empty.
	badResult string
}

// v128Kind is the kind wasmtime reports for SIMD v128 values (WASMTIME_V128).
// wasmtime-go v39 has no constant for it.
const v128Kind wasmtime.ValKind = 4

// valTypeName names a value type. wasmtime-go's ValKind.String panics on
// kinds it does not know, such as v128, which any module may use.
func valTypeName(k wasmtime.ValKind) string {
	switch k {
	case wasmtime.KindI32, wasmtime.KindI64, wasmtime.KindF32, wasmtime.KindF64,
		wasmtime.KindExternref, wasmtime.KindFuncref:
		return k.String()
	case v128Kind:
		return "v128"
	}
	return fmt.Sprintf("<value type %d>", k)
}

// receivable reports whether Func.Call can convert a result of kind k; it
// panics on the others.
func receivable(k wasmtime.ValKind) bool {
	switch k {
	case wasmtime.KindI32, wasmtime.KindI64, wasmtime.KindF32, wasmtime.KindF64,
		wasmtime.KindExternref, wasmtime.KindFuncref:
		return true
	}
	return false
}

func newModule(e *Engine, mod *wasmtime.Module) *Module {
	m := &Module{engine: e, module: mod}
	for _, ex := range mod.Exports() {
		d := export{name: ex.Name()}
		ty := ex.Type()
		switch {
		case ty.FuncType() != nil:
			d.isFunc = true
			ft := ty.FuncType()
			for _, p := range ft.Params() {
				d.params = append(d.params, valTypeName(p.Kind()))
			}
			for _, r := range ft.Results() {
				d.results = append(d.results, valTypeName(r.Kind()))
				if !receivable(r.Kind()) && d.badResult == "" {
					d.badResult = valTypeName(r.Kind())
				}
			}
		case ty.MemoryType() != nil:
			d.kind = "memory"
		case ty.TableType() != nil:
			d.kind = "table"
		case ty.GlobalType() != nil:
			d.kind = "global"
		default:
			d.kind = "non-function"
		}
		m.exports = append(m.exports, d)
	}
	return m
}

// lookup returns the export called name, if any.
func (m *Module) lookup(name string) (export, bool) {
	for _, ex := range m.exports {
		if ex.name == name {
			return ex, true
		}
	}
	return export{}, false
}

// exportedFuncs lists the exported functions with their signatures, for
// error messages that must tell the user what they could have called.
func (m *Module) exportedFuncs() string {
	var names []string
	for _, ex := range m.exports {
		if ex.isFunc {
			names = append(names, fmt.Sprintf("%s(%s) -> (%s)", ex.name, strings.Join(ex.params, ", "), strings.Join(ex.results, ", ")))
		}
	}
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// checkCallable reports whether name is an exported function that can be
// called without arguments. Results are allowed and ignored (only WASI
// proc_exit sets an exit status, a returned value does not), except for the
// types wasmtime-go cannot return to Go.
func (m *Module) checkCallable(role, name string) error {
	ex, ok := m.lookup(name)
	switch {
	case !ok:
		return fmt.Errorf("wasmtime: %s %q is not exported by the module; exported functions: %s", role, name, m.exportedFuncs())
	case !ex.isFunc:
		return fmt.Errorf("wasmtime: %s %q is a %s export, not a function; exported functions: %s", role, name, ex.kind, m.exportedFuncs())
	case len(ex.params) != 0:
		return fmt.Errorf("wasmtime: %s %q takes parameters (%s) but must take none; exported functions: %s", role, name, strings.Join(ex.params, ", "), m.exportedFuncs())
	case ex.badResult != "":
		return fmt.Errorf("wasmtime: %s %q returns a %s, which this engine cannot receive; exported functions: %s", role, name, ex.badResult, m.exportedFuncs())
	}
	return nil
}

// Run instantiates the module in a new store with WASI preview 1 and calls the
// entrypoint. See engine.Module for the contract and the package documentation
// for how cancellation works and where it does not, and for which WASI a run
// gets: wasmtime's, or package hostwasi's when opts.Sockets is not empty.
//
// The entrypoint defaults to "_start". When another entrypoint is named and
// the module exports "_initialize" (a WASI reactor), "_initialize" is called
// first, as the reactor ABI requires.
//
// Exit status: proc_exit(n) anywhere (start function, _initialize or the
// entrypoint) gives (n, nil); the entrypoint returning gives (0, nil). A trap
// gives a *engine.TrapError, and an interruption because ctx was cancelled an
// error matching both engine.ErrInterrupted and ctx's error.
//
// opts.MemoryLimit caps each linear memory (see memoryLimit): a module whose
// initial memory is above it, or that fails after growing to it, gives a
// *engine.TrapError that starts with "memory limit N bytes exceeded".
func (m *Module) Run(ctx context.Context, opts engine.RunOptions) (int, error) {
	p, err := m.PrepareRun(opts)
	if err != nil {
		return 0, err
	}
	return p.Run(ctx)
}

// preparedRun is a run of a Module made ready (PrepareRun): its store,
// with the memory limit and WASI, and a linker that satisfies every import.
type preparedRun struct {
	closed   bool
	m        *Module
	store    *wasmtime.Store
	linker   *wasmtime.Linker
	hw       hostWASI
	limit    memoryLimit
	entry    string
	callInit bool
	// populate and touched are the run's engine.RunOptions.Populate and
	// Touched; pageMap is this process's page map, open for touched.
	populate []engine.MemoryRange
	touched  func([]engine.MemoryRange)
	pageMap  *os.File
	// profile is what the run had written of its memory when it first
	// asked for something of its container (hostwasi's BeforeInput), once
	// profiled: what Touched reports, so that nothing of one container's
	// inputs reaches another container's run through it.
	profile  []engine.MemoryRange
	profiled bool
}

// PrepareRun does what Run does before it instantiates the module: the
// checks of the entrypoint and of opts, and the store, the WASI context
// (its preopens opened) and the linker with every import the module needs
// (engine.RunPreparer). Nothing of the module runs.
func (m *Module) PrepareRun(opts engine.RunOptions) (engine.PreparedRun, error) {
	entry := opts.Entrypoint
	if entry == "" {
		entry = engine.DefaultEntrypoint
	}
	if err := m.checkCallable("entrypoint", entry); err != nil {
		return nil, err
	}
	callInit := false
	if entry != engine.DefaultEntrypoint && entry != initializeExport {
		if _, ok := m.lookup(initializeExport); ok {
			if err := m.checkCallable("reactor initializer", initializeExport); err != nil {
				return nil, err
			}
			callInit = true
		}
	}
	if err := validateRunOptions(opts); err != nil {
		return nil, err
	}

	p := &preparedRun{m: m, entry: entry, callInit: callInit, limit: memoryLimit{bytes: opts.MemoryLimit},
		populate: opts.Populate, touched: opts.Touched}
	if p.touched != nil {
		p.pageMap = openPageMap()
	}
	p.store = wasmtime.NewStore(m.engine.engine)
	p.limit.apply(p.store)
	p.linker = wasmtime.NewLinker(m.engine.engine)
	if err := p.define(opts); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// define puts the WASI imports in the run's linker: package hostwasi's on
// Linux, and wherever the run has sockets; wasmtime's elsewhere. It checks
// that the linker has every import of the module.
func (p *preparedRun) define(opts engine.RunOptions) error {
	if hostWASIAvailable || len(opts.Sockets) > 0 {
		var err error
		var beforeInput func([]byte)
		if p.touched != nil && p.pageMap != nil {
			beforeInput = func(mem []byte) { p.profile, p.profiled = touchedRanges(p.pageMap, mem), true }
		}
		if p.hw, err = newHostWASI(opts, beforeInput); err != nil {
			return err
		}
		if err := p.hw.Define(p.linker); err != nil {
			return fmt.Errorf("wasmtime: define WASI imports: %w", err)
		}
	} else {
		wasi, err := newWasiConfig(opts)
		if err != nil {
			return err
		}
		p.store.SetWasi(wasi)
		if err := p.linker.DefineWasi(); err != nil {
			return fmt.Errorf("wasmtime: define WASI imports: %s", errorText(err))
		}
	}
	return p.m.checkImports(p.linker, p.store)
}

// Close frees the run's store, which owns the instance's memories, now
// rather than whenever the Go GC, which does not see their size, gets to
// it; and its WASI and linker.
func (p *preparedRun) Close() {
	if p.closed {
		return
	}
	p.closed = true
	if p.hw != nil {
		p.hw.Close()
	}
	p.linker.Close()
	p.store.Close()
	if p.pageMap != nil {
		p.pageMap.Close()
	}
}

// Run instantiates the module and calls its entrypoint (see Module.Run),
// once; it closes the run.
func (p *preparedRun) Run(ctx context.Context) (int, error) {
	defer p.Close()
	if ctx.Err() != nil {
		// Not started yet: report it like an interruption so that callers
		// have a single "stopped from outside" case to handle.
		return 0, interrupted(ctx)
	}
	var clock epochClock
	if p.m.engine.epoch {
		clock = p.m.engine.engine
	}
	// Stopped before the run's WASI closes (Close, deferred first): the
	// watcher never interrupts a closed WASI.
	w := watch(ctx, clock, p.store, p.hw)
	defer w.stop()

	inst, err := p.linker.Instantiate(p.store, p.m.module)
	if err != nil {
		if lerr := p.limit.instantiateError(err); lerr != nil {
			return 0, lerr
		}
		return w.result(ctx, "instantiate module", err)
	}
	if mem := p.memory(inst); mem != nil {
		populate(mem.UnsafeData(p.store), p.populate)
		if p.touched != nil && p.pageMap != nil && p.hw != nil {
			// Before the store is closed (deferred first), however the
			// entrypoint ends; a run that asked for nothing of its
			// container is input-free to its end.
			defer func() {
				if !p.profiled {
					p.profile = touchedRanges(p.pageMap, mem.UnsafeData(p.store))
				}
				p.touched(p.profile)
			}()
		}
	}
	if p.callInit {
		if status, done, err := call(ctx, w, p.store, inst, initializeExport); done {
			return p.limit.explain(p.store, inst, status, err)
		}
	}
	if status, done, err := call(ctx, w, p.store, inst, p.entry); done {
		return p.limit.explain(p.store, inst, status, err)
	}
	return 0, nil
}

// memory is the instance's first exported memory, nil when it exports
// none: the memory a run's Populate and Touched are of.
func (p *preparedRun) memory(inst *wasmtime.Instance) *wasmtime.Memory {
	if len(p.populate) == 0 && p.touched == nil {
		return nil
	}
	for _, e := range p.m.module.Exports() {
		if e.Type().MemoryType() == nil {
			continue
		}
		if ext := inst.GetExport(p.store, e.Name()); ext != nil {
			return ext.Memory()
		}
		return nil
	}
	return nil
}

// call calls the exported function name. done is false when the function
// returned normally and the run goes on.
func call(ctx context.Context, w *watcher, store *wasmtime.Store, inst *wasmtime.Instance, name string) (status int, done bool, err error) {
	fn := inst.GetFunc(store, name)
	if fn == nil {
		// checkCallable looked at the compiled module's exports, so this
		// cannot happen unless wasmtime disagrees with itself.
		return 0, true, fmt.Errorf("wasmtime: function %q not found in the instance", name)
	}
	if _, err := fn.Call(store); err != nil {
		status, err := w.result(ctx, fmt.Sprintf("call %q", name), err)
		return status, true, err
	}
	return 0, false, nil
}

// checkImports reports the imports the linker cannot satisfy, all at once
// (the first maxListedImports of them, and how many there are) and in
// terms a workload author understands. wasmtime would only name the first
// one.
func (m *Module) checkImports(linker *wasmtime.Linker, store *wasmtime.Store) error {
	var missing []string
	for _, im := range m.module.Imports() {
		name := ""
		if n := im.Name(); n != nil {
			name = *n
		}
		if linker.Get(store, im.Module(), name) == nil {
			missing = append(missing, fmt.Sprintf("%q.%q", im.Module(), name))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	listed := missing
	if len(listed) > maxListedImports {
		listed = append(listed[:maxListedImports:maxListedImports], fmt.Sprintf("and %d more (%d imports in all)", len(missing)-maxListedImports, len(missing)))
	}
	return fmt.Errorf("wasmtime: module imports %s, which the host does not provide (only WASI preview 1, module \"wasi_snapshot_preview1\", is available)", strings.Join(listed, ", "))
}

// maxListedImports is how many missing imports an error names: a module
// may have thousands, and the error travels in a containerd reply and a
// log line.
const maxListedImports = 10

// validateRunOptions checks what either WASI hands the workload as C
// strings: wasmtime's copies them NUL-terminated, and a guest reads argv and
// the environment as NUL-terminated strings, so an embedded NUL would
// silently truncate them. It rejects those instead, and environment entries
// that are not KEY=value.
func validateRunOptions(opts engine.RunOptions) error {
	if i := engine.BadArg(opts.Args); i >= 0 {
		return fmt.Errorf("wasmtime: argument %d contains a NUL byte", i)
	}
	if i := engine.BadEnv(opts.Env); i >= 0 {
		kv := opts.Env[i]
		if k, _, ok := strings.Cut(kv, "="); ok && k != "" {
			return fmt.Errorf("wasmtime: environment variable %q contains a NUL byte", k)
		}
		return fmt.Errorf("wasmtime: environment entry %q is not KEY=value", kv)
	}
	for _, p := range opts.Preopens {
		if strings.IndexByte(p.HostPath, 0) >= 0 || strings.IndexByte(p.GuestPath, 0) >= 0 || p.GuestPath == "" {
			return fmt.Errorf("wasmtime: preopen %q at %q: paths must be non-empty and contain no NUL byte", p.HostPath, p.GuestPath)
		}
	}
	return nil
}

// newWasiConfig builds wasmtime's WASI context of a run without sockets,
// from options that validateRunOptions accepted.
func newWasiConfig(opts engine.RunOptions) (*wasmtime.WasiConfig, error) {
	keys := make([]string, 0, len(opts.Env))
	values := make([]string, 0, len(opts.Env))
	for _, kv := range opts.Env {
		k, v, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
		values = append(values, v)
	}
	wasi := wasmtime.NewWasiConfig()
	for _, p := range opts.Preopens {
		dirPerms, filePerms := wasmtime.DIR_READ|wasmtime.DIR_WRITE, wasmtime.FILE_READ|wasmtime.FILE_WRITE
		if p.ReadOnly {
			dirPerms, filePerms = wasmtime.DIR_READ, wasmtime.FILE_READ
		}
		if err := wasi.PreopenDir(p.HostPath, p.GuestPath, dirPerms, filePerms); err != nil {
			wasi.Close()
			return nil, fmt.Errorf("wasmtime: preopen %s at %s: %w (is it a directory the Keep can read?)", p.HostPath, p.GuestPath, err)
		}
	}
	wasi.SetArgv(opts.Args)
	wasi.SetEnv(keys, values)
	wasi.InheritStdin()
	wasi.InheritStdout()
	wasi.InheritStderr()
	return wasi, nil
}

// watcher interrupts one run's store, and its hostWASI if it has one, when
// the run's context is done.
type watcher struct {
	stopc chan struct{}
	done  chan struct{}
	// fired records that this run's context, not some other run sharing
	// the engine, caused the epoch increment.
	fired atomic.Bool
	// wasi is the run's hostWASI, nil with wasmtime's WASI.
	wasi hostWASI
}

// epochClock is an engine's epoch: a wasmtime-go Engine, or the component
// engine.
type epochClock interface{ IncrementEpoch() }

// epochStore is a store with an epoch deadline: a wasmtime-go Store, or a
// component store.
type epochStore interface {
	SetEpochDeadline(ticksBeyondCurrent uint64)
}

// watch arms store's epoch deadline and starts the goroutine that trips it,
// by incrementing clock, the store's engine's epoch, and interrupts wasi
// (when not nil), when ctx is done. clock is nil for an engine without
// epoch interruption: then only wasi is interrupted. The caller must call
// stop before returning.
func watch(ctx context.Context, clock epochClock, store epochStore, wasi hostWASI) *watcher {
	w := &watcher{stopc: make(chan struct{}), done: make(chan struct{}), wasi: wasi}
	if ctx.Done() == nil || (clock == nil && wasi == nil) {
		// Nothing can cancel this run, or nothing would come of it.
		if clock != nil {
			// Immune to epoch increments caused by other runs on
			// the engine.
			store.SetEpochDeadline(neverDeadline)
		}
		close(w.done)
		return w
	}
	if clock != nil {
		// One tick ahead: the next increment of the engine's epoch
		// interrupts this store. Note that with epoch interruption
		// enabled a store must always get a deadline; the default of 0
		// traps immediately.
		store.SetEpochDeadline(1)
	}
	go func() {
		defer close(w.done)
		select {
		case <-ctx.Done():
			select {
			case <-w.stopc:
				// The run ended as ctx was cancelled: do not disturb
				// other stores on the engine for nothing.
				return
			default:
			}
			w.fired.Store(true)
			if clock != nil {
				clock.IncrementEpoch()
			}
			if w.wasi != nil {
				// A workload waiting in poll_oneoff runs no wasm
				// code to see the epoch.
				w.wasi.Interrupt()
			}
		case <-w.stopc:
		}
	}()
	return w
}

// stop ends the watcher goroutine and waits for it, so that it never outlives
// Run and never increments the epoch after Run has returned.
func (w *watcher) stop() {
	select {
	case <-w.stopc:
	default:
		close(w.stopc)
	}
	<-w.done
}

// result turns an error from instantiating or calling into the module into
// Run's results. what says which step failed.
func (w *watcher) result(ctx context.Context, what string, err error) (int, error) {
	if w.wasi != nil {
		if status, ok := w.wasi.Exited(); ok {
			return exitStatus(what, status)
		}
		if w.wasi.Interrupted() && w.fired.Load() {
			return 0, interrupted(ctx)
		}
	}
	var exit *wasmtime.Error
	if errors.As(err, &exit) {
		// WASI proc_exit unwinds the wasm stack with an error that carries
		// the status; it is a normal way for a command to end.
		if status, ok := exit.ExitStatus(); ok {
			return int(status), nil
		}
		return 0, fmt.Errorf("wasmtime: %s: %s", what, errorText(err))
	}
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		if code := trap.Code(); code != nil && *code == wasmtime.Interrupt && w.fired.Load() {
			return 0, interrupted(ctx)
		}
		return 0, &engine.TrapError{Message: trapMessage(trap)}
	}
	return 0, fmt.Errorf("wasmtime: %s: %s", what, errorText(err))
}

// trapMessage describes a trap for engine.TrapError: the cause first, then
// the wasm backtrace.
//
// wasmtime formats a trap as "error while executing at wasm backtrace:
// <frames> Caused by: wasm trap: <cause>", which buries the cause at the end
// of a multi-line text; a log line should start with it. Anything not in that
// shape is kept as wasmtime wrote it, and when wasmtime gave no backtrace one
// is built from the trap's frames.
func trapMessage(trap *wasmtime.Trap) string {
	msg := errorText(trap)
	if rest, ok := strings.CutPrefix(msg, "error while executing at wasm backtrace:\n"); ok {
		if frames, cause, ok := strings.Cut(rest, "\n\nCaused by:\n"); ok {
			lines := strings.Split(strings.TrimSpace(cause), "\n")
			for i, l := range lines {
				lines[i] = strings.TrimPrefix(strings.TrimPrefix(l, "    "), "wasm trap: ")
			}
			return strings.Join(lines, "\n") + "\nwasm backtrace:\n" + strings.TrimRight(frames, "\n")
		}
	}
	if strings.Contains(msg, "backtrace") {
		return msg
	}
	frames := trap.Frames()
	if len(frames) == 0 {
		return msg
	}
	var b strings.Builder
	b.WriteString(msg)
	b.WriteString("\nwasm backtrace:")
	for i, f := range frames {
		name := fmt.Sprintf("<wasm function %d>", f.FuncIndex())
		if n := f.FuncName(); n != nil {
			name = *n
		}
		fmt.Fprintf(&b, "\n  %d: %#x - %s", i, f.ModuleOffset(), name)
	}
	return b.String()
}

// errorText is a wasmtime error's message without the native "Stack
// backtrace" section that wasmtime appends when RUST_BACKTRACE or
// RUST_LIB_BACKTRACE is set in the environment. That backtrace is of the
// host's Rust code, unsymbolized in the static library ("<unknown>" frames),
// and means nothing to a workload author.
func errorText(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "\nStack backtrace:"); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimRight(msg, "\n ")
}

// interrupted is the error for a run stopped because ctx is done. It matches
// engine.ErrInterrupted and ctx's own error (context.Canceled or
// context.DeadlineExceeded) with errors.Is.
func interrupted(ctx context.Context) error {
	return fmt.Errorf("wasmtime: %w: %w", engine.ErrInterrupted, context.Cause(ctx))
}
