// Command containerd-shim-enarx-v1 is the containerd runtime shim of
// io.containerd.enarx.v1 as containerd executes it for every task: start,
// which starts the shim server (enarx-shim, cmd/enarx-shim, installed beside
// it), and delete (package shim/launcher). It is kept small: containerd
// waits for it twice per container, and Go initialises all a binary links
// before main.
package main

import (
	"os"

	"github.com/enarx/containerd-shim-enarx/shim/launcher"
)

func main() {
	os.Exit(launcher.Run(os.Args[1:]))
}
