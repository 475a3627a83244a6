// Command enarx-keep is the runtime binary: run as "enarx-keep keep ...", it
// is a Keep process, which the shim (containerd-shim-enarx-v1, installed
// beside it) starts for each container, and `enarx run` starts for a module.
// It links the engine (wasmtime, through cgo) and the TEE backends; its
// digest is the runtime digest a Keep's evidence carries (the runtime
// measurement of `enarx reference-values`).
package main

import (
	"fmt"
	"os"

	"github.com/enarx/containerd-shim-enarx/keep"
	_ "github.com/enarx/containerd-shim-enarx/keep/confine/startbound" // the bounding set before the Go runtime starts
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/guest"
	"github.com/enarx/containerd-shim-enarx/keep/wasmtime"
	"github.com/enarx/containerd-shim-enarx/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == keep.Subcommand {
		os.Exit(guest.Main(os.Args[2:], func() (engine.Engine, error) { return wasmtime.NewWithOptions(wasmtime.KeepOptions()) }))
	}
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Printf("%s\n  Version: %s\n  Revision: %s\n", keep.Binary, version.Version, version.Revision)
		return
	}
	fmt.Fprintf(os.Stderr, "%s: the enarx runtime binary: the shim (containerd-shim-enarx-v1) and `enarx run` start it as a Keep (%s %s ...); flag -v prints the version\n",
		keep.Binary, keep.Binary, keep.Subcommand)
	os.Exit(2)
}
