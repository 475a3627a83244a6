// Command containerd-shim-enarx-v1 is the containerd runtime shim of
// io.containerd.enarx.v1. It runs no WebAssembly and links no engine: it
// starts each container's Keep from the runtime binary beside it (enarx-keep,
// cmd/enarx-keep), so that what containerd executes for every container
// (start, the server, delete) is a small static binary.
package main

import (
	"context"
	"os"

	"github.com/enarx/containerd-shim-enarx/shim"
)

func main() {
	os.Exit(shim.Run(context.Background(), os.Args[1:]))
}
