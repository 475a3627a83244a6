//go:build !linux

package sockets

import (
	"context"
	"errors"
	"net"
	"os"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
)

// Set is the open sockets of a Keep. Only Linux opens sockets; elsewhere
// Open fails, so that the packages using this one still build.
type Set struct{}

// Open fails off Linux: a Keep's sockets need Linux (namespaces, eventfd).
func Open(ctx context.Context, specs []socketspec.Spec, opts Options) (*Set, error) {
	if len(specs) == 0 {
		return &Set{}, nil
	}
	return nil, errors.New("sockets: declared sockets need Linux: run the Keep on Linux, or declare no sockets")
}

// Sockets is empty off Linux.
func (s *Set) Sockets() []engine.Socket { return nil }

// Addr is nil off Linux.
func (s *Set) Addr(name string) net.Addr { return nil }

// NetNS is nil off Linux.
func (s *Set) NetNS() *os.File { return nil }

// OpenNetNS fails off Linux.
func OpenNetNS(netns string) (*os.File, error) {
	return nil, errors.New("sockets: network namespaces need Linux")
}

// LoopbackUp fails off Linux.
func LoopbackUp() error { return errors.New("sockets: network namespaces need Linux") }

// ReleaseFiles does nothing off Linux.
func (s *Set) ReleaseFiles() error { return nil }

// Close does nothing off Linux.
func (s *Set) Close() error { return nil }
