package wasmtime

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// The engine saves and loads native code for the Keep's module cache.
var _ engine.Precompiler = (*Engine)(nil)

// Fingerprint identifies the native code this engine produces: the
// wasmtime-go release, the target and the engine's settings (Options).
// wasmtime checks the same when loading and refuses what does not match;
// the fingerprint keeps such entries apart in the cache instead.
func (e *Engine) Fingerprint() string {
	return fmt.Sprintf("wasmtime-go %s %s/%s %s", Version, runtime.GOOS, runtime.GOARCH, e.settings())
}

// Serialize returns the native code of a module compiled or loaded by a
// wasmtime Engine: an ELF image, 3 times the size of a Go wasip1 module (8.5
// MB for a 2.7 MB hello), in 10–23 ms.
func (e *Engine) Serialize(m engine.Module) ([]byte, error) {
	if c, ok := m.(*Component); ok {
		return c.serialize()
	}
	mod, ok := m.(*Module)
	if !ok {
		return nil, fmt.Errorf("wasmtime: serialize: %T is not a wasmtime module", m)
	}
	b, err := mod.module.Serialize()
	if err != nil {
		return nil, fmt.Errorf("wasmtime: serialize module: %s", errorText(err))
	}
	return b, nil
}

// Load maps native code that Serialize returned from the file at path (0.3
// ms for a Go hello, whose code pages the page cache then shares between
// processes). wasmtime ignores bytes after the ELF image, where the module
// cache keeps its trailer.
//
// wasmtime checks that the code was made by the same release with
// compatible settings, but trusts its content: it must come from Serialize.
func (e *Engine) Load(ctx context.Context, path string) (engine.Module, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wasmtime: load module: %w", err)
	}
	mod, err := wasmtime.NewModuleDeserializeFile(e.engine, path)
	if err != nil {
		// The file may hold a component's native code: wasmtime refuses
		// to load one as a module, and the reverse, by its own metadata.
		c, cerr := e.loadComponent(path)
		if cerr == nil {
			return c, nil
		}
		return nil, fmt.Errorf("wasmtime: load precompiled module %s: %s (nor a component: %w)", path, errorText(err), cerr)
	}
	if mod == nil {
		return nil, errors.New("wasmtime: load precompiled module: no module returned")
	}
	return newModule(e, mod), nil
}
