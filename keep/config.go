// Package keep runs a WebAssembly workload in a Keep: an isolated process of
// its own, with a TEE backend that attests it and an engine that runs it.
//
// The shim side of a Keep is Start: it executes the Keep process, hands it a
// Config, and drives it through ready → run → exit. The Keep side is Main.
package keep

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/keep/sockets"
)

// Config is everything a Keep needs to run one workload. The shim builds it
// from the OCI bundle and image; the Keep treats it as untrusted input and
// validates it.
type Config struct {
	// ID is the container ID, used in messages and to recognise the process.
	ID string `json:"id"`
	// Module is the host path of the WebAssembly core module to run.
	Module string `json:"module"`
	// Entrypoint is the exported function to call (default "_start").
	Entrypoint string `json:"entrypoint,omitempty"`
	// Args is the workload's argv, Args[0] being the program name.
	Args []string `json:"args"`
	// Env holds "KEY=value" entries.
	Env []string `json:"env,omitempty"`
	// Backend is the backend the Keep runs on (BackendNil, BackendSEVSNP,
	// BackendTDX), chosen by the shim from the node policy; empty means nil.
	Backend string `json:"backend,omitempty"`
	// Steward is the attestation service the Keep gets its certificate
	// from at start (see keep.Policy.ChooseSteward); empty for none.
	Steward string `json:"steward,omitempty"`
	// StewardCA is a PEM file of the CAs an https Steward's TLS certificate
	// must chain to; empty means the system's roots.
	StewardCA string `json:"steward_ca,omitempty"`
	// StateDir is a host directory of the Keep's own: the Keep writes its
	// certificate chain there (CertificateFile), and the workload sees it
	// read-only at GuestStateDir. Empty when there is none.
	StateDir string `json:"state_dir,omitempty"`
	// ModuleCache is the directory of precompiled modules shared by the
	// node's Keeps (root-only); empty means compile every time.
	ModuleCache string `json:"module_cache,omitempty"`
	// MemoryLimit caps the workload's linear memory, in bytes (the OCI
	// spec's linux.resources.memory.limit); 0 means no cap.
	MemoryLimit int64 `json:"memory_limit,omitempty"`
	// Preopens are the host directories the workload sees (the root
	// filesystem and the OCI mounts), each at its guest path.
	Preopens []Preopen `json:"preopens,omitempty"`
	// Cwd is the workload's working directory (process.cwd), a guest path.
	Cwd string `json:"cwd,omitempty"`
	// NullStdio names the standard streams ("stdin", "stdout", "stderr")
	// connected to /dev/null instead of the container's (Enarx.toml files
	// of kind "null").
	NullStdio []string `json:"null_stdio,omitempty"`
	// Sockets are the sockets the workload gets (Enarx.toml listen and
	// connect entries, enarx.dev/listen.* and enarx.dev/connect.*
	// annotations), in descriptor order. Nothing else on the network is
	// reachable from the workload.
	Sockets []sockets.Spec `json:"sockets,omitempty"`
	// NetNS is the path of the network namespace the sockets are opened
	// in (the container's, e.g. a pod's); empty means the Keep's own
	// unless NewNetNS is set.
	NetNS string `json:"netns,omitempty"`
	// NewNetNS opens the sockets in a new network namespace of their own,
	// with only a loopback interface: the OCI spec asked for a network
	// namespace without naming one, as `ctr run` without --net-host does.
	NewNetNS bool `json:"new_netns,omitempty"`
}

// CertificateFile is the name, in Config.StateDir, of the PEM certificate
// chain a Steward issued to the Keep: the Keep's certificate, then its
// issuers.
const CertificateFile = "certificate.pem"

// GuestStateDir is where the workload sees Config.StateDir (read-only).
const GuestStateDir = "/run/enarx"

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if c.ID == "" {
		return errors.New("keep config: id is empty")
	}
	if c.Module == "" {
		return fmt.Errorf("keep config %q: module path is empty", c.ID)
	}
	if !filepath.IsAbs(c.Module) {
		return fmt.Errorf("keep config %q: module path %q is not absolute", c.ID, c.Module)
	}
	if c.StateDir != "" && !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("keep config %q: state directory %q is not absolute", c.ID, c.StateDir)
	}
	if c.Steward != "" {
		if err := checkStewardURL(c.Steward); err != nil {
			return fmt.Errorf("keep config %q: steward %q %w", c.ID, c.Steward, err)
		}
		if c.StateDir == "" {
			return fmt.Errorf("keep config %q: a steward needs a state directory for the certificate", c.ID)
		}
	}
	if c.NetNS != "" && (c.NewNetNS || !filepath.IsAbs(c.NetNS)) {
		return fmt.Errorf("keep config %q: network namespace %q: a path must be absolute, and excludes a new namespace", c.ID, c.NetNS)
	}
	if c.StewardCA != "" && !filepath.IsAbs(c.StewardCA) {
		return fmt.Errorf("keep config %q: steward CA file %q is not absolute", c.ID, c.StewardCA)
	}
	if c.ModuleCache != "" && !filepath.IsAbs(c.ModuleCache) {
		return fmt.Errorf("keep config %q: module cache %q is not absolute", c.ID, c.ModuleCache)
	}
	if c.MemoryLimit < 0 {
		return fmt.Errorf("keep config %q: memory limit %d is negative", c.ID, c.MemoryLimit)
	}
	// A workload reads argv and the environment as NUL-terminated strings:
	// a NUL would silently cut them short, and the engine refuses them when
	// the workload starts; here they fail the container's creation instead.
	for i, a := range c.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("keep config %q: argument %d %q contains a NUL byte", c.ID, i, a)
		}
	}
	for i, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.IndexByte(kv, 0) >= 0 {
			return fmt.Errorf("keep config %q: environment entry %d %q is not KEY=value without a NUL byte", c.ID, i, kv)
		}
	}
	for _, name := range c.NullStdio {
		if _, ok := stdioFDs[name]; !ok {
			return fmt.Errorf("keep config %q: null_stdio: %q is not stdin, stdout or stderr", c.ID, name)
		}
	}
	for i, p := range c.Preopens {
		switch {
		case !filepath.IsAbs(p.HostPath) || !path.IsAbs(p.GuestPath):
			return fmt.Errorf("keep config %q: preopen %d (%q at %q): both paths must be absolute", c.ID, i, p.HostPath, p.GuestPath)
		case strings.IndexByte(p.HostPath, 0) >= 0 || strings.IndexByte(p.GuestPath, 0) >= 0:
			return fmt.Errorf("keep config %q: preopen %d (%q at %q): a path contains a NUL byte", c.ID, i, p.HostPath, p.GuestPath)
		case len(c.Sockets) > 0 && strings.ContainsRune(p.GuestPath, ':'):
			// FD_NAMES lists the preopens' guest paths with the sockets.
			return fmt.Errorf("keep config %q: preopen %d at %q: with sockets, FD_NAMES lists the preopened directories, separated by ':', so a guest path cannot contain ':': mount it elsewhere", c.ID, i, p.GuestPath)
		}
	}
	for i, s := range c.Sockets {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("keep config %q: socket %d: %w", c.ID, i, err)
		}
	}
	if c.Backend != "" {
		if _, err := LookupBackend(c.Backend); err != nil {
			return fmt.Errorf("keep config %q: %w", c.ID, err)
		}
	}
	return nil
}

// Ready is what a Keep reports once its workload is loaded and attested, but
// not yet running.
type Ready struct {
	// Backend is the backend that provides the Keep ("nil", "sev-snp", "tdx").
	Backend string `json:"backend"`
	// TEE is the kind of trusted execution environment; "none" for nil.
	TEE string `json:"tee"`
	// WorkloadDigest is the digest of the module bytes the Keep compiled,
	// e.g. "sha256:…".
	WorkloadDigest string `json:"workload_digest"`
	// RuntimeVersion is the version of the Keep runtime.
	RuntimeVersion string `json:"runtime_version"`
	// Engine names the WebAssembly engine and its version.
	Engine string `json:"engine"`
	// TEEVersion is the TEE's version as its report states it (empty for nil).
	TEEVersion string `json:"tee_version,omitempty"`
	// RuntimeDigest is "sha256:" of the Keep's binary.
	RuntimeDigest string `json:"runtime_digest"`
	// Evidence is the Keep's evidence at start (attestation.Evidence, its
	// canonical JSON encoding), and EvidenceDigest its digest.
	Evidence       json.RawMessage `json:"evidence"`
	EvidenceDigest string          `json:"evidence_digest"`
	// AttestTime is what attesting added to the Keep's start: the key pair,
	// the runtime digest and the TEE's report.
	AttestTime time.Duration `json:"attest_time"`
	// Certificate is the PEM certificate chain the Steward issued to the
	// Keep's key (also in Config.StateDir/CertificateFile); empty without a
	// Steward.
	Certificate string `json:"certificate,omitempty"`
	// CertifyTime is how long getting the certificate took.
	CertifyTime time.Duration `json:"certify_time,omitempty"`
	// ModuleCache says whether the module came from the node's module
	// cache: CacheHit, CacheMiss or CacheOff, then ": reason" if any.
	ModuleCache string `json:"module_cache,omitempty"`
	// CompileTime is how long loading or compiling the module took.
	CompileTime time.Duration `json:"compile_time,omitempty"`
	// Sockets describe the open sockets, one per Config.Sockets entry:
	// "NAME KIND PROT ADDRESS", the address a listen socket is bound to
	// or the one a connect socket reached.
	Sockets []string `json:"sockets,omitempty"`
	// TLSIdentity is the certificate the Keep presents on its TLS
	// sockets: TLSIdentitySteward, or TLSIdentitySelfSigned when no Steward
	// certified it; empty without TLS sockets.
	TLSIdentity string `json:"tls_identity,omitempty"`

	// evidence is the parsed Evidence, in the Keep.
	evidence *attestation.Evidence
}
