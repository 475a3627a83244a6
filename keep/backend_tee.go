package keep

import (
	"errors"
	"os"
	"sync"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/snp"
	"github.com/enarx/containerd-shim-enarx/attestation/tdx"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
)

// EnvSimulateTEE, set to "sev-snp" in the environment of containerd (and so
// of the shim and its Keeps), makes the sev-snp backend use go-sev-guest's
// fake firmware and test-only certificate chain. It works only in binaries
// built with -tags enarx_simulate, for end-to-end tests without the
// hardware; a production build ignores it. Evidence from the simulation
// chains to test roots, which no verifier accepts unless told to.
const EnvSimulateTEE = "ENARX_SIMULATE_TEE"

func init() {
	registerBackend(teeBackend{name: nodepolicy.BackendSEVSNP, tee: attestation.TEESEVSNP, open: openSNP})
	registerBackend(teeBackend{name: nodepolicy.BackendTDX, tee: attestation.TEETDX, open: func() (attestation.Provider, error) { return tdx.Open() }})
}

// teeBackend is a Keep on a hardware TEE of the node: the node is an
// SEV-SNP or TDX guest, and the Keep's evidence is the TEE's report.
type teeBackend struct {
	name, tee string
	open      func() (attestation.Provider, error)
}

func (b teeBackend) Name() string { return b.name }
func (b teeBackend) TEE() string  { return b.tee }

func (b teeBackend) Available() error {
	if b.name == nodepolicy.BackendSEVSNP {
		if _, ok := simulatedSNP(); ok {
			return nil
		}
	}
	if a := detectPlatform().Backend(b.tee); !a.Available {
		return errors.New(a.Reason)
	}
	return nil
}

func (b teeBackend) Provider() (attestation.Provider, error) { return b.open() }

func openSNP() (attestation.Provider, error) {
	if p, ok := simulatedSNP(); ok {
		return p, nil
	}
	return snp.Open()
}

// detectPlatform inspects the node once per process: a shim asks for every
// Create, and a node's TEE does not come or go while the shim runs
// (detection may create and remove a configfs-tsm entry).
var detectPlatform = sync.OnceValue(attestation.Detect)

var simulated struct {
	once     sync.Once
	provider attestation.Provider
}

// simulatedSNP returns the simulated SEV-SNP provider when the environment
// asks for it and this is a test build.
func simulatedSNP() (attestation.Provider, bool) {
	if os.Getenv(EnvSimulateTEE) != nodepolicy.BackendSEVSNP {
		return nil, false
	}
	simulated.once.Do(func() {
		if p, err := snp.NewSimulated(); err == nil {
			simulated.provider = p
		}
	})
	return simulated.provider, simulated.provider != nil
}
