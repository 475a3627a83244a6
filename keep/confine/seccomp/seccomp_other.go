//go:build !linux

package seccomp

import (
	"errors"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Load is for Linux only.
func Load(*specs.LinuxSeccomp) error { return errors.New("confinement: seccomp is for Linux only") }

// KeepFilter is the Keep's own seccomp filter.
type KeepFilter struct{}

// AssembleLockDown is for Linux only.
func AssembleLockDown() (*KeepFilter, error) {
	return nil, errors.New("confinement: seccomp is for Linux only")
}

// LockDown is for Linux only.
func (*KeepFilter) LockDown() error { return errors.New("confinement: seccomp is for Linux only") }
