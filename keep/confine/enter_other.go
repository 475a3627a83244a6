//go:build !linux

package confine

import "errors"

// Enter is for Linux only: a Keep is a Linux container.
func Enter(*Spec, string) error {
	return errors.New("confinement: a Keep is confined on Linux only")
}

// Cloneflags are none off Linux.
func (s *Spec) Cloneflags() uintptr { return 0 }
