//go:build !linux

package confine

import (
	"context"
	"errors"
	"os"
	"os/exec"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Enter is for Linux only: a Keep is a Linux container.
func Enter(*Spec, string, Network, SeccompLoader) (*Confined, error) {
	return nil, errors.New("confinement: a Keep is confined on Linux only")
}

// Build is for Linux only.
func Build(*Spec, string, Network) (*Built, error) {
	return nil, errors.New("confinement: a Keep is confined on Linux only")
}

// AttachRootTree is for Linux only.
func (*Spec) AttachRootTree(*os.File) error {
	return errors.New("confinement: a Keep is confined on Linux only")
}

// Built is a Keep whose container Build made.
type Built struct{}

// Enter is for Linux only.
func (*Built) Enter(SeccompLoader) (*Confined, error) {
	return nil, errors.New("confinement: a Keep is confined on Linux only")
}

// Confined is a Keep that Enter confined.
type Confined struct{}

// StartContainer runs the spec's startContainer hooks.
func (*Confined) StartContainer(context.Context) error { return nil }

// Start is for Linux only.
func (s *Spec) Start(*exec.Cmd, func() error) error {
	return errors.New("confinement: a Keep is confined on Linux only")
}

// Start starts cmd as it is: namespaces and prepared threads are Linux's.
func Start(cmd *exec.Cmd, namespaces []specs.LinuxNamespace, prepare func() error) error {
	if len(namespaces) > 0 || prepare != nil {
		return errors.New("confinement: namespaces and cgroups are Linux only")
	}
	return cmd.Start()
}

// BoundingEnv is Linux's.
const BoundingEnv = "ENARX_KEEP_BOUNDING"

// StartBounding is Linux's.
func (s *Spec) StartBounding() (uint64, bool) { return 0, false }

// Hold is for Linux only.
func Hold(string, map[string]string, func()) error { return errors.New("pod sandbox: Linux only") }

// Sources are Linux only.
type Sources struct{}

// Files are none off Linux.
func (*Sources) Files() []*os.File { return nil }

// Close does nothing off Linux.
func (*Sources) Close() {}

// OpenSources is for Linux only.
func (s *Spec) OpenSources(string) (*Sources, error) {
	return nil, errors.New("confinement: a Keep is confined on Linux only")
}

// AdoptSources is for Linux only.
func (s *Spec) AdoptSources([]*os.File, string) error {
	return errors.New("confinement: a Keep is confined on Linux only")
}
