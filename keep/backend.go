package keep

import (
	"fmt"
	"sort"
	"strings"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
)

// Backend provides the isolation and the evidence of a Keep: the TEE the
// Keep runs on and the provider that asks it for reports.
type Backend interface {
	// Name is the backend's name in configuration (BackendNil, BackendSEVSNP, ...).
	Name() string
	// TEE is the kind of TEE (attestation.TEENone for nil).
	TEE() string
	// Available returns nil when this node can run Keeps on the backend,
	// or an error saying why not and what would fix it.
	Available() error
	// Provider returns the attestation provider of a Keep on the backend.
	Provider() (attestation.Provider, error)
}

// backends are the backends this build knows, by name.
var backends = map[string]Backend{
	nodepolicy.BackendNil: nilBackend{},
}

func registerBackend(b Backend) { backends[b.Name()] = b }

// LookupBackend returns the backend called name.
func LookupBackend(name string) (Backend, error) {
	if b, ok := backends[name]; ok {
		return b, nil
	}
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("unknown keep backend %q (known: %s)", name, strings.Join(names, ", "))
}

// Available reports whether the backend called name can run Keeps on this
// node; it is the availability check of Policy.Choose.
func Available(name string) error {
	b, err := LookupBackend(name)
	if err != nil {
		return err
	}
	return b.Available()
}

// nilBackend is a Keep without a TEE. It runs the workload with the same
// process isolation as every Keep, and never claims to be confidential.
type nilBackend struct{}

func (nilBackend) Name() string     { return nodepolicy.BackendNil }
func (nilBackend) TEE() string      { return attestation.TEENone }
func (nilBackend) Available() error { return nil }
func (nilBackend) Provider() (attestation.Provider, error) {
	return attestation.None{}, nil
}
