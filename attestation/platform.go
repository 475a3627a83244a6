package attestation

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Where a node exposes its TEE, as absolute paths on the node.
const (
	// ConfigfsTSMReport is the configfs-tsm report directory (Linux 6.7+).
	ConfigfsTSMReport = "/sys/kernel/config/tsm/report"
	// SEVGuestDevice is the SEV-SNP guest device.
	SEVGuestDevice = "/dev/sev-guest"
	// TDXGuestDevice is the TDX guest device.
	TDXGuestDevice = "/dev/tdx_guest"
	// TDXGuestDeviceLegacy is the TDX guest device's name in early kernels.
	TDXGuestDeviceLegacy = "/dev/tdx-guest"
	// CPUInfo lists the CPU flags.
	CPUInfo = "/proc/cpuinfo"
)

// Names of configfs-tsm report providers, as the kernel writes them in an
// entry's "provider" attribute.
const (
	ProviderSEVGuest = "sev_guest"
	ProviderTDXGuest = "tdx_guest"
)

// Via values of a Backend: how evidence is obtained.
const (
	ViaConfigfsTSM = "configfs-tsm"
	ViaSEVGuest    = SEVGuestDevice
)

// Platform is what a node offers for attestation.
type Platform struct {
	// ConfigfsTSM is true when ConfigfsTSMReport exists.
	ConfigfsTSM bool
	// ConfigfsTSMProvider is the report provider (ProviderSEVGuest,
	// ProviderTDXGuest, ...) or "" when it could not be read.
	ConfigfsTSMProvider string
	// ConfigfsTSMError says why the provider could not be read, if so.
	ConfigfsTSMError string
	// Devices are the TEE guest devices that exist (SEVGuestDevice,
	// TDXGuestDevice, TDXGuestDeviceLegacy).
	Devices []string
	// CPUFlags are the TEE-related flags of /proc/cpuinfo that are set
	// (sev, sev_es, sev_snp, tdx_guest).
	CPUFlags []string
	// Backends says, for TEESEVSNP and TEETDX in that order, whether this
	// node can produce evidence and, if not, why.
	Backends []Backend
}

// Backend is the availability of one kind of TEE on a node.
type Backend struct {
	// TEE is TEESEVSNP or TEETDX (or TEENone for the fallback of Best).
	TEE string
	// Available is true when evidence can be requested.
	Available bool
	// Via is how: ViaConfigfsTSM or ViaSEVGuest. Empty when unavailable.
	Via string
	// Reason says why the backend is unavailable, in terms a node operator
	// can act on. Empty when available.
	Reason string
}

// Backend returns the availability of tee; an unknown tee is unavailable.
func (p Platform) Backend(tee string) Backend {
	for _, b := range p.Backends {
		if b.TEE == tee {
			return b
		}
	}
	return Backend{TEE: tee, Reason: fmt.Sprintf("unknown TEE %q (known: %s, %s)", tee, TEESEVSNP, TEETDX)}
}

// Best returns the first available hardware backend, or an available
// TEENone backend when the node has no TEE.
func (p Platform) Best() Backend {
	for _, b := range p.Backends {
		if b.Available {
			return b
		}
	}
	return Backend{TEE: TEENone, Available: true}
}

// HasDevice reports whether the device at the absolute path dev exists.
func (p Platform) HasDevice(dev string) bool { return slices.Contains(p.Devices, dev) }

// HasCPUFlag reports whether /proc/cpuinfo lists flag.
func (p Platform) HasCPUFlag(flag string) bool { return slices.Contains(p.CPUFlags, flag) }

// Detect inspects this node. To learn the configfs-tsm provider when no
// report entry exists it creates one and removes it again (as root).
func Detect() Platform { return DetectAt("/") }

// DetectAt inspects the node whose filesystem is rooted at root (tests use a
// directory tree standing for /sys, /dev and /proc).
func DetectAt(root string) Platform {
	at := func(p string) string { return filepath.Join(root, p) }
	var p Platform
	if fi, err := os.Stat(at(ConfigfsTSMReport)); err == nil && fi.IsDir() {
		p.ConfigfsTSM = true
		provider, err := readTSMProvider(at(ConfigfsTSMReport))
		if err != nil {
			p.ConfigfsTSMError = err.Error()
		}
		p.ConfigfsTSMProvider = provider
	}
	for _, dev := range []string{SEVGuestDevice, TDXGuestDevice, TDXGuestDeviceLegacy} {
		if _, err := os.Stat(at(dev)); err == nil {
			p.Devices = append(p.Devices, dev)
		}
	}
	p.CPUFlags = cpuFlags(at(CPUInfo))
	p.Backends = []Backend{p.snpBackend(), p.tdxBackend()}
	return p
}

func (p Platform) snpBackend() Backend {
	b := Backend{TEE: TEESEVSNP}
	switch {
	case p.ConfigfsTSMProvider == ProviderSEVGuest:
		b.Available, b.Via = true, ViaConfigfsTSM
	case p.HasDevice(SEVGuestDevice):
		b.Available, b.Via = true, ViaSEVGuest
	case p.ConfigfsTSM && p.ConfigfsTSMProvider == "" && p.HasCPUFlag("sev_snp"):
		// The provider could not be read (not root?) but the CPU says SNP.
		b.Available, b.Via = true, ViaConfigfsTSM
	case p.ConfigfsTSMProvider != "":
		b.Reason = fmt.Sprintf("no %s and the configfs-tsm report provider is %s: this node is not an SEV-SNP guest", SEVGuestDevice, p.ConfigfsTSMProvider)
	case p.ConfigfsTSM:
		b.Reason = fmt.Sprintf("no %s, and the configfs-tsm report provider could not be read (%s) while /proc/cpuinfo has no sev_snp flag: this node is not an SEV-SNP guest", SEVGuestDevice, p.ConfigfsTSMError)
	default:
		b.Reason = fmt.Sprintf("no %s and no configfs-tsm report provider (%s): this node is not an SEV-SNP guest", SEVGuestDevice, ConfigfsTSMReport)
	}
	return b
}

func (p Platform) tdxBackend() Backend {
	b := Backend{TEE: TEETDX}
	tdxDevice := p.HasDevice(TDXGuestDevice) || p.HasDevice(TDXGuestDeviceLegacy)
	switch {
	case p.ConfigfsTSMProvider == ProviderTDXGuest:
		b.Available, b.Via = true, ViaConfigfsTSM
	case p.ConfigfsTSM && p.ConfigfsTSMProvider == "" && (p.HasCPUFlag("tdx_guest") || tdxDevice):
		b.Available, b.Via = true, ViaConfigfsTSM
	case p.ConfigfsTSMProvider != "":
		b.Reason = fmt.Sprintf("the configfs-tsm report provider is %s: this node is not a TDX guest", p.ConfigfsTSMProvider)
	case tdxDevice:
		b.Reason = fmt.Sprintf("%s exists but %s does not: quotes need configfs-tsm (Linux 6.7 or later, configfs mounted on /sys/kernel/config)", TDXGuestDevice, ConfigfsTSMReport)
	case p.ConfigfsTSM:
		b.Reason = fmt.Sprintf("the configfs-tsm report provider could not be read (%s) and neither %s nor the tdx_guest CPU flag exists: this node is not a TDX guest", p.ConfigfsTSMError, TDXGuestDevice)
	default:
		b.Reason = fmt.Sprintf("no configfs-tsm report provider (%s) and no %s: this node is not a TDX guest", ConfigfsTSMReport, TDXGuestDevice)
	}
	return b
}

// readTSMProvider returns the provider named by an existing report entry,
// or creates a temporary entry to read it (the kernel fills the attributes
// of a new entry) and removes it.
func readTSMProvider(reportDir string) (string, error) {
	entries, err := os.ReadDir(reportDir)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", reportDir, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(reportDir, e.Name(), "provider")); err == nil {
			if name := strings.TrimSpace(string(b)); name != "" {
				return name, nil
			}
		}
	}
	dir, err := os.MkdirTemp(reportDir, "enarx-probe-")
	if err != nil {
		return "", fmt.Errorf("create a report entry in %s: %w", reportDir, err)
	}
	defer os.Remove(dir)
	b, err := os.ReadFile(filepath.Join(dir, "provider"))
	if err != nil {
		return "", fmt.Errorf("read the provider of a new report entry: %w", err)
	}
	name := strings.TrimSpace(string(b))
	if name == "" {
		return "", errors.New("a new report entry names no provider")
	}
	return name, nil
}

// cpuFlags returns the TEE-related flags on the first "flags" line.
func cpuFlags(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		key, value, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(bytes.TrimSpace(key)) != "flags" {
			continue
		}
		var out []string
		for _, f := range strings.Fields(string(value)) {
			switch f {
			case "sev", "sev_es", "sev_snp", "tdx_guest":
				out = append(out, f)
			}
		}
		return out
	}
	return nil
}
