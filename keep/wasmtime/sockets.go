package wasmtime

import (
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// hostWASI is the WASI of a core module's run on Linux, with or without
// sockets: package hostwasi's, which owns every descriptor (newHostWASI).
type hostWASI interface {
	// Define puts every wasi_snapshot_preview1 function in the linker.
	Define(linker *wasmtime.Linker) error
	// Interrupt wakes a poll_oneoff that waits and makes it trap; safe
	// from any goroutine.
	Interrupt()
	// Interrupted reports whether a host call trapped because of
	// Interrupt.
	Interrupted() bool
	// Exited reports the status given to proc_exit, if it was called.
	Exited() (int32, bool)
	// Close closes the descriptors the workload still holds.
	Close() error
}

// exitStatus is Run's result for a proc_exit(status) in a hostWASI. It
// keeps wasmtime's WASI rule: a status outside [0, 126) is an error, not an
// exit status, so that a workload behaves the same on either WASI.
func exitStatus(what string, status int32) (int, error) {
	if status < 0 || status >= 126 {
		return 0, fmt.Errorf("wasmtime: %s: exit with invalid exit status %d outside of [0..126)", what, uint32(status))
	}
	return int(status), nil
}
