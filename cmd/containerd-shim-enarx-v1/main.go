// Command containerd-shim-enarx-v1 is the containerd runtime shim of
// io.containerd.enarx.v1. Run as "containerd-shim-enarx-v1 keep ...", it is
// a Keep process, which the shim starts for each container.
package main

import (
	"context"
	"os"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/wasmtime"
	"github.com/enarx/containerd-shim-enarx/shim"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == keep.Subcommand {
		os.Exit(keep.Main(os.Args[2:], func() (engine.Engine, error) { return wasmtime.New() }))
	}
	os.Exit(shim.Run(context.Background(), os.Args[1:]))
}
