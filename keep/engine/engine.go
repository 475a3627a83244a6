// Package engine is the seam between a Keep and the WebAssembly runtime
// that runs its workload: what an engine is (Engine, Precompiler), what it
// makes (Module), what a workload sees of its environment (RunOptions,
// Preopen, Socket) and how a run ends (its status, a *TrapError,
// ErrInterrupted).
//
// It is a leaf on purpose: it imports nothing of this module, so that an
// engine (keep/wasmtime), the packages that only name a module or a preopen
// (oci, the CLI), and the Keep itself depend on it without linking each
// other, a TEE library or the runtime's cgroups.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Engine compiles WebAssembly core modules, and components when the engine
// runs them (see Component). It is the only seam between a
// Keep and the WebAssembly runtime: nothing outside the engine's package knows
// which runtime it is.
type Engine interface {
	// Name identifies the engine and its version, e.g. "wasmtime 39.0.1".
	Name() string
	// Compile validates and compiles a core module or a component. An
	// error names what is wrong with the module.
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
	// returns an error that matches ErrInterrupted with errors.Is; an
	// engine made for a process that ends when it cancels a run (a
	// Keep's, keep/wasmtime's KeepOptions) may leave code that spins
	// without calling the host running, and the process's end stops it.
	Run(ctx context.Context, opts RunOptions) (int, error)
}

// RunPreparer is implemented by a Module that can make a run ready before it
// starts: what Run does before the workload's first instruction (checks, the
// store, the WASI context with its preopens opened, the imports), so that a
// Keep does it while it waits for Start. PrepareRun(opts) and then the
// PreparedRun's Run(ctx) is Run(ctx, opts).
type RunPreparer interface {
	PrepareRun(opts RunOptions) (PreparedRun, error)
}

// PreparedRun is a run that RunPreparer.PrepareRun made ready.
type PreparedRun interface {
	// Run runs it, once, as Module.Run does, and frees it.
	Run(ctx context.Context) (int, error)
	// Close frees a run that will not run.
	Close()
}

// Component is implemented by a Module compiled from a WebAssembly component
// (the component model's binary format, WASI preview 2) rather than from a
// core module. A component runs its world's entrypoint (RunOptions.Entrypoint
// must be empty) and takes no declared sockets: the Keep refuses both when
// the container is created.
type Component interface {
	Module
	// World names the world the component runs as, e.g. "wasi:cli/command".
	World() string
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
	Sockets []Socket
	// Populate lists ranges of the instance's linear memory (its first
	// exported memory) whose pages are made present and writable once the
	// module is instantiated, before its entrypoint runs: the pages an
	// earlier run of the same module wrote (Touched), which the run would
	// otherwise fault in one at a time. What the module sees does not
	// change; ranges beyond the memory's size at instantiation are left
	// out. An engine may ignore it.
	Populate []MemoryRange
	// Touched, when not nil, is called once the entrypoint has ended
	// (returned, exited or trapped) with the ranges of that memory whose
	// pages the run wrote before its first host call that told it
	// anything of its container (anything but the clocks, random
	// numbers, yielding and ending), or to its end when it made none: what
	// it reports depends on the module alone, so a later run of the module
	// in another container may take it as its Populate. At most
	// MaxMemoryRanges ranges. An engine that cannot tell does not call it.
	Touched func([]MemoryRange) `json:"-"`
}

// MaxMemoryRanges bounds the ranges a run reports (Touched) and makes
// present (Populate).
const MaxMemoryRanges = 1024

// MemoryRange is a range of a linear memory, in bytes from its start.
type MemoryRange struct {
	Offset uint64 `json:"offset"`
	Length uint64 `json:"length"`
}

// CloseSocketFiles closes the File of each of o.Sockets: what Run does once
// the workload holds its own descriptors, and what a caller does with
// options no Run will take.
func (o RunOptions) CloseSocketFiles() {
	for _, s := range o.Sockets {
		if s.File != nil {
			s.File.Close()
		}
	}
}

// Socket is an open socket, as the engine gives it to the workload.
type Socket struct {
	// Name labels the descriptor in FD_NAMES.
	Name string
	// File is a listening or connected stream socket the workload uses
	// directly. The engine's Run takes it over: it closes File once the
	// workload holds its own descriptor, so that a workload closing a
	// connection ends it.
	File *os.File
	// Acceptor, when File is nil, is a listener whose connections the Keep
	// accepts itself (TLS: after the handshake) and hands to the workload.
	Acceptor Acceptor
}

// Acceptor hands the workload connections the Keep accepted.
type Acceptor interface {
	// PollFD is a descriptor that polls readable while a connection is
	// waiting.
	PollFD() int
	// Accept returns a waiting connection without blocking, or an error
	// matching unix.EAGAIN when none is waiting. The caller owns the file.
	Accept() (*os.File, error)
}

// StreamAcceptor is an Acceptor that can also hand a connection over as a
// Stream, served by the engine in process. An engine that can serve
// Streams prefers AcceptStream: the workload's reads and writes then reach
// the connection (TLS) on the workload's own thread, without a socketpair
// and the thread hand-offs of a pipe.
type StreamAcceptor interface {
	Acceptor
	// AcceptStream is Accept, the connection as a Stream. The caller owns
	// it and must Close it.
	AcceptStream() (Stream, error)
}

// Stream is a connected stream socket whose bytes the Keep transforms (a
// TLS connection the Keep terminates). No method blocks; none is safe for
// concurrent use but Close.
type Stream interface {
	// PollFD is the descriptor to wait on, readable or writable, when
	// Ready says false.
	PollFD() int
	// Ready reports, without waiting, whether Read (write false) or Write
	// (write true) would do something other than fail with unix.EAGAIN.
	Ready(write bool) bool
	// Read reads what has arrived into p, or fails with unix.EAGAIN when
	// nothing has; it returns 0, io.EOF once the peer has ended its output
	// and everything before is read.
	Read(p []byte) (int, error)
	// Peek is Read that leaves what it returns to be read again.
	Peek(p []byte) (int, error)
	// Write takes all of p for sending, or none of it with unix.EAGAIN
	// while too much is still unsent.
	Write(p []byte) (int, error)
	// CloseWrite ends the output: what was written is sent, then the end
	// (close_notify and FIN).
	CloseWrite() error
	// CloseRead makes further reads return io.EOF.
	CloseRead() error
	// Close ends both directions as CloseWrite and CloseRead do and
	// releases the connection once the peer has closed it too.
	Close() error
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
	// OutOfMemory says the workload needed more memory than its limit
	// (RunOptions.MemoryLimit) allows: the Keep reports it as the kernel
	// reports a process killed at its cgroup's limit (137, an OOM event).
	OutOfMemory bool
}

func (e *TrapError) Error() string { return fmt.Sprintf("wasm trap: %s", e.Message) }

// BadArg returns the index of the first argument in args that a workload
// cannot receive, or -1 when it can take them all. A workload reads argv as
// NUL-terminated strings: a NUL byte would cut an argument short.
func BadArg(args []string) int {
	for i, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return i
		}
	}
	return -1
}

// BadEnv returns the index of the first entry of env that is not KEY=value
// with a non-empty KEY and no NUL byte, or -1 when every entry is.
func BadEnv(env []string) int {
	for i, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.IndexByte(kv, 0) >= 0 {
			return i
		}
	}
	return -1
}
