//go:build !linux

package wasmtime

import (
	"os"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// openPageMap: no page map here, so Touched is never called.
func openPageMap() *os.File { return nil }

// populate does nothing here: the pages fault in as the module writes them.
func populate([]byte, []engine.MemoryRange) {}

// touchedRanges: nothing is known here.
func touchedRanges(*os.File, []byte) []engine.MemoryRange { return nil }
