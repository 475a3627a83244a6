//go:build !linux

package wasmtime

import (
	"errors"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// hostWASIAvailable is false: package hostwasi rests on Linux's openat2
// and ppoll, so runs without sockets get wasmtime's WASI (define).
const hostWASIAvailable = false

// newHostWASI fails: package hostwasi, which gives a workload its
// sockets, rests on Linux's openat2 and ppoll.
func newHostWASI(engine.RunOptions, func([]byte)) (hostWASI, error) {
	return nil, errors.New("wasmtime: sockets for the workload are supported on Linux only")
}
