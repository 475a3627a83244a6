package wasmtime

import (
	"fmt"
	"os"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/wasmtime/hostwasi"
)

// hostWASIAvailable says that every core module's run gets package
// hostwasi's WASI here (define).
const hostWASIAvailable = true

// newHostWASI builds the hostwasi WASI of a run, with its sockets if it
// has any, from options that validateRunOptions accepted. The Keep's own
// descriptors 0, 1 and 2 are the workload's stdio, as with wasmtime's WASI.
// beforeInput, when not nil, is hostwasi.Config.BeforeInput.
func newHostWASI(opts engine.RunOptions, beforeInput func(mem []byte)) (hostWASI, error) {
	cfg := hostwasi.Config{
		BeforeInput: beforeInput,
		Args:        opts.Args,
		Env:         opts.Env,
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		Preopens:    opts.Preopens,
		Sockets:     opts.Sockets,
	}
	w, err := hostwasi.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("wasmtime: WASI: %w", err)
	}
	// The workload holds its own descriptors now: close the caller's, so
	// that a workload closing a connection ends it (RunOptions.Sockets).
	opts.CloseSocketFiles()
	return w, nil
}
