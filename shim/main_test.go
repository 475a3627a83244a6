package shim

import (
	"os"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/guest"
	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
)

// TestMain makes the test binary a Keep when a test starts it with
// keep.Subcommand, as the shim binary is: service.exe is this binary. The
// Keep runs the fake engine of keeptest.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == keep.Subcommand {
		os.Exit(guest.Main(os.Args[2:], keeptest.Factory))
	}
	os.Exit(m.Run())
}
