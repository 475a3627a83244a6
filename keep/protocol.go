// Package keep runs a WebAssembly workload in a Keep: an isolated process of
// its own, with a TEE backend that attests it and an engine that runs it.
//
// The package is what the two ends of a Keep share: the control protocol
// between the shim and a Keep (Config, Ready and the messages, the file
// descriptors and the hand-over of a Keep started ahead) and the backends
// both ends name. The ends are packages of their own, because they run in
// different processes and each process pays at its start for every package
// it links:
//
//   - keep/host, the shim's end: Start executes the Keep process, hands it
//     a Config, and drives it through ready → run → exit (Process); it
//     places the Keep in its cgroup (keep/cgroup) and namespaces;
//   - keep/guest, the Keep's end: Main, in the Keep process, compiles the
//     module, makes the Keep's identity — its key, its evidence and its
//     certificate —, opens its sockets, confines itself (keep/confine and
//     keep/confine/seccomp) and runs the workload.
//
// The engine is behind keep/engine, the node policy is keep/nodepolicy.
package keep

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// Subcommand is the first argument that makes the runtime binary (Binary)
// act as a Keep process.
const Subcommand = "keep"

// Binary is the file name of the runtime binary, the one that runs Keeps: it
// links the engine (wasmtime, through cgo) and the TEE backends. The shim is a
// binary of its own, without them, because containerd executes it twice for
// every container (start, then the server it starts) and once more to clean
// up; it finds Binary beside itself.
const Binary = "enarx-keep"

// ControlFD is the Keep's end of the control socket (the first ExtraFile).
const ControlFD = 3

// ReasonFD is the write end of the pipe on which a Keep says why it ended,
// when the shim could not tell from its exit status alone: ReasonOOM (the
// second ExtraFile; an inner Keep gets it too).
const ReasonFD = 4

// ReasonOOM says the workload needed more memory than its limit allows.
const ReasonOOM = "oom"

// AheadFlag marks a Keep the shim started before its container's Create
// (StartAhead): it reads the hand-over (handOver) before its config.
const AheadFlag = "ahead"

// SpareID is the -id of a spare Keep: one a spare shim server starts before
// any container is known, shaped like the container it served last
// (host.StartSpare). No containerd identifier holds an "@". Once its config
// names its container, the Keep's command line names it too
// ("keep -id ID -ahead"), as host.IsProcessOf expects.
const SpareID = "@spare"

// PreloadFlag gives a spare Keep the digest of the module its container
// will likely run (the last container's), and ModuleCacheFlag the module
// cache it loads that module's precompiled code from while it waits: a
// config for another module, or another cache, loads its own.
const (
	PreloadFlag     = "preload"
	ModuleCacheFlag = "module-cache"
)

// NewNetNSFlag marks a Keep made in its container's new network namespace
// (clone(2)'s CLONE_NEWNET; Config.MadeInNewNetNS): it brings its loopback
// up while it waits for its config, and its config must be one of such a
// Keep.
const NewNetNSFlag = "new-netns"

// HandOverRootfs is the bit of the hand-over's byte that says a tree of the
// root filesystem follows the stdio; bits 0-2 say which of stdin, stdout
// and stderr are given.
const HandOverRootfs = 1 << 3

// SandboxReady is what a sandbox process reports once it is ready.
const SandboxReady = "ready"

// ControlSocket makes a control socket: the parent's end as a connection,
// the child's as the file it inherits (a Keep's from the shim, an inner
// Keep's from its Keep).
func ControlSocket() (net.Conn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	local := os.NewFile(uintptr(fds[0]), "keep-control")
	remote := os.NewFile(uintptr(fds[1]), "keep-control")
	ctl, err := net.FileConn(local)
	local.Close()
	if err != nil {
		remote.Close()
		return nil, nil, err
	}
	return ctl, remote, nil
}

// Messages on the control socket, one JSON document each. The shim sends a
// config, the Keep answers ready (or an error), the shim sends run.
type Request struct {
	Config *Config        `json:"config,omitempty"`
	Run    bool           `json:"run,omitempty"`
	Attest *AttestRequest `json:"attest,omitempty"`
	// Native and Sources go with the config a Keep sends its inner Keep
	// (keep/guest, userns_linux.go): the module descriptor holds native code,
	// not WebAssembly; so many bind mount sources follow it.
	Native  bool `json:"native,omitempty"`
	Sources int  `json:"sources,omitempty"`
}

// AttestRequest asks a Keep for fresh evidence with a caller's nonce.
type AttestRequest struct {
	Nonce []byte `json:"nonce,omitempty"`
}

type Response struct {
	// Prepared is what a Keep that confines itself has made ready before
	// it does (all of Ready but ConfineTime), so that the shim publishes
	// its attestation meanwhile; Ready follows, or an error.
	Prepared *Ready          `json:"prepared,omitempty"`
	Ready    *Ready          `json:"ready,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
	Error    string          `json:"error,omitempty"`
	// Confined is an inner Keep's answer to its config.
	Confined bool `json:"confined,omitempty"`
	// Touched is what a Keep sends, unasked, once its workload's run has
	// ended, before it exits: the pages of its linear memory the run
	// wrote, for the next Keep of the same module (Config.Populate).
	Touched *PageProfile `json:"touched,omitempty"`
}

// PageProfile is which pages of a module's linear memory a run of it wrote
// (engine.RunOptions.Touched): a later run of the module makes them
// present before it starts (engine.RunOptions.Populate), which saves a page
// fault each. It says nothing of what the pages hold.
type PageProfile struct {
	// WorkloadDigest is the module's digest: a Keep uses the profile only
	// for a module that measures as it.
	WorkloadDigest string `json:"workload_digest"`
	// Ranges are the pages, in bytes from the memory's start.
	Ranges []engine.MemoryRange `json:"ranges"`
}

// MaxProfileRanges bounds PageProfile.Ranges: a Keep ignores a profile
// with more, and sends none. It is the engine's bound.
const MaxProfileRanges = engine.MaxMemoryRanges

// Exit statuses of a Keep besides the workload's own.
const (
	// StatusTrap is returned when the workload traps. It is 128+SIGABRT, as
	// the wasmtime CLI returns for a trap.
	StatusTrap = 134
	// StatusFailed is returned when the Keep cannot run the workload.
	StatusFailed = 1
	// StatusOOM is returned when the workload needed more memory than its
	// limit allows: 128+SIGKILL, as for a process the kernel kills at its
	// cgroup's limit.
	StatusOOM = 137
)

// Config is everything a Keep needs to run one workload. The shim builds it
// from the OCI bundle and image; the Keep treats it as untrusted input and
// validates it.
type Config struct {
	// ID is the container ID, used in messages and to recognise the process.
	ID string `json:"id"`
	// Workload is what the Keep runs, as the bundle and image describe
	// it (its fields are the config's own in JSON).
	workload.Workload
	// Backend is the backend the Keep runs on (BackendNil, BackendSEVSNP,
	// BackendTDX), chosen by the shim from the node policy; empty means nil.
	Backend string `json:"backend,omitempty"`
	// Steward is the attestation service the Keep gets its certificate
	// from at start, one the node policy lists (see
	// nodepolicy.Policy.ChooseSteward); nil for none.
	Steward *nodepolicy.Steward `json:"steward,omitempty"`
	// StateDir is a host directory of the Keep's own: the Keep writes its
	// certificate chain there (CertificateFile), and the workload sees it
	// read-only at confine.GuestStateDir. Empty when there is none.
	StateDir string `json:"state_dir,omitempty"`
	// ModuleCache is the directory of precompiled modules shared by the
	// node's Keeps (root-only); empty means compile every time.
	ModuleCache string `json:"module_cache,omitempty"`
	// MemoryLimit caps the workload's linear memory, in bytes (the OCI
	// spec's linux.resources.memory.limit); 0 means no cap.
	MemoryLimit int64 `json:"memory_limit,omitempty"`
	// Container confines the Keep as runc confines a process of the
	// container's spec (package confine): the workload then sees "/" of
	// the container's filesystem view, and Preopens are not used. Nil for
	// a Keep without a container (enarx run), which sees its Preopens.
	Container *confine.Spec `json:"container,omitempty"`
	// Populate is what the last Keep its shim saw end reported of its run
	// (Response.Touched): used only when this Keep's module measures as
	// its WorkloadDigest. Nil for none.
	Populate *PageProfile `json:"populate,omitempty"`
}

// MadeInNewNetNS reports whether the Keep of c may be made in its
// container's new network namespace (NewNetNSFlag), as runc makes a
// container's process, rather than making the namespace itself once it
// has read c and every thread joining it (4 ms of the start of a Keep on
// the CI machine class); its sockets are opened there too. Not a Keep with
// a Steward, which it reaches over the host's network before it confines
// itself, nor one with a user namespace, whose inner Keep makes the
// container's namespaces with it.
func (c Config) MadeInNewNetNS() bool {
	return c.NewNetNS && c.Steward == nil && c.Container != nil && !c.Container.UserNS()
}

// CertificateFile is the name, in Config.StateDir, of the PEM certificate
// chain a Steward issued to the Keep: the Keep's certificate, then its
// issuers.
const CertificateFile = "certificate.pem"

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if c.ID == "" {
		return errors.New("keep config: id is empty")
	}
	if err := c.Workload.Validate(); err != nil {
		return fmt.Errorf("keep config %q: %w", c.ID, err)
	}
	if c.StateDir != "" && !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("keep config %q: state directory %q is not absolute", c.ID, c.StateDir)
	}
	if c.Steward != nil {
		if err := c.Steward.Check(fmt.Sprintf("keep config %q: steward %q:", c.ID, c.Steward.Name)); err != nil {
			return err
		}
		if c.StateDir == "" {
			return fmt.Errorf("keep config %q: a steward needs a state directory for the certificate", c.ID)
		}
	}
	if c.ModuleCache != "" && !filepath.IsAbs(c.ModuleCache) {
		return fmt.Errorf("keep config %q: module cache %q is not absolute", c.ID, c.ModuleCache)
	}
	if c.MemoryLimit < 0 {
		return fmt.Errorf("keep config %q: memory limit %d is negative", c.ID, c.MemoryLimit)
	}
	if c.Container != nil {
		if err := c.Container.Validate(); err != nil {
			return fmt.Errorf("keep config %q: %w", c.ID, err)
		}
	}
	if c.Backend != "" {
		if _, err := LookupBackend(c.Backend); err != nil {
			return fmt.Errorf("keep config %q: %w", c.ID, err)
		}
	}
	return nil
}

// What Ready.ModuleCache reports, possibly followed by ": reason".
const (
	// CacheHit: the module's native code was loaded from the cache.
	CacheHit = "hit"
	// CacheMiss: the module was compiled, and its native code stored.
	CacheMiss = "miss"
	// CacheOff: the module was compiled without the cache.
	CacheOff = "off"
)

// Identities a Keep presents on its TLS sockets (Ready.TLSIdentity).
const (
	// TLSIdentitySteward: the certificate chain the Steward issued.
	TLSIdentitySteward = "steward"
	// TLSIdentitySelfSigned: no Steward certified the Keep; its
	// certificate is self-signed and carries its evidence.
	TLSIdentitySelfSigned = "self-signed"
)

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
	// ConfineTime is how long the Keep took to confine itself
	// (confine.Enter) once prepared: what its start waited for, which,
	// when it built its container beside preparing (buildAhead), is only
	// what was left of that, and the rest.
	ConfineTime time.Duration `json:"confine_time,omitempty"`
	// Sockets describe the open sockets, one per Config.Sockets entry:
	// "NAME KIND PROT ADDRESS", the address a listen socket is bound to
	// or the one a connect socket reached.
	Sockets []string `json:"sockets,omitempty"`
	// TLSIdentity is the certificate the Keep presents on its TLS
	// sockets: TLSIdentitySteward, or TLSIdentitySelfSigned when no Steward
	// certified it; empty without TLS sockets.
	TLSIdentity string `json:"tls_identity,omitempty"`
}
