//go:build !linux

package guest

import (
	"context"
	"errors"
	"os"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/sockets"
)

// innerFlag makes the runtime binary an inner Keep (Linux only).
const innerFlag = "inner"

// innerKeep is Linux only.
type innerKeep struct{}

func startInner(context.Context, keep.Config, *prepared, *sockets.Set) (*innerKeep, error) {
	return nil, errors.New("confinement: a Keep is confined on Linux only")
}

func (*innerKeep) run(<-chan os.Signal) int { return keep.StatusFailed }

func innerMain(string, EngineFactory, <-chan os.Signal) int { return keep.StatusFailed }
