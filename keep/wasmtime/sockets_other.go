//go:build !linux

package wasmtime

import (
	"errors"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// newSocketWASI fails: package hostwasi, which gives a workload its
// sockets, rests on Linux's openat2 and ppoll.
func newSocketWASI(engine.RunOptions) (socketWASI, error) {
	return nil, errors.New("wasmtime: sockets for the workload are supported on Linux only")
}
