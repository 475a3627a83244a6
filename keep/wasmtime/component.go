package wasmtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// Components
//
// A WebAssembly component (the component model's binary format) runs as a
// wasi:cli/command: the Keep instantiates it with WASI preview 2 and calls
// the run function of its wasi:cli/run export. It gets what a core module
// gets — argv, environment, stdio, preopens, the memory limit, epoch
// interruption, the module cache — through wasmtime's component C API
// (component_capi.go), on an engine of its own configured as the core one.
//
// What differs, because of WASI preview 2 or of the C API of v39:
//
//   - Exit status: wasi:cli/exit's exit(ok) is 0 and exit(err) is 1; a
//     component that calls exit-with-code(n) (a feature-gated part of
//     wasi:cli/exit 0.2 that this host defines, see defineExit) exits with n. A core module lifted
//     into a component with the preview 1 adapter turns proc_exit(n) for any
//     n > 0 into exit(err), so such a program exits with 1.
//   - Sockets: wasmtime's WASI configuration in the C API v39 has no network
//     settings, so declared sockets are refused for components.
//   - Memory limit: the cap applies to every linear memory of the component
//     (memory.grow past it fails), but the C API gives no access to a
//     component's memories, so a run that fails at the cap is reported as
//     the program's own exit or trap, not as an out-of-memory kill (137).

// componentVersion is the binary version of the component layer that
// wasmtime v39 reads, at bytes 4..6 of the binary (layer 1 at 6..8).
const componentVersion = 0x0d

// componentHeader starts every component binary of that version.
var componentHeader = []byte{0x00, 'a', 's', 'm', componentVersion, 0x00, 0x01, 0x00}

// IsComponent reports whether wasm is a WebAssembly component binary of the
// version this engine runs (by its header only).
func IsComponent(wasm []byte) bool { return bytes.HasPrefix(wasm, componentHeader) }

// commandExport is the interface a wasi:cli/command exports. wasmtime looks
// it up semver-compatibly: any 0.2.x matches.
const commandExport = "wasi:cli/run@0.2.0"

// CommandWorld names what a component must be to run in a Keep.
const CommandWorld = "wasi:cli/command"

// components returns the engine's component engine, made on first use so
// that a Keep running a core module pays nothing for it.
func (e *Engine) components() (*componentEngine, error) {
	e.componentOnce.Do(func() {
		e.component, e.componentErr = newComponentEngine()
	})
	return e.component, e.componentErr
}

// Close frees the engine's native resources that the Go GC does not see
// (the component engine). The Engine and its modules must not be used
// afterwards.
func (e *Engine) Close() {
	e.componentOnce.Do(func() {})
	if e.component != nil {
		e.component.close()
		e.component = nil
	}
}

// Component is a compiled wasi:cli/command component. Like a Module it can
// be run any number of times, each run in a new store.
type Component struct {
	engine *componentEngine
	c      *cComponent
	// run is the index of the run function of wasi:cli/run.
	run *exportIndex

	closeOnce sync.Once
}

// Compile-time checks that a Component is a Keep module, and one the Keep
// can recognise.
var (
	_ engine.Module    = (*Component)(nil)
	_ engine.Component = (*Component)(nil)
)

// World names what the component runs as.
func (c *Component) World() string { return CommandWorld }

// Close frees the compiled component. Runs must have ended.
func (c *Component) Close() {
	c.closeOnce.Do(func() {
		c.run.close()
		c.c.close()
	})
}

func (e *Engine) compileComponent(wasm []byte) (*Component, error) {
	ce, err := e.components()
	if err != nil {
		return nil, err
	}
	cc, err := ce.compile(wasm)
	if err != nil {
		return nil, fmt.Errorf("wasmtime: compile component: %s", errorText(err))
	}
	releaseCompilerMemory()
	c, err := newComponent(ce, cc)
	if err != nil {
		return nil, err
	}
	// Imports no run could satisfy fail the compile, as for a module, so
	// that the container's creation fails naming them.
	if err := c.checkImports(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// newComponent takes cc over: it is freed with the Component, or now on
// error.
func newComponent(ce *componentEngine, cc *cComponent) (*Component, error) {
	runIface, ok := cc.exportIndex(nil, commandExport)
	if !ok {
		cc.close()
		return nil, fmt.Errorf("wasmtime: the component does not export wasi:cli/run@0.2.x: it is not a %s component; "+
			"build a command (e.g. `cargo build --target wasm32-wasip2` of a binary, or `jco new core.wasm --wasi-command`)", CommandWorld)
	}
	defer runIface.close()
	run, ok := cc.exportIndex(runIface, "run")
	if !ok {
		cc.close()
		return nil, fmt.Errorf("wasmtime: the component's wasi:cli/run export has no run function: it is not a %s component", CommandWorld)
	}
	return &Component{engine: ce, c: cc, run: run}, nil
}

// checkImports links the component against the host's WASI preview 2 in a
// throwaway store whose epoch deadline has passed: linking names the first
// import the host does not provide, and no code of the component runs (any
// wasm function traps on entry).
func (c *Component) checkImports() error {
	store := c.engine.newStore()
	defer store.close()
	store.SetEpochDeadline(0)
	if err := store.setWASI(wasiSpec{}); err != nil {
		return err
	}
	_, err := c.engine.instantiate(store, c.c)
	if err == nil {
		return nil
	}
	msg := errorText(err)
	// wasmtime: "component imports instance `wasi:http/types@0.2.0`, but a
	// matching implementation was not found in the linker".
	if name, ok := missingImport(msg); ok {
		return fmt.Errorf("wasmtime: component imports %q, which the host does not provide (only WASI preview 2's %s world is available: wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, wasi:random, wasi:sockets)", name, CommandWorld)
	}
	if strings.Contains(msg, "interrupt") {
		// Linked; the first wasm code it ran met the passed deadline.
		return nil
	}
	if lerr := (memoryLimit{}).instantiateError(err); lerr != nil {
		return lerr
	}
	return fmt.Errorf("wasmtime: link component: %s", msg)
}

// missingImport extracts the import name from wasmtime's link error.
func missingImport(msg string) (string, bool) {
	for line := range strings.SplitSeq(msg, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "component imports ")
		if !ok || !strings.Contains(rest, "not found in the linker") {
			continue
		}
		if _, after, ok := strings.Cut(rest, "`"); ok {
			if name, _, ok := strings.Cut(after, "`"); ok {
				return name, true
			}
		}
	}
	return "", false
}

// serializeComponent is Serialize for components.
func (c *Component) serialize() ([]byte, error) {
	b, err := c.c.serialize()
	if err != nil {
		return nil, fmt.Errorf("wasmtime: serialize component: %s", errorText(err))
	}
	return b, nil
}

// loadComponent is Load for components.
func (e *Engine) loadComponent(path string) (*Component, error) {
	ce, err := e.components()
	if err != nil {
		return nil, err
	}
	cc, err := ce.deserializeFile(path)
	if err != nil {
		return nil, fmt.Errorf("wasmtime: load precompiled component %s: %s", path, errorText(err))
	}
	return newComponent(ce, cc)
}

// Run instantiates the component in a new store with WASI preview 2 and
// calls wasi:cli/run's run. See engine.Module for the contract and the
// package documentation (Components) for what differs from a module.
func (c *Component) Run(ctx context.Context, opts engine.RunOptions) (int, error) {
	if opts.Entrypoint != "" && opts.Entrypoint != engine.DefaultEntrypoint {
		return 0, fmt.Errorf("wasmtime: entrypoint %q: a %s component runs wasi:cli/run, it has no other entrypoint; remove the entrypoint setting", opts.Entrypoint, CommandWorld)
	}
	if len(opts.Sockets) > 0 {
		return 0, ErrComponentSockets
	}
	if err := validateRunOptions(opts); err != nil {
		return 0, err
	}
	if ctx.Err() != nil {
		return 0, interrupted(ctx)
	}
	store := c.engine.newStore()
	defer store.close()
	limit := memoryLimit{bytes: opts.MemoryLimit}
	memory := limit.bytes
	if memory <= 0 {
		memory = -1
	}
	store.limit(memory, limit.tableElements())
	spec := wasiSpec{args: opts.Args}
	for _, kv := range opts.Env {
		k, v, _ := strings.Cut(kv, "=")
		spec.envKeys = append(spec.envKeys, k)
		spec.envValues = append(spec.envValues, v)
	}
	for _, p := range opts.Preopens {
		spec.preopens = append(spec.preopens, wasiPreopen{host: p.HostPath, guest: p.GuestPath, readOnly: p.ReadOnly})
	}
	if err := store.setWASI(spec); err != nil {
		return 0, err
	}

	w := watch(ctx, c.engine, store, nil)
	defer w.stop()

	inst, err := c.engine.instantiate(store, c.c)
	if err != nil {
		if lerr := limit.instantiateError(err); lerr != nil {
			return 0, lerr
		}
		return componentResult(ctx, w, store, "instantiate component", err)
	}
	ok, err := inst.callResult(c.run)
	if err != nil {
		return componentResult(ctx, w, store, "call wasi:cli/run", err)
	}
	if !ok {
		// run returned err: the command failed, as exit(err) says.
		return 1, nil
	}
	return 0, nil
}

// ErrComponentSockets is the error of a component run with declared
// sockets.
var ErrComponentSockets = errors.New("wasmtime: declared sockets are not available to WebAssembly components: " +
	"wasmtime's C API (v39) has no network configuration for WASI preview 2; " +
	"build the workload as a WASI preview 1 core module to use sockets (docs/networking.md)")

// componentResult turns an error of instantiating or running a component
// into Run's results.
func componentResult(ctx context.Context, w *watcher, store *cStore, what string, err error) (int, error) {
	if status, ok := store.takeExit(); ok {
		return status, nil
	}
	var ce *cError
	if errors.As(err, &ce) && ce.hasStatus {
		return ce.status, nil
	}
	msg := errorText(err)
	cause := msg
	if _, c, ok := strings.Cut(msg, "\n\nCaused by:\n"); ok {
		cause = strings.TrimSpace(c)
	}
	if strings.HasPrefix(cause, "wasm trap: interrupt") && w.fired.Load() {
		return 0, interrupted(ctx)
	}
	if strings.Contains(cause, "wasm trap: ") {
		return 0, &engine.TrapError{Message: trapText(msg)}
	}
	return 0, fmt.Errorf("wasmtime: %s: %s", what, msg)
}

// trapText puts a trap's cause before its backtrace, as trapMessage does
// for modules.
func trapText(msg string) string {
	if rest, ok := strings.CutPrefix(msg, "error while executing at wasm backtrace:\n"); ok {
		if frames, cause, ok := strings.Cut(rest, "\n\nCaused by:\n"); ok {
			lines := strings.Split(strings.TrimSpace(cause), "\n")
			for i, l := range lines {
				lines[i] = strings.TrimPrefix(strings.TrimSpace(l), "wasm trap: ")
			}
			return strings.Join(lines, "\n") + "\nwasm backtrace:\n" + strings.TrimRight(frames, "\n")
		}
	}
	return msg
}
