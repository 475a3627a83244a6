// Command enarx-shim is the server of the containerd runtime shim of
// io.containerd.enarx.v1: the ttrpc task service that manages Keeps (package
// shim), which containerd-shim-enarx-v1's start executes beside it, one per
// pod or container. It runs no WebAssembly and links no engine: it starts
// each container's Keep from the runtime binary beside it (enarx-keep,
// cmd/enarx-keep).
package main

import (
	"context"
	"os"

	"github.com/enarx/containerd-shim-enarx/shim"
)

func main() {
	os.Exit(shim.Run(context.Background(), os.Args[1:]))
}
