//go:build !linux

package confine

import (
	"context"
	"errors"
)

// Enter is for Linux only: a Keep is a Linux container.
func Enter(*Spec, string) (*Confined, error) {
	return nil, errors.New("confinement: a Keep is confined on Linux only")
}

// Confined is a Keep that Enter confined.
type Confined struct{}

// StartContainer runs the spec's startContainer hooks.
func (*Confined) StartContainer(context.Context) error { return nil }

// Cloneflags are none off Linux.
func (s *Spec) Cloneflags() uintptr { return 0 }

// LockDown is for Linux only.
func LockDown() error { return errors.New("confinement: a Keep is confined on Linux only") }
