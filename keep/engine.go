package keep

import (
	"context"
	"errors"
	"fmt"

	"github.com/enarx/containerd-shim-enarx/keep/sockets"
)

// Engine compiles WebAssembly core modules. It is the only seam between a
// Keep and the WebAssembly runtime: nothing outside the engine's package knows
// which runtime it is.
type Engine interface {
	// Name identifies the engine and its version, e.g. "wasmtime 39.0.1".
	Name() string
	// Compile validates and compiles a core module. An error names what is
	// wrong with the module.
	Compile(ctx context.Context, wasm []byte) (Module, error)
}

// Precompiler is implemented by an Engine that can save a compiled module's
// native code and load it again: the Keep then shares compiled modules with
// the node's other Keeps through the module cache (Config.ModuleCache).
type Precompiler interface {
	// Fingerprint identifies what native code depends on besides the
	// module: the engine's version, its settings and the target. Native
	// code is only loaded by an engine with the same fingerprint.
	Fingerprint() string
	// Serialize returns the native code of m, which this engine's Compile
	// or Load returned.
	Serialize(m Module) ([]byte, error)
	// Load loads the native code that Serialize returned from the start of
	// the file at path; bytes after it (the cache's trailer) are ignored.
	// Load trusts the file: loading bytes that Serialize did not return is
	// undefined behaviour, so the caller verifies them first.
	Load(ctx context.Context, path string) (Module, error)
}

// Module is a compiled module, ready to be instantiated and run once or more.
type Module interface {
	// Run instantiates the module with WASI and calls opts.Entrypoint.
	//
	// The workload's stdin, stdout and stderr are the calling process's
	// file descriptors 0, 1 and 2.
	//
	// It returns the WASI exit status: n for proc_exit(n), 0 when the
	// entrypoint returns. A trap is returned as a *TrapError. When ctx is
	// cancelled while the module runs, the engine interrupts it and Run
	// returns an error that matches ErrInterrupted with errors.Is.
	Run(ctx context.Context, opts RunOptions) (int, error)
}

// RunOptions is what a workload sees of its environment.
type RunOptions struct {
	// Entrypoint is the exported function to call; empty means "_start".
	Entrypoint string
	// Args is argv, Args[0] being the program name.
	Args []string
	// Env holds "KEY=value" entries.
	Env []string
	// Preopens are the host directories the workload may open, each at
	// its guest path.
	Preopens []Preopen
	// MemoryLimit caps the linear memory of the instance, in bytes; 0
	// means no cap. Growing past it fails (memory.grow returns -1), and a
	// module that cannot go on without the memory traps.
	MemoryLimit int64
	// Sockets are the declared sockets, at the descriptors after the
	// preopens in this order; FD_COUNT and FD_NAMES then describe every
	// descriptor from 0 (see keep/sockets). Run closes each Socket.File
	// once the workload holds its own descriptor.
	Sockets []sockets.Socket
}

// Preopen gives the workload a host directory at GuestPath.
type Preopen struct {
	// HostPath is the directory on the host.
	HostPath string `json:"host_path"`
	// GuestPath is where the workload sees it, e.g. "/run/enarx".
	GuestPath string `json:"guest_path"`
	// ReadOnly forbids creating, writing and removing anything in it.
	ReadOnly bool `json:"read_only,omitempty"`
}

// DefaultEntrypoint is the WASI command entrypoint.
const DefaultEntrypoint = "_start"

// ErrInterrupted reports that a running module was stopped from outside
// (its context was cancelled).
var ErrInterrupted = errors.New("module interrupted")

// TrapError is a WebAssembly trap: the module executed an invalid operation
// (unreachable, out-of-bounds access, stack overflow, ...).
type TrapError struct {
	// Message is the engine's description, including a backtrace when the
	// engine provides one.
	Message string
}

func (e *TrapError) Error() string { return fmt.Sprintf("wasm trap: %s", e.Message) }
